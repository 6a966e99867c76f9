import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../../../runtime/contract.js';
import { LinegateError, isLinegateError, messageOf } from '../../../runtime/errors.js';
import { QUEUES, type QueueName } from '../jobs.js';
import { redactUrl } from '../redis-errors.js';
import { RedisLink, isConnectionError } from './redis-link.js';
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

/** How long a start waits for Redis's first answer: a refused password fails the start, Redis away does not. */
const FIRST_CONTACT_MS = 2000;

/** Options every worker takes; each worker extends them (and picks its own concurrency default). */
export const BaseOptions = z.object({
  // Like the station's queue sink: the environment keeps a password out of command lines and files.
  redis: RedisUrl.prefault(() => process.env.LINEGATE_REDIS_URL ?? DEFAULT_REDIS),
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

const links = new WeakMap<Redis, RedisLink>();

/**
 * A connection for a BullMQ Worker (see RedisLink): it reconnects by itself
 * while Redis is away, and its failures are logged once per state.
 */
export function connectWorker(url: string, log: Logger): Redis {
  const link = new RedisLink(url, log);
  links.set(link.redis, link);
  return link.redis;
}

/** Disconnects, politely when Redis answers, at once when it does not. */
export async function release(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status !== 'ready') return redis.disconnect();
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

  const link = links.get(connection);
  const where = redactUrl(settings.redis);
  // Bounded whatever Redis does, so that the caller reaches its signal handling: a worker never hangs in its start.
  const first = link === undefined ? 'ready' : await link.firstContact(FIRST_CONTACT_MS);
  if (first === 'refused') {
    await release(connection);
    throw link?.failing ?? new LinegateError('LG_ERR_QUEUE_AUTH', [where, 'refused']);
  }

  // The BullMQ Worker exists only once Redis has answered: one closed before its connection was ever
  // ready leaves a start-up that fails later, with nobody listening, and takes the process down.
  let worker: Worker | undefined;
  const begin = async (): Promise<void> => {
    const w = new Worker(queue, processor, { connection, prefix: settings.prefix, concurrency: settings.concurrency, autorun: false });
    worker = w;
    w.on('completed', () => void processed++);
    w.on('failed', (job, err) => {
      failed++;
      log.warn({ queue, jobId: job?.id, attemptsMade: job?.attemptsMade, err: err.message }, 'job failed');
    });
    // BullMQ repeats each connection failure for each of its connections: those belong to the link's one state line.
    w.on('error', (err) => (link !== undefined && isConnectionError(err) ? link.note(err) : log.error({ queue, err: err.message }, 'worker error')));
    await w.waitUntilReady();
    // run() resolves only when the worker stops; its failures surface as 'error' events.
    w.run().catch((e: unknown) => log.error({ queue, err: messageOf(e) }, 'worker stopped'));
  };
  const started = { worker: spec.name, queue: `${settings.prefix}:${queue}`, concurrency: settings.concurrency, redis: where };
  const stop = new AbortController();
  let beginning: Promise<void> | undefined;
  if (first === 'ready') {
    try {
      await begin();
    } catch (e) {
      await worker?.close(true).catch(() => undefined);
      await release(connection);
      throw new LinegateError('LG_ERR_QUEUE_REDIS', [where, messageOf(e)], { cause: e });
    }
    log.info(started, 'worker started');
  } else {
    log.warn(started, 'worker started; Redis does not answer yet: jobs are taken once it does (SIGINT/SIGTERM stop the worker at once)');
    beginning = link!
      .ready(stop.signal)
      .then((up) => (up ? begin().then(() => log.info(started, 'Redis answers: the worker takes jobs')) : undefined))
      .catch((e: unknown) => log.error({ queue, err: messageOf(e) }, 'worker could not start'));
  }

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      stop.abort();
      await beginning;
      if (worker !== undefined) {
        const graceful = worker.close();
        if (!(await within(graceful, settings.closeTimeoutMs))) {
          log.warn({ worker: spec.name, closeTimeoutMs: settings.closeTimeoutMs }, 'jobs still running at the close deadline: cancelling them (their locks lapse and another worker takes them)');
          worker.cancelAllJobs('worker closing');
          await within(graceful, 2000);
        }
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
