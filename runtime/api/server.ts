import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { Logger } from '../contract.js';
import { LinegateError, LinegateErrors, messageOf } from '../errors.js';
import type { HistoryReader } from '../history.js';
import type { Station } from '../station.js';
import { Gate, loadToken } from './auth.js';
import { hasModelControl, type ApiContext, type EffectiveApiSettings } from './context.js';
import { EventHub, type EventHubOptions } from './events.js';
import { errorReply } from './error-reply.js';
import { ImageStore } from './images.js';
import { StationMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { HTTP_ROUTES_SERVICE, isHttpRoutes } from './plugin-routes.js';
import { RecentResults } from './recent.js';
import { defineRoute, type RouteReply, type RouteSpec } from './route.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { healthRoutes } from './routes/health.js';
import { inspectRoutes } from './routes/inspect.js';
import { modelRoutes } from './routes/models.js';
import { observeRoutes } from './routes/observe.js';
import { resultRoutes } from './routes/results.js';
import { stationRoutes } from './routes/station.js';
import { NoQuery } from './schemas.js';

/** What the server made itself and must undo at close. */
interface Owned {
  readonly recent?: RecentResults;
  readonly detach: () => void;
}

/** JSON bodies are small (no route takes a large one): images have their own, configured limit. */
const JSON_BODY_LIMIT = 64 * 1024;
const PLUGIN_PATH = /^[A-Za-z0-9_-]{1,64}$/;

export interface ApiServerOptions {
  readonly station: Station;
  readonly settings: EffectiveApiSettings;
  readonly log: Logger;
  /** Read for LINEGATE_API_TOKEN. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The station's history; without one the last results are kept in memory (RecentResults). */
  readonly history?: HistoryReader;
  readonly images?: ImageStore;
  readonly events?: EventHubOptions;
  /** Results kept in memory when there is no history (default 1000). */
  readonly recentSize?: number;
}

export interface InjectRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'HEAD';
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Buffer;
}

export interface InjectResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | number | undefined>>;
  readonly body: Buffer;
  json(): unknown;
}

/**
 * The station's HTTP API: fastify with its own logger off (every line goes through the station's
 * pino logger), the route table of runtime/api/routes mounted with one request path for all (token,
 * query and params parsed by zod, errors as coded JSON, responses checked against their schemas),
 * plus the routes steps offer (an HTTP source). Built after the station's steps started, closed
 * before they close; `close()` is idempotent.
 */
export class ApiServer {
  readonly #app: FastifyInstance;
  readonly #o: ApiServerOptions;
  readonly #owned: Owned;
  readonly #events: EventHub;
  readonly #metrics: StationMetrics;
  readonly #closing = new AbortController();
  readonly routes: readonly RouteSpec[];
  #port: number;
  #closed: Promise<void> | undefined;

  private constructor(app: FastifyInstance, o: ApiServerOptions, parts: { routes: RouteSpec[]; events: EventHub; metrics: StationMetrics; owned: Owned }) {
    this.#app = app;
    this.#o = o;
    this.routes = parts.routes;
    this.#events = parts.events;
    this.#metrics = parts.metrics;
    this.#owned = parts.owned;
    this.#port = o.settings.port;
  }

  /** Builds the server and its routes without listening (tests inject requests into it). */
  static async create(o: ApiServerOptions): Promise<ApiServer> {
    const log = o.log.child({ component: 'api' });
    const token = await loadToken(o.env, o.settings.tokenFile, o.station.plan.root, o.settings.generateToken);
    if (token.generated !== undefined) log.info({ tokenFile: token.generated }, `new API token written to ${token.generated}: send it as "Authorization: Bearer <token>"`);
    const gate = new Gate(token.tokens, o.settings.auth);
    // The last results in memory: the whole answer without a history, and with one the results its writer thread has
    // not committed yet (a page hears of a part on the event stream a moment before the history has it).
    const recent = new RecentResults(o.recentSize ?? (o.history === undefined ? 1000 : 256));
    const add = (r: Parameters<RecentResults['add']>[0]): void => recent.add(r);
    o.station.on('result', add);
    o.station.on('drop', add);
    const history = o.history ?? recent;
    const owned: Owned = { recent, detach: () => void (o.station.off('result', add), o.station.off('drop', add)) };
    const events = new EventHub(o.station, log, o.events);
    const metrics = new StationMetrics(o.station, { events });
    metrics.attach();
    const app = Fastify({ logger: false, bodyLimit: JSON_BODY_LIMIT, return503OnClosing: true, forceCloseConnections: 'idle', routerOptions: { maxParamLength: 200 } });
    const parts = { routes: [] as RouteSpec[], events, metrics, owned };
    const server = new ApiServer(app, o, parts);
    const ctx: ApiContext = { station: o.station, ...(hasModelControl(o.station) ? { models: o.station } : {}), history, recent, images: o.images ?? ImageStore.fromPlan(o.station.plan), metrics, events, settings: o.settings, writesOn: gate.writesOn, log, startedAt: Date.now(), boundPort: () => server.#port };
    const routes = [...healthRoutes(ctx), ...stationRoutes(ctx), ...resultRoutes(ctx), ...inspectRoutes(ctx), ...observeRoutes(ctx), ...modelRoutes(ctx), ...dashboardRoutes(ctx), ...pluginRoutes(o, log)];
    let doc: unknown;
    routes.push(
      defineRoute({
        method: 'GET',
        url: '/api/openapi.json',
        summary: 'This document.',
        access: 'read',
        query: NoQuery,
        responses: { 200: { description: 'the OpenAPI 3.1 document' } },
        handle: async () => ({ status: 200, json: doc }),
      }),
    );
    doc = openApiDocument(routes, { title: `linegate station ${o.station.plan.settings.id}`, version: '1', readsNeedToken: o.settings.auth === 'all' });
    parts.routes.push(...routes);
    try {
      server.#mount(gate, log);
      await app.ready();
    } catch (e) {
      await server.close();
      throw e;
    }
    log.debug({ routes: routes.map((r) => `${r.method} ${r.url}`), token: token.from, tokens: gate.names }, 'API routes ready');
    return server;
  }

  /** The port it listens on (the chosen one for port 0). */
  get port(): number {
    return this.#port;
  }

  get url(): string {
    const host = this.#o.settings.host.includes(':') ? `[${this.#o.settings.host}]` : this.#o.settings.host;
    return `http://${host}:${this.#port}`;
  }

  async listen(): Promise<string> {
    const { host, port } = this.#o.settings;
    try {
      await this.#app.listen({ host, port });
    } catch (e) {
      throw new LinegateError('LG_ERR_API_LISTEN', [`${host}:${port}`, messageOf(e)], { cause: e });
    }
    const address = this.#app.server.address();
    if (address !== null && typeof address === 'object') this.#port = address.port;
    return this.url;
  }

  /** Answers a request without a socket (fastify's inject). */
  async inject(req: InjectRequest): Promise<InjectResponse> {
    const res = await this.#app.inject({ method: req.method, url: req.url, ...(req.headers === undefined ? {} : { headers: { ...req.headers } }), ...(req.body === undefined ? {} : { payload: req.body }) });
    const body = res.rawPayload;
    return { status: res.statusCode, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) as unknown };
  }

  /** Ends the event streams, stops listening (requests in flight are answered), stops counting; idempotent. */
  close(): Promise<void> {
    return (this.#closed ??= this.#close());
  }

  async #close(): Promise<void> {
    this.#closing.abort(new LinegateError('LG_ERR_API_UNAVAILABLE', ['the API', 'it is closing']));
    this.#events.close();
    await this.#app.close();
    this.#metrics.detach();
    this.#owned.detach();
    await this.#owned.recent?.close();
  }

  #mount(gate: Gate, log: Logger): void {
    const app = this.#app;
    for (const type of [/^image\/[A-Za-z0-9.+-]+$/, 'multipart/form-data']) {
      app.addContentTypeParser(type, { parseAs: 'buffer' }, (_req: FastifyRequest, body: Buffer | string, done: (err: Error | null, body?: unknown) => void) => done(null, body));
    }
    app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
      const what = `${req.method} ${req.routeOptions.url ?? '(no route)'}`;
      const { status, body, internal } = errorReply(err, what);
      if (internal) log.error({ err, route: what }, `API ${what} failed`);
      else log.debug({ code: body.error.code, route: what, status }, body.error.message);
      void reply.code(status).type('application/json; charset=utf-8').send(body);
    });
    app.setNotFoundHandler((req: FastifyRequest, reply: FastifyReply) => {
      const { status, body } = errorReply(new LinegateError('LG_ERR_API_NOT_FOUND', [`no route ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}`]), 'not found');
      void reply.code(status).type('application/json; charset=utf-8').send(body);
    });
    app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
      log.debug({ method: req.method, route: req.routeOptions.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'API request');
    });
    // Who passed the gate, from onRequest to the handler (a deploy records the token's name).
    const callers = new WeakMap<FastifyRequest, string>();
    for (const r of this.routes) {
      const what = `${r.method} ${r.url}`;
      app.route({
        method: r.method,
        url: r.url,
        ...(r.body === undefined ? {} : { bodyLimit: r.body.maxBytes }),
        // The token is checked before the body is read: an unauthorised upload costs nothing.
        onRequest: async (req: FastifyRequest) => {
          const caller = gate.check(r.access, req.headers.authorization, what);
          if (caller !== undefined) callers.set(req, caller);
        },
        handler: async (req: FastifyRequest, reply: FastifyReply) => {
          const query = parse(r.query ?? NoQuery, req.query ?? {}, 'query', what);
          const params = r.params === undefined ? {} : parse(r.params, req.params, 'path', what);
          const contentType = req.headers['content-type'];
          if (r.body !== undefined && !accepts(r.body.contentTypes, contentType)) throw new LinegateError('LG_ERR_API_MEDIA_TYPE', [contentType ?? '(none)', what, r.body.contentTypes.join(', ')]);
          const gone = new AbortController();
          reply.raw.on('close', () => gone.abort(new Error('the client went away')));
          const signal = AbortSignal.any([gone.signal, this.#closing.signal]);
          const out = await r.handle({ query, params, body: Buffer.isBuffer(req.body) ? req.body : undefined, contentType, signal, caller: callers.get(req) });
          return send(reply, out, r, what, log);
        },
      });
    }
  }
}

/** Creates the server and listens; logs where. */
export async function startApi(o: ApiServerOptions): Promise<ApiServer> {
  const server = await ApiServer.create(o);
  try {
    const url = await server.listen();
    o.log.info({ api: url, auth: o.settings.auth, docs: `${url}/api/openapi.json` }, `HTTP API listening on ${url}`);
  } catch (e) {
    await server.close();
    throw e;
  }
  return server;
}

/** The routes steps offer (HTTP_ROUTES_SERVICE), mounted under /api/steps/<step>/<path>. */
function pluginRoutes(o: ApiServerOptions, log: Logger): RouteSpec[] {
  const maxUpload = Math.floor(o.settings.maxUploadMiB * 1024 * 1024);
  const out: RouteSpec[] = [];
  for (const [step, service] of o.station.services(HTTP_ROUTES_SERVICE)) {
    if (!isHttpRoutes(service)) {
      log.warn({ step }, `step "${step}" offers ${HTTP_ROUTES_SERVICE} but not as routes(): ignored`);
      continue;
    }
    for (const r of service.routes()) {
      if (!PLUGIN_PATH.test(r.path)) throw new LinegateError('LG_ERR_API_INTERNAL', [`mounting the routes of step "${step}"`, `path "${r.path}" is not letters, digits, - and _`]);
      out.push(
        defineRoute({
          method: r.method,
          url: `/api/steps/${step}/${r.path}`,
          summary: r.summary,
          access: r.access,
          query: r.query ?? NoQuery,
          ...(r.body === undefined ? {} : { body: { contentTypes: r.body.contentTypes, maxBytes: r.body.maxBytes ?? maxUpload, description: r.body.description } }),
          responses: r.responses,
          handle: async ({ query, body, contentType, signal }) => r.handle({ query, body, contentType, signal }),
        }),
      );
    }
  }
  return out;
}

function parse<T>(schema: z.ZodType<T>, value: unknown, where: string, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new LinegateErrors(r.error.issues.map((i) => new LinegateError('LG_ERR_API_BAD_REQUEST', [what, `${where}${i.path.length > 0 ? `.${i.path.join('.')}` : ''}: ${i.message}`])));
}

function accepts(types: readonly string[], header: string | undefined): boolean {
  const t = (header ?? '').split(';')[0]!.trim().toLowerCase();
  return types.some((a) => (a.endsWith('/*') ? t.startsWith(a.slice(0, -1)) && t.length > a.length - 1 : t === a));
}

function send(reply: FastifyReply, out: RouteReply, r: RouteSpec, what: string, log: Logger): FastifyReply | undefined {
  if ('stream' in out) {
    reply.hijack();
    out.stream(reply.request.raw, reply.raw);
    return undefined;
  }
  if ('json' in out) {
    const schema = r.responses[out.status]?.schema;
    const checked = schema?.safeParse(out.json);
    if (checked !== undefined && !checked.success) {
      log.error({ route: what, status: out.status, issues: checked.error.issues.slice(0, 5) }, `API ${what}: the response does not match its schema`);
      throw new LinegateError('LG_ERR_API_INTERNAL', [what, 'the response does not match its schema']);
    }
    return reply.code(out.status).type('application/json; charset=utf-8').send(JSON.stringify(out.json));
  }
  if ('bytes' in out) {
    for (const [k, v] of Object.entries(out.headers ?? {})) void reply.header(k, v);
    return reply.code(out.status).type(out.contentType).send(out.bytes);
  }
  return reply.code(out.status).type(out.contentType).send(out.text);
}
