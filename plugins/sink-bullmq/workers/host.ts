import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../../../runtime/contract.js';
import { LinegateError, isLinegateError, messageOf } from '../../../runtime/errors.js';
import { QUEUES, type QueueName } from '../jobs.js';
import { redactUrl } from '../sender.js';
import type { WorkerHandle } from './types.js';

/*
 * What every worker shares: options common to all, the Redis connection, the
 * BullMQ Worker with its job parsing and error mapping, and a bounded,
 * idempotent close. A worker supplies only its schema and its handler.
 */

export const DEFAULT_REDIS = 'redis://127.0.0.1:6379';
export const DEFAULT_PREFIX = 'linegate';

export const RedisUrl = z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' });
export const Prefix = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[^\s{}]+$/, 'no spaces or braces');

/** Options every worker takes; each worker extends them (and picks its own concurrency default). */
export const BaseOptions = z.object({
  redis: RedisUrl.default(DEFAULT_REDIS),
  prefix: Prefix.default(DEFAULT_PREFIX),
  concurrency: z.number().int().min(1).max(64),
  closeTimeoutMs: z.number().int().positive().default(10_000).describe('how long close() waits for running jobs before cancelling them'),
});
export type BaseSettings = z.infer<typeof BaseOptions>;

/** Validates once and freezes; a bad option is LG_ERR_WORKER_OPTIONS naming it. */
export function parseOptions<S extends z.ZodType>(worker: string, schema: S, input: Readonly<Record<string, unknown>>): Readonly<z.infer<S>> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.code === 'unrecognized_keys' ? issue.keys.join(', ') : (issue?.path.map(String).join('.') ?? '');
    const why = issue?.code === 'unrecognized_keys' ? `not an option of this worker` : (issue?.message ?? 'invalid');
    throw new LinegateError('LG_ERR_WORKER_OPTIONS', [worker, field || '(options)', why], { path: field });
  }
  return Object.freeze(parsed.data);
}

/**
 * A connection for a BullMQ Worker: `maxRetriesPerRequest: null` because
 * BullMQ's blocking commands must wait out a Redis restart rather than fail.
 * While Redis is away ioredis reconnects by itself; each new kind of
 * connection error is logged once, not once per retry.
 */
export function connectWorker(url: string, log: Logger): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  let last = '';
  redis.on('error', (e: unknown) => {
    const msg = messageOf(e);
    if (msg !== last) log.warn({ redis: redactUrl(url), err: msg }, 'Redis connection error; retrying');
    last = msg;
  });
  redis.on('ready', () => {
    if (last !== '') log.info({ redis: redactUrl(url) }, 'Redis connection back');
    last = '';
  });
  return redis;
}

/** Disconnects, politely when Redis answers, at once when it does not. */
export async function release(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  try {
    await Promise.race([redis.quit(), new Promise((_, reject) => setTimeout(reject, 1000).unref())]);
  } catch {
    redis.disconnect();
  }
}

export interface JobInfo {
  readonly id: string;
  readonly attemptsMade: number;
}

export interface HostSpec<T, R> {
  readonly name: string;
  readonly queue: QueueName;
  readonly schema: z.ZodType<T>;
  readonly settings: BaseSettings;
  /** Owned by the host from here on: released on close. */
  readonly connection: Redis;
  readonly log: Logger;
  handle(data: T, job: JobInfo, signal: AbortSignal): Promise<R>;
  /** Runs after the last job has finished, before Redis is released. */
  onClose?(): Promise<void>;
}

/** BullMQ fails an UnrecoverableError at once, whatever `attempts` says; the code leads its message so dashboards show it. */
function unrecoverable(e: LinegateError): UnrecoverableError {
  const u = new UnrecoverableError(`${e.code}: ${e.message}`);
  u.cause = e;
  return u;
}

/** Resolves true when `p` settles within `ms`, false otherwise. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

export async function startHost<T, R>(spec: HostSpec<T, R>): Promise<WorkerHandle> {
  const { log, settings, connection } = spec;
  const queue = QUEUES[spec.queue];
  let processed = 0;
  let failed = 0;

  // Three parameters, no defaults: BullMQ passes the AbortSignal only to a processor whose length is 3.
  const processor = async (job: Job, _token: string | undefined, signal: AbortSignal | undefined): Promise<R> => {
    const parsed = spec.schema.safeParse(job.data);
    if (!parsed.success) throw unrecoverable(new LinegateError('LG_ERR_QUEUE_JOB_INVALID', [job.id ?? '(no id)', queue, z.prettifyError(parsed.error)]));
    try {
      return await spec.handle(parsed.data, { id: job.id ?? '', attemptsMade: job.attemptsMade }, signal ?? new AbortController().signal);
    } catch (e) {
      // Retrying cannot fix a missing image or a corrupt one: fail now instead of after every attempt.
      if (isLinegateError(e) && !e.retryable) throw unrecoverable(e);
      throw e;
    }
  };

  const worker = new Worker(queue, processor, { connection, prefix: settings.prefix, concurrency: settings.concurrency, autorun: false });
  worker.on('completed', () => void processed++);
  worker.on('failed', (job, err) => {
    failed++;
    log.warn({ queue, jobId: job?.id, attemptsMade: job?.attemptsMade, err: err.message }, 'job failed');
  });
  worker.on('error', (err) => log.error({ queue, err: err.message }, 'worker error'));

  try {
    await worker.waitUntilReady();
  } catch (e) {
    await release(connection);
    throw new LinegateError('LG_ERR_QUEUE_REDIS', [redactUrl(settings.redis), messageOf(e)], { cause: e });
  }
  // run() resolves only when the worker stops; its failures surface as 'error' events.
  worker.run().catch((e: unknown) => log.error({ queue, err: messageOf(e) }, 'worker stopped'));
  log.info({ worker: spec.name, queue: `${settings.prefix}:${queue}`, concurrency: settings.concurrency, redis: redactUrl(settings.redis) }, 'worker started');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      const graceful = worker.close();
      if (!(await within(graceful, settings.closeTimeoutMs))) {
        log.warn({ worker: spec.name, closeTimeoutMs: settings.closeTimeoutMs }, 'jobs still running at the close deadline: cancelling them (their locks lapse and another worker takes them)');
        worker.cancelAllJobs('worker closing');
        await within(graceful, 2000);
      }
      try {
        await spec.onClose?.();
      } finally {
        await release(connection);
        log.info({ worker: spec.name, processed, failed }, 'worker closed');
      }
    })());

  return { name: spec.name, processed: () => processed, failed: () => failed, close };
}
