import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import type { Logger } from '../contract.js';
import { LinegateError, isLinegateError, messageOf } from '../errors.js';
import type { PlantSettings } from './options.js';
import type { PlantSource, StationCounts } from './types.js';
import { LEVELS, PlantQuery, plantView, type PlantFilter } from './view.js';

/*
 * The plant page's HTTP server: the page (static files committed in page/),
 * GET /api/plant (the view, JSON) and GET /health. node:http and four routes:
 * nothing a framework would add is needed. Reads of the counts are shared for
 * a second, so ten open pages cost Redis what one does; the page stays up
 * whether Redis answers or not, and says which.
 */

/** Pages opened at the same time share one read of Redis within this long. */
const SHARE_READ_MS = 1000;

const TYPES: Readonly<Record<string, string>> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

// Nothing leaves the machine: every fetch, script and style comes from this server.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

/** The page's folder: beside this module in the sources, or in the sources when this runs from dist/. */
function pageDir(): string {
  const here = import.meta.dirname;
  const candidates = [path.join(here, 'page'), path.resolve(here, '../../../runtime/plant/page')];
  const found = candidates.find((d) => existsSync(path.join(d, 'index.html')));
  if (found === undefined) throw new LinegateError('LG_ERR_PLANT_LISTEN', ['(no address)', `the page's files are missing (looked in ${candidates.join(', ')})`]);
  return found;
}

/** Every file of the page, read once: only these names are served, so no path can climb out of the folder. */
function loadPage(): ReadonlyMap<string, { readonly type: string; readonly body: Buffer }> {
  const dir = pageDir();
  const files = new Map<string, { type: string; body: Buffer }>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[path.extname(name)];
    if (type !== undefined) files.set(`/${name}`, { type, body: readFileSync(path.join(dir, name)) });
  }
  files.set('/', files.get('/index.html')!);
  return files;
}

/** A refused password is not "away": waiting will not bring it back, and the page says what to correct. */
const redisState = (code: string): 'away' | 'refused' => (code === 'LG_ERR_QUEUE_AUTH' ? 'refused' : 'away');

export interface PlantServerOptions {
  readonly settings: Readonly<PlantSettings>;
  readonly source: PlantSource;
  readonly log: Logger;
  /** The clock the view is computed at; tests pin it. */
  readonly now?: () => number;
}

interface SharedRead {
  readonly at: number;
  readonly counts: Promise<readonly StationCounts[]>;
}

export class PlantServer {
  readonly #server: Server;
  readonly #o: PlantServerOptions;
  readonly #page: ReadonlyMap<string, { readonly type: string; readonly body: Buffer }>;
  readonly #reads = new Map<number, SharedRead>();
  #closing: Promise<void> | undefined;
  #requests = 0;
  #url = '';

  private constructor(o: PlantServerOptions) {
    this.#o = o;
    this.#page = loadPage();
    this.#server = createServer((req, res) => void this.#handle(req, res));
    // A page left open keeps its connection alive; close() must not wait for it.
    this.#server.keepAliveTimeout = 5000;
  }

  static async start(o: PlantServerOptions): Promise<PlantServer> {
    const s = new PlantServer(o);
    const where = `${o.settings.host}:${o.settings.port}`;
    await new Promise<void>((resolve, reject) => {
      s.#server.once('error', (e) => reject(new LinegateError('LG_ERR_PLANT_LISTEN', [where, messageOf(e)], { cause: e })));
      s.#server.listen(o.settings.port, o.settings.host, () => resolve());
    });
    const a = s.#server.address() as AddressInfo;
    s.#url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/`;
    o.log.info({ url: s.url, redis: o.source.where, prefix: o.settings.prefix }, `plant page listening on ${s.url}`);
    return s;
  }

  /** Where it listens (kept after close, for the exit line). */
  get url(): string {
    return this.#url;
  }

  get requests(): number {
    return this.#requests;
  }

  /** Stops listening and ends open connections. Idempotent. */
  close(): Promise<void> {
    return (this.#closing ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    }));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.#requests++;
    const url = new URL(req.url ?? '/', 'http://plant');
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new LinegateError('LG_ERR_API_NOT_FOUND', [`${req.method ?? '?'} ${url.pathname}: the plant page only answers GET`]);
      if (url.pathname === '/api/plant') return this.#json(res, 200, await this.#plant(url.searchParams));
      if (url.pathname === '/health') return this.#json(res, 200, await this.#health());
      const file = this.#page.get(url.pathname);
      if (file === undefined) throw new LinegateError('LG_ERR_API_NOT_FOUND', [`GET ${url.pathname}: no such page or route (the page is /, its data /api/plant)`]);
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': file.type, 'cache-control': 'no-cache', 'content-length': file.body.length });
      res.end(req.method === 'HEAD' ? undefined : file.body);
    } catch (e) {
      const err = isLinegateError(e) ? e : new LinegateError('LG_ERR_API_INTERNAL', [`${req.method ?? '?'} ${url.pathname}`, messageOf(e)], { cause: e });
      if (err.code === 'LG_ERR_API_INTERNAL') this.#o.log.error({ err: e, url: url.pathname }, 'plant page request failed');
      this.#json(res, err.httpStatus, { error: err.toJSON(), ...(err.code.startsWith('LG_ERR_QUEUE_') ? { redis: { state: redisState(err.code), where: this.#o.source.where } } : {}) });
    }
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    const data = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': data.length });
    res.end(data);
  }

  async #plant(params: URLSearchParams): Promise<unknown> {
    const parsed = PlantQuery.safeParse(Object.fromEntries(params));
    if (!parsed.success) throw new LinegateError('LG_ERR_API_BAD_REQUEST', ['GET /api/plant query', z.prettifyError(parsed.error).replace(/\n/g, '; ')]);
    const q = parsed.data;
    const minutes = q.minutes ?? this.#o.settings.minutes;
    const now = this.#now();
    const counts = await this.#read(minutes, now);
    const filter: PlantFilter = Object.fromEntries(LEVELS.flatMap((l) => (q[l] === undefined ? [] : [[l, q[l]]])));
    const view = plantView({ counts, filter, minutes, now, health: { staleMinutes: this.#o.settings.staleMinutes, maxErrorRate: this.#o.settings.maxErrorRate } });
    return { ...view, source: { redis: this.#o.source.where, prefix: this.#o.settings.prefix, state: 'up' }, refreshMs: this.#o.settings.refreshSeconds * 1000 };
  }

  async #health(): Promise<unknown> {
    // The page is up whatever Redis does: 200 either way, and Redis's state said in the body.
    try {
      await this.#read(this.#o.settings.minutes, this.#now());
      return { status: 'ok', redis: { state: 'up', where: this.#o.source.where } };
    } catch (e) {
      const err = isLinegateError(e) ? e.toJSON() : { code: 'LG_ERR_QUEUE_REDIS', message: messageOf(e), retryable: true };
      return { status: 'degraded', redis: { state: redisState(err.code), where: this.#o.source.where, error: err } };
    }
  }

  #now(): number {
    return this.#o.now?.() ?? Date.now();
  }

  /** One read per window length and second, shared by every request that falls in it; a failure is shared too. */
  #read(minutes: number, now: number): Promise<readonly StationCounts[]> {
    // Shared by the monotonic clock: the view's clock may be pinned (tests) or jump (NTP).
    const t = performance.now();
    const shared = this.#reads.get(minutes);
    if (shared !== undefined && t - shared.at < SHARE_READ_MS) return shared.counts;
    for (const [m, r] of this.#reads) if (t - r.at >= SHARE_READ_MS) this.#reads.delete(m);
    const counts = this.#o.source.read({ minutes, now });
    counts.catch(() => undefined);
    this.#reads.set(minutes, { at: t, counts });
    return counts;
  }
}
