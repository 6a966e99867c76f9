import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { definePlugin, type FrameInput, type PluginContext, type SourceInstance } from '../../runtime/contract.js';
import { LinegateError } from '../../runtime/errors.js';
import { resultIdFor } from '../../runtime/execute/outcome.js';
import type { InspectionResult } from '../../runtime/result.js';
import { sniffImageFormat as sniff } from '../../runtime/image-format.js';
import { HTTP_ROUTES_SERVICE, type HttpRoutes, type PluginRoute } from '../../runtime/api/plugin-routes.js';

export const HTTP_SOURCE_ID = 'core/http-source@1';

const Config = z
  .object({
    queueSize: z.number().int().min(1).max(1000).default(16).describe('frames accepted but not yet taken by the frame loop; past this a POST is refused with 429'),
    maxWaitMs: z.number().int().min(0).max(60_000).default(10_000).describe('the longest a POST may wait for its verdict (?waitMs=)'),
  })
  .strict();

const FrameQuery = z
  .object({
    partId: z.string().min(1).max(200).regex(/^[\w.:#/-]+$/).describe('the part this image shows (from the MES or the camera)'),
    waitMs: z.coerce.number().int().min(0).max(60_000).default(0).describe('wait this long for the verdict (bounded by the source\'s maxWaitMs); 0: answer at once with the result id'),
  })
  .strict();

const Accepted = z.object({ resultId: z.uuid(), partId: z.string(), decided: z.literal(false).describe('not decided within the wait: GET /api/results/<resultId> later, or watch /api/events') });
const Decided = z.object({ resultId: z.uuid(), partId: z.string(), decided: z.literal(true), verdict: z.enum(['pass', 'fail', 'error']), rejectCode: z.number().int() });
const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string(), retryable: z.boolean() }) });

interface Waiting {
  readonly frame: FrameInput;
}

/**
 * Frames pushed over HTTP: `POST /api/steps/<step>/frames?partId=...` with the image as the body
 * (a camera, an MES). It answers with the result id at once (the id is derived from a key the
 * source gives the frame, so it is known before the result exists), or with the verdict when it
 * is decided within `waitMs`. The queue is bounded: full is 429, a source the loop is not pulling
 * from (starting, draining, closed) is 503. The route is mounted on the station's own API server
 * through HTTP_ROUTES_SERVICE, so it shares its port, its token and its limits.
 */
class HttpSource implements SourceInstance {
  readonly #config: z.infer<typeof Config>;
  readonly #ctx: PluginContext;
  readonly #queue: Waiting[] = [];
  readonly #closed = new AbortController();
  #wake: (() => void) | undefined;
  #pulling = false;

  constructor(config: z.infer<typeof Config>, ctx: PluginContext) {
    this.#config = config;
    this.#ctx = ctx;
  }

  async *frames(run: PluginContext): AsyncGenerator<FrameInput> {
    const signal = AbortSignal.any([run.signal, this.#closed.signal]);
    this.#pulling = true;
    try {
      while (!signal.aborted) {
        const next = this.#queue.shift();
        if (next !== undefined) {
          yield next.frame;
          continue;
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
        this.#wake = undefined;
      }
    } finally {
      this.#pulling = false;
    }
  }

  service(name: string): unknown {
    return name === HTTP_ROUTES_SERVICE ? ({ routes: () => [this.#route()] } satisfies HttpRoutes) : undefined;
  }

  async close(): Promise<void> {
    this.#closed.abort();
    this.#queue.length = 0;
  }

  #route(): PluginRoute {
    const what = `POST /api/steps/${this.#ctx.step}/frames`;
    return {
      method: 'POST',
      path: 'frames',
      summary: `Push a frame to source "${this.#ctx.step}" (${HTTP_SOURCE_ID}): the body is the image; answers with the result id, or the verdict when decided within waitMs. Needs the token.`,
      access: 'write',
      query: FrameQuery,
      body: { contentTypes: ['image/*'], description: 'the image (JPEG, PNG, BMP, TIFF or WebP)' },
      responses: {
        200: { description: 'decided within waitMs', schema: Decided },
        202: { description: 'accepted; not decided within waitMs', schema: Accepted },
        400: { description: 'bad query or not an image', schema: ErrorBody },
        429: { description: 'the queue is full', schema: ErrorBody },
        503: { description: 'the source is not taking frames', schema: ErrorBody },
      },
      handle: async (req) => {
        const query = FrameQuery.parse(req.query);
        if (this.#closed.signal.aborted || !this.#pulling) throw new LinegateError('LG_ERR_API_UNAVAILABLE', [what, 'the station is not taking frames']);
        if (this.#queue.length >= this.#config.queueSize) throw new LinegateError('LG_ERR_API_BUSY', [what, `${this.#queue.length} frames wait already`]);
        const data = req.body ?? Buffer.alloc(0);
        const format = sniff(data);
        if (format === undefined) throw new LinegateError('LG_ERR_API_BAD_REQUEST', [what, 'the body is not a JPEG, PNG, BMP, TIFF or WebP image']);
        const key = randomUUID();
        const capturedAt = new Date();
        const resultId = resultIdFor(this.#ctx.stationId, this.#ctx.step, key, capturedAt);
        let decided!: (r: InspectionResult) => void;
        const result = new Promise<InspectionResult>((resolve) => (decided = resolve));
        this.#queue.push({
          frame: { ref: `http:${this.#ctx.step}/${key}`, partId: query.partId, key, capturedAt, image: { kind: 'encoded', data, format }, settle: async (r) => decided(r) },
        });
        this.#wake?.();
        const waitMs = Math.min(query.waitMs, this.#config.maxWaitMs);
        const r = waitMs === 0 ? undefined : await within(result, waitMs, req.signal);
        if (r === undefined) return { status: 202, json: { resultId, partId: query.partId, decided: false } };
        return { status: 200, json: { resultId: r.resultId, partId: r.partId, decided: true, verdict: r.verdict, rejectCode: r.rejectCode } };
      },
    };
  }
}

/** The value, or undefined after `ms` or on abort. */
function within<T>(p: Promise<T>, ms: number, signal: AbortSignal): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    signal.addEventListener('abort', () => resolve(undefined), { once: true });
    void p.then((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

export const httpSource = definePlugin({
  manifest: {
    id: HTTP_SOURCE_ID,
    kind: 'source',
    description: "Frames pushed over HTTP (a camera or an MES posting images with a part id) on the station's API: answers with the result id, or the verdict within a wait bound; bounded queue (429 when full).",
    config: Config,
    produces: [{ type: 'image/encoded' }],
    provides: [HTTP_ROUTES_SERVICE],
  },
  async init(config, ctx) {
    ctx.log.info({ route: `/api/steps/${ctx.step}/frames`, queueSize: config.queueSize }, 'HTTP source ready; frames are taken once the API listens');
    return new HttpSource(config, ctx);
  },
});
