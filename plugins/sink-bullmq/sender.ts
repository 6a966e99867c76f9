import { Queue, type JobsOptions } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from '../../runtime/contract.js';
import { withTimeout } from '../../runtime/execute/bounded.js';
import { LinegateError } from '../../runtime/errors.js';
import type { Sender } from './forwarder.js';
import { JOB_NAMES, QUEUES, type QueueName } from './jobs.js';
import { isAuthRefusal, redactUrl, redisError } from './redis-errors.js';
import type { SpoolRecord } from './spool.js';

export { redactUrl } from './redis-errors.js';

export interface JobPolicy {
  readonly attempts: number;
  readonly backoffMs: number;
  /** Kept this long after completion: a resend within it is recognised by job id and dropped. */
  readonly keepCompletedSeconds: number;
  readonly keepCompletedCount: number;
  readonly keepFailedSeconds: number;
}

export interface SenderOptions {
  readonly url: string;
  readonly prefix: string;
  readonly job: JobPolicy;
  readonly connectTimeoutMs: number;
  /** A Redis slower than this counts as away: the records stay spooled. */
  readonly commandTimeoutMs: number;
  readonly log: Logger;
}

/**
 * The BullMQ side of the forwarder: one ioredis connection shared by the two
 * queues, failing fast while Redis is away (no command retries: the spool
 * keeps the records) and reconnecting by itself.
 */
export class BullmqSender implements Sender {
  readonly #redis: Redis;
  readonly #queues: Record<QueueName, Queue>;
  readonly #opts: JobsOptions;
  readonly #url: string;
  readonly #where: string;
  readonly #connectTimeoutMs: number;
  /** The connection's last failure: a refused password is told apart from "away" when a send cannot go. */
  #lastError: unknown;
  #closing: Promise<void> | undefined;

  constructor(o: SenderOptions) {
    this.#url = o.url;
    this.#where = redactUrl(o.url);
    this.#connectTimeoutMs = o.connectTimeoutMs;
    this.#redis = new Redis(o.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      connectTimeout: o.connectTimeoutMs,
      commandTimeout: o.commandTimeoutMs,
      retryStrategy: (times) => Math.min(times * 250, 2000),
    });
    // ioredis reports every failed reconnect; the forwarder already says, once, when Redis goes and comes back.
    let lastWhy = '';
    this.#redis.on('error', (e: Error) => {
      const why = redisError(o.url, e).message;
      if (why !== lastWhy) o.log.debug({ redis: this.#where, err: why }, 'redis connection error');
      lastWhy = why;
      this.#lastError = e;
    });
    this.#redis.on('ready', () => (this.#lastError = undefined));
    this.#redis.connect().catch(() => undefined);
    const queue = (name: QueueName): Queue => {
      const q = new Queue(QUEUES[name], { connection: this.#redis, prefix: o.prefix });
      q.on('error', () => undefined); // the same errors as the connection's, handled above
      return q;
    };
    this.#queues = { results: queue('results'), samples: queue('samples') };
    this.#opts = {
      attempts: o.job.attempts,
      backoff: { type: 'exponential', delay: o.job.backoffMs },
      removeOnComplete: { age: o.job.keepCompletedSeconds, count: o.job.keepCompletedCount },
      removeOnFail: { age: o.job.keepFailedSeconds },
    };
  }

  async send(records: readonly SpoolRecord[]): Promise<void> {
    await this.#ready();
    // One addBulk per queue keeps each queue's order; a record already on its queue (same job id) is not added again.
    for (const name of Object.keys(QUEUES) as QueueName[]) {
      const mine = records.filter((r) => r.queue === name);
      if (mine.length === 0) continue;
      try {
        await this.#queues[name].addBulk(mine.map((r) => ({ name: JOB_NAMES[name], data: r.data, opts: { ...this.#opts, jobId: r.id } })));
      } catch (e) {
        throw redisError(this.#url, e);
      }
    }
  }

  /** Connected now, or within the connect time-out (the first batch after a start races the first connection). */
  #ready(): Promise<void> {
    const r = this.#redis;
    if (r.status === 'ready') return Promise.resolve();
    // 'reconnecting' means an attempt already failed: Redis is away (or refused the password), and the spool is the place to wait.
    if (r.status === 'reconnecting' || r.status === 'end' || r.status === 'close' || this.#closing !== undefined) {
      if (isAuthRefusal(this.#lastError)) return Promise.reject(redisError(this.#url, this.#lastError));
      return Promise.reject(new LinegateError('LG_ERR_QUEUE_REDIS', [this.#where, `not connected (${r.status})`]));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new LinegateError('LG_ERR_QUEUE_REDIS', [this.#where, `not connected within ${this.#connectTimeoutMs} ms (${r.status})`])), this.#connectTimeoutMs);
      const onReady = (): void => done();
      const onEnd = (): void => done(new LinegateError('LG_ERR_QUEUE_REDIS', [this.#where, 'connection closed']));
      // A refused password ends the attempt at once: "not connected within N ms" would hide why.
      const onError = (e: unknown): void => {
        if (isAuthRefusal(e)) done(redisError(this.#url, e));
      };
      const done = (err?: Error): void => {
        clearTimeout(timer);
        r.off('ready', onReady);
        r.off('end', onEnd);
        r.off('error', onError);
        if (err === undefined) resolve();
        else reject(err);
      };
      r.on('ready', onReady);
      r.on('end', onEnd);
      r.on('error', onError);
    });
  }

  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      // The connection goes first: BullMQ's start-up on a shared connection (a version check) then fails
      // while its queues still listen for errors. Closed mid-way, that rejection would go unhandled.
      this.#redis.disconnect();
      const settled = Object.values(this.#queues).map((q) => q.waitUntilReady().catch(() => undefined));
      await withTimeout(Promise.all(settled), this.#connectTimeoutMs, () => new Error('not settled')).catch(() => undefined);
      await Promise.all(Object.values(this.#queues).map((q) => q.close().catch(() => undefined)));
    })());
  }
}
