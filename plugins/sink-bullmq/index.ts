import path from 'node:path';
import { z } from 'zod';
import { EXTRA_SAMPLES_SERVICE, definePlugin, type EncodedImage, type ExtraSamples, type Logger, type PluginContext, type RawImage, type SinkInstance } from '../../runtime/contract.js';
import { isLinegateError, messageOf } from '../../runtime/errors.js';
import { ImageArchive, sha256Of } from './archive.js';
import { Forwarder, recordKey } from './forwarder.js';
import { queueSinkHealth } from './health.js';
import type { ArchivedImage, SampleJob } from './jobs.js';
import { Sampler, SamplingConfig } from './sampling.js';
import type { BullmqSender } from './sender.js';
import { Spool } from './spool.js';

const MiB = 1024 * 1024;
const DAY_S = 86_400;
/** Room in a sample record for everything but the inline image: the result, the reasons, the keys. */
const RECORD_MARGIN_BYTES = 256 * 1024;

/** The record bytes an inline image of `bytes` needs: base64 grows it by a third. */
export const inlineRecordBytes = (bytes: number): number => Math.ceil(bytes / 3) * 4 + RECORD_MARGIN_BYTES;

const Config = z
  .object({
    redis: z
      .object({
        url: z.string().regex(/^rediss?:\/\//, 'a redis:// or rediss:// URL').default('redis://127.0.0.1:6379'),
        urlEnv: z.string().default('LINEGATE_REDIS_URL').describe('when this environment variable is set, its value is the URL: a password stays out of the station file'),
        connectTimeoutMs: z.number().int().min(100).max(60_000).default(2000),
        commandTimeoutMs: z.number().int().min(50).max(60_000).default(2000).describe('a Redis slower than this counts as away; records stay spooled'),
      })
      .strict()
      .prefault({}),
    prefix: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('linegate').describe('BullMQ key prefix: queues are <prefix>:results and <prefix>:samples'),
    job: z
      .object({
        attempts: z.number().int().min(1).max(100).default(5),
        backoffMs: z.number().int().min(0).default(1000),
        keepCompletedDays: z.number().min(0).default(7).describe('completed jobs kept this long: a resend within it is recognised by job id'),
        keepCompletedCount: z.number().int().min(0).default(100_000),
        keepFailedDays: z.number().min(0).default(30),
      })
      .strict()
      .prefault({}),
    archive: z
      .object({
        dir: z.string().min(1).default('var/archive'),
        images: z.enum(['samples', 'all', 'none']).default('samples').describe('which frames are kept: those chosen as samples, every one, or none'),
        maxMiB: z.number().positive().default(2048),
        maxAgeDays: z.number().min(0).default(30).describe('0: kept until the size limit'),
        inlineMaxBytes: z.number().int().min(0).max(4 * MiB).default(0).describe('images up to this size also travel inside their job (for workers without the archive folder)'),
      })
      .strict()
      .prefault({}),
    sampling: SamplingConfig.prefault({}),
    spool: z
      .object({
        dir: z.string().min(1).optional().describe('default var/spool/<station>/<step>'),
        maxMiB: z.number().positive().default(512),
        maxRecordMiB: z.number().min(0.5).max(64).default(8).describe('the largest record the spool takes (a sample with its inline image); a larger one is refused when it is written, never read'),
      })
      .strict()
      .prefault({}),
    forwardLingerMs: z
      .number()
      .int()
      .min(0)
      .max(5000)
      .default(50)
      .describe('records gather this long before a batch that would not be full goes to Redis: each batch costs a spool read, a round trip and a durable cursor move, whatever its size'),
    deliveredWaitMs: z.number().int().min(0).max(10_000).default(1000).describe('how long a write waits to report "delivered" rather than "spooled"'),
  })
  .strict()
  .superRefine((c, ctx) => {
    // The inline limit and the record limit must agree: an image the config lets travel inline must fit the record that carries it.
    const need = inlineRecordBytes(c.archive.inlineMaxBytes);
    if (c.archive.inlineMaxBytes > 0 && need > recordLimit(c)) {
      ctx.addIssue({ code: 'custom', path: ['archive', 'inlineMaxBytes'], message: `an inline image of ${c.archive.inlineMaxBytes} bytes needs records of ${need} bytes, more than the spool takes in one (spool.maxRecordMiB ${c.spool.maxRecordMiB}, spool.maxMiB ${c.spool.maxMiB})` });
    }
  });
type Config = z.infer<typeof Config>;

/** The largest record the spool takes: its own limit, never more than the whole spool. */
const recordLimit = (c: Pick<Config, 'spool'>): number => Math.floor(Math.min(c.spool.maxRecordMiB, c.spool.maxMiB) * MiB);

/**
 * Every result, and the samples chosen for retraining, to BullMQ queues on
 * Redis, through a local durable spool: the station never waits on Redis and
 * loses nothing while it is away. Images go to a content-addressed archive;
 * jobs carry their key and hash.
 */
export const bullmqSink = definePlugin({
  manifest: {
    id: 'core/bullmq@1',
    kind: 'sink',
    description: 'Queues every result (and retraining samples, with the reason each was chosen) on BullMQ/Redis through a durable local spool; images to a content-addressed archive.',
    config: Config,
    critical: false,
    // A write resolves once its records are fsync'd in the spool: a source may settle the part then.
    durable: true,
    // Frames the runtime chooses for retraining (a shadow model's disagreements) go to the samples queue too.
    provides: [EXTRA_SAMPLES_SERVICE],
  },
  async init(config, ctx) {
    const url = process.env[config.redis.urlEnv] ?? config.redis.url;
    const archive = config.archive.images === 'none' ? undefined : await ImageArchive.open(ctx.resolvePath(config.archive.dir), archiveOptions(config, ctx));
    const spool = await Spool.open(ctx.resolvePath(config.spool.dir ?? path.join('var/spool', ctx.stationId, ctx.step)), {
      maxBytes: config.spool.maxMiB * MiB,
      maxRecordBytes: recordLimit(config),
      log: ctx.log,
    });
    // Loaded on first use: bullmq and ioredis add a fifth of a second to every CLI start otherwise.
    const { BullmqSender, redactUrl } = await import('./sender.js');
    const sender = new BullmqSender({
      url,
      prefix: config.prefix,
      job: {
        attempts: config.job.attempts,
        backoffMs: config.job.backoffMs,
        keepCompletedSeconds: Math.round(config.job.keepCompletedDays * DAY_S),
        keepCompletedCount: config.job.keepCompletedCount,
        keepFailedSeconds: Math.round(config.job.keepFailedDays * DAY_S),
      },
      connectTimeoutMs: config.redis.connectTimeoutMs,
      commandTimeoutMs: config.redis.commandTimeoutMs,
      log: ctx.log,
    });
    const forwarder = new Forwarder(spool, sender, { batch: 200, retryMinMs: 250, retryMaxMs: 5000, lingerMs: config.forwardLingerMs, log: ctx.log });
    ctx.log.info({ redis: redactUrl(url), prefix: config.prefix, spool: spool.dir, archive: archive?.dir ?? 'off' }, 'queue sink ready; results go through the spool to Redis');
    return queueSink(config, { spool, sender, forwarder, archive, sampler: new Sampler(config.sampling), where: redactUrl(url) }, ctx.log);
  },
});

function archiveOptions(config: Config, ctx: PluginContext) {
  return { maxBytes: config.archive.maxMiB * MiB, maxAgeMs: config.archive.maxAgeDays * DAY_S * 1000, inlineMaxBytes: config.archive.inlineMaxBytes, log: ctx.log };
}

interface Parts {
  readonly spool: Spool;
  readonly sender: BullmqSender;
  readonly forwarder: Forwarder;
  readonly archive: ImageArchive | undefined;
  readonly sampler: Sampler;
  readonly where: string;
}

function queueSink(config: Config, p: Parts, log: Logger): SinkInstance {
  const { spool, forwarder, archive, sampler } = p;
  // Writers waiting to learn whether their records reached Redis in time: told true once forwarded, false otherwise.
  const waiters = new Map<string, (ok: boolean) => void>();
  forwarder.on('forwarded', (keys) => {
    for (const k of keys) waiters.get(k)?.(true);
  });
  // Redis away or refusing: a writer waiting to say "delivered" would only wait out its time; it is "spooled" now.
  forwarder.on('state', () => {
    if (forwarder.stuck) for (const w of [...waiters.values()]) w(false);
  });
  let spoolFull = false;
  spool.on('level', (level) => (spoolFull = level === 'full'));
  const images = new ArchiveFaults(log);
  forwarder.start();
  let closing: Promise<void> | undefined;

  const forwardedWithin = (key: string, ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => finish(false), ms);
      const finish = (ok: boolean): void => {
        clearTimeout(timer);
        waiters.delete(key);
        resolve(ok);
      };
      waiters.set(key, finish);
    });

  /** A sample too large for one record because of its inline image goes without the inline bytes (the archive keeps them). */
  const appendSample = async (job: SampleJob, id: string): Promise<void> => {
    try {
      await spool.append({ queue: 'samples', id, data: job });
    } catch (e) {
      if (!(isLinegateError(e) && e.code === 'LG_ERR_QUEUE_RECORD_TOO_LARGE' && job.image?.inline !== undefined)) throw e;
      const { inline: _inline, ...image } = job.image;
      await spool.append({ queue: 'samples', id, data: { ...job, image, why: [...job.why, `image not inline: ${e.message}`] } });
    }
  };

  /** The frame into the archive; what went wrong instead, when it could not be kept. */
  const archiveImage = async (image: EncodedImage | RawImage, result: { frame: { sha256?: string | undefined } }): Promise<{ stored?: ArchivedImage; lost?: string; error?: unknown }> => {
    if (archive === undefined) return {};
    try {
      const [data, format] = await bytesOf(image);
      // An encoded frame is stored as it came, and the station already hashed those bytes (withFrameHash): not twice.
      const stored = await archive.put(data, format, image.kind === 'encoded' ? result.frame.sha256 : undefined);
      images.ok();
      return { stored };
    } catch (e) {
      return { lost: `image not archived: ${messageOf(e)}`, error: e };
    }
  };

  const extraSamples: ExtraSamples = {
    async submit(s) {
      const sample = sampler.extra(s.result, s.reason, s.why);
      if (sample === undefined) return false;
      const { stored, lost, error } = await archiveImage(s.image, s.result);
      if (error !== undefined) images.failed(error, s.result.resultId, true);
      const job: SampleJob = {
        result: s.result,
        label: sample.label,
        labelSource: sample.labelSource,
        reasons: [...sample.reasons],
        why: lost === undefined ? [...sample.why] : [...sample.why, lost],
        ...(stored === undefined ? {} : { image: stored }),
        shadow: { model: s.other.model, verdict: s.other.verdict, rejectCode: s.other.rejectCode, scores: { ...s.other.scores }, defects: [...s.other.defects] },
      };
      // Its own job id: the same frame may be a sample of the station's own choosing too.
      await appendSample(job, `${s.result.resultId}-${s.reason}`);
      forwarder.wake();
      return true;
    },
  };

  return {
    service: (name) => (name === EXTRA_SAMPLES_SERVICE ? extraSamples : undefined),
    async write(result, run, image, info) {
      run.signal.throwIfAborted();
      const sample = sampler.choose(result);
      const keep = archive !== undefined && image !== undefined && (config.archive.images === 'all' || sample !== undefined);
      let stored: ArchivedImage | undefined;
      let lost: string | undefined = image === undefined && archive !== undefined && sample !== undefined ? 'image not kept: the station dropped it while this sink was far behind' : undefined;
      let archiveError: unknown;
      if (keep) {
        const kept = await archiveImage(image, result);
        stored = kept.stored;
        lost = kept.lost ?? lost;
        archiveError = kept.error;
      }
      const key = recordKey({ queue: 'results', id: result.resultId });
      // Waiting to say "delivered" holds the lane: only while nothing waits behind, so a burst is spooled at disk speed.
      const wait = config.deliveredWaitMs > 0 && !forwarder.stuck && (info?.behind ?? 0) === 0;
      const delivered = wait ? forwardedWithin(key, config.deliveredWaitMs) : Promise.resolve(false);
      // A station hashes an encoded frame once its PLC has the verdict; a raw frame's address is its PNG's, known only here.
      const sha256 = stored?.sha256 ?? (image?.kind === 'encoded' ? (result.frame.sha256 ?? sha256Of(image.data)) : undefined);
      const record = sha256 === undefined || result.frame.sha256 !== undefined ? result : { ...result, frame: { ...result.frame, sha256 } };
      const appends = [spool.append({ queue: 'results', id: result.resultId, data: record })];
      if (sample !== undefined) {
        const job: SampleJob = {
          result: record,
          label: sample.label,
          labelSource: sample.labelSource,
          reasons: [...sample.reasons],
          why: lost === undefined ? [...sample.why] : [...sample.why, lost],
          ...(stored === undefined ? {} : { image: stored }),
        };
        appends.push(appendSample(job, result.resultId));
      }
      try {
        await Promise.all(appends);
      } catch (e) {
        waiters.get(key)?.(false);
        // One disk full, one state: the failed write is what the station logs, not the image too.
        if (archiveError !== undefined) images.failed(archiveError, result.resultId, false);
        throw e;
      }
      if (archiveError !== undefined) images.failed(archiveError, result.resultId, true);
      forwarder.wake();
      return (await delivered) ? 'delivered' : 'spooled';
    },
    async flush() {
      await forwarder.drained(5000);
    },
    health: () => queueSinkHealth({ where: p.where, forwarder, spool, spoolFull, archive, archiveFault: images.fault, skippedByQuota: sampler.skippedByQuota }),
    close() {
      return (closing ??= (async () => {
        // Still waiting for Redis: what they are is spooled, not delivered.
        for (const w of waiters.values()) w(false);
        archive?.close();
        await forwarder.stop();
        await p.sender.close();
        await spool.close();
      })());
    },
  };
}

/** Images that cannot be archived (a full disk): one line when it starts and one when it works again, not one per part. */
class ArchiveFaults {
  readonly #log: Logger;
  #fault: string | undefined;
  #count = 0;
  #logged = false;

  constructor(log: Logger) {
    this.#log = log;
  }

  get fault(): string | undefined {
    return this.#fault;
  }

  /** `log` false: the write failed as a whole, and the station logs that. */
  failed(e: unknown, resultId: string, log: boolean): void {
    this.#count++;
    this.#fault ??= isLinegateError(e) ? `${e.code}: ${e.message}` : messageOf(e);
    if (!log || this.#logged) return;
    this.#logged = true;
    this.#log.error({ err: e, resultId }, 'images cannot be archived; their jobs go without them (further failures are counted, not logged)');
  }

  ok(): void {
    if (this.#fault === undefined) return;
    if (this.#logged) this.#log.info({ failed: this.#count, was: this.#fault }, `images are archived again; ${this.#count} could not be`);
    this.#fault = undefined;
    this.#count = 0;
    this.#logged = false;
  }
}

/** The frame's own bytes; raw pixels (no encoding to keep) are stored as lossless PNG. */
async function bytesOf(image: EncodedImage | RawImage): Promise<[Uint8Array, string | undefined]> {
  if (image.kind === 'encoded') return [image.data, image.format];
  const { default: sharp } = await import('sharp');
  let data = image.data;
  if (image.colorOrder === 'BGR') {
    data = Uint8Array.from(image.data);
    for (let i = 0; i < data.length; i += 3) [data[i], data[i + 2]] = [data[i + 2]!, data[i]!];
  }
  const png = await sharp(data, { raw: { width: image.width, height: image.height, channels: image.channels } }).png().toBuffer();
  return [png, 'png'];
}
