import path from 'node:path';
import { z } from 'zod';
import { definePlugin, type EncodedImage, type Health, type PluginContext, type RawImage, type SinkInstance } from '../../runtime/contract.js';
import { messageOf } from '../../runtime/errors.js';
import { ImageArchive, sha256Of } from './archive.js';
import { Forwarder, recordKey } from './forwarder.js';
import type { ArchivedImage, SampleJob } from './jobs.js';
import { Sampler, SamplingConfig } from './sampling.js';
import type { BullmqSender } from './sender.js';
import { Spool } from './spool.js';

const MiB = 1024 * 1024;
const DAY_S = 86_400;

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
      })
      .strict()
      .prefault({}),
    deliveredWaitMs: z.number().int().min(0).max(10_000).default(1000).describe('how long a write waits to report "delivered" rather than "spooled"'),
  })
  .strict();
type Config = z.infer<typeof Config>;

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
  },
  async init(config, ctx) {
    const url = process.env[config.redis.urlEnv] ?? config.redis.url;
    const archive = config.archive.images === 'none' ? undefined : await ImageArchive.open(ctx.resolvePath(config.archive.dir), archiveOptions(config, ctx));
    const spool = await Spool.open(ctx.resolvePath(config.spool.dir ?? path.join('var/spool', ctx.stationId, ctx.step)), { maxBytes: config.spool.maxMiB * MiB, log: ctx.log });
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
    const forwarder = new Forwarder(spool, sender, { batch: 200, retryMinMs: 250, retryMaxMs: 5000, log: ctx.log });
    ctx.log.info({ redis: redactUrl(url), prefix: config.prefix, spool: spool.dir, archive: archive?.dir ?? 'off' }, 'queue sink ready; results go through the spool to Redis');
    return queueSink(config, { spool, sender, forwarder, archive, sampler: new Sampler(config.sampling), where: redactUrl(url) });
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

function queueSink(config: Config, p: Parts): SinkInstance {
  const { spool, forwarder, archive, sampler } = p;
  // Writers waiting to learn whether their records reached Redis in time.
  const waiters = new Map<string, () => void>();
  forwarder.on('forwarded', (keys) => {
    for (const k of keys) waiters.get(k)?.();
  });
  let spoolFull = false;
  spool.on('level', (level) => (spoolFull = level === 'full'));
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
      waiters.set(key, () => finish(true));
    });

  return {
    async write(result, run, image) {
      run.signal.throwIfAborted();
      const sample = sampler.choose(result);
      const keep = archive !== undefined && image !== undefined && (config.archive.images === 'all' || sample !== undefined);
      let stored: ArchivedImage | undefined;
      let lost: string | undefined = image === undefined && archive !== undefined && sample !== undefined ? 'image not kept: the station dropped it while this sink was far behind' : undefined;
      if (keep) {
        try {
          stored = await archive.put(...(await bytesOf(image)));
        } catch (e) {
          lost = `image not archived: ${messageOf(e)}`;
          run.log.error({ err: e, resultId: result.resultId }, 'image could not be archived; its jobs go without it');
        }
      }
      const key = recordKey({ queue: 'results', id: result.resultId });
      const delivered = config.deliveredWaitMs > 0 && forwarder.state !== 'unreachable' ? forwardedWithin(key, config.deliveredWaitMs) : Promise.resolve(false);
      // The content address is worked out here, in the background, not in the part's cycle: the PLC must not wait for it.
      const sha256 = stored?.sha256 ?? (image?.kind === 'encoded' ? sha256Of(image.data) : undefined);
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
        appends.push(spool.append({ queue: 'samples', id: result.resultId, data: job }));
      }
      try {
        await Promise.all(appends);
      } catch (e) {
        waiters.get(key)?.();
        throw e;
      }
      forwarder.wake();
      return (await delivered) ? 'delivered' : 'spooled';
    },
    async flush() {
      await forwarder.drained(5000);
    },
    health(): Health {
      const data = { redis: p.where, state: forwarder.state, spool: spool.dir, pendingBytes: spool.pendingBytes, archivedImages: archive?.count ?? 0, skippedByQuota: sampler.skippedByQuota };
      if (spoolFull) return { status: 'down', detail: `spool full (${spool.pendingBytes} bytes): new records are refused until Redis at ${p.where} takes the backlog`, data };
      if (forwarder.state === 'unreachable' || (forwarder.state !== 'up' && !spool.empty)) {
        return { status: 'degraded', detail: `Redis at ${p.where} unreachable (${forwarder.why || forwarder.state}): ${spool.pendingBytes} bytes spooled in ${spool.dir}, sent when it answers`, data };
      }
      return { status: 'ok', detail: forwarder.state === 'up' ? `queues on ${p.where}` : `waiting for Redis at ${p.where}; nothing spooled`, data };
    },
    close() {
      return (closing ??= (async () => {
        for (const w of waiters.values()) w();
        await forwarder.stop();
        await p.sender.close();
        await spool.close();
      })());
    },
  };
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
