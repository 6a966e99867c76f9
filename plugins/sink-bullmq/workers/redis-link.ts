import { Redis } from 'ioredis';
import type { Logger } from '../../../runtime/contract.js';
import type { LinegateError } from '../../../runtime/errors.js';
import { isAuthRefusal, redactUrl, redisError } from '../redis-errors.js';

/*
 * A worker's Redis connection as one state: failing (with why) or up. ioredis
 * and BullMQ report every failed reconnect, several times each (the worker's
 * own connections too): a wrong password made ~650 error lines in ten
 * minutes. Here a failure is logged when the state starts, and the return of
 * the connection once; a refused password is its own coded error.
 */

/** The first thing a new connection met. */
export type FirstContact = 'ready' | 'refused' | 'away';

/** Errors that say the connection is gone or refused, not that a job or a command went wrong. */
const CONNECTION = /ECONN|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH|EAI_AGAIN|EPIPE|Connection is closed|connect/i;

export function isConnectionError(e: unknown): boolean {
  return isAuthRefusal(e) || CONNECTION.test(e instanceof Error ? e.message : String(e));
}

export class RedisLink {
  readonly redis: Redis;
  readonly #url: string;
  readonly #log: Logger;
  #failing: LinegateError | undefined;
  #listeners = new Set<() => void>();

  constructor(url: string, log: Logger) {
    this.#url = url;
    this.#log = log;
    // maxRetriesPerRequest null: BullMQ's blocking commands must wait out a Redis restart rather than fail.
    this.redis = new Redis(url, { maxRetriesPerRequest: null });
    this.redis.on('error', (e: unknown) => this.note(e));
    this.redis.on('ready', () => this.#up());
  }

  get where(): string {
    return redactUrl(this.#url);
  }

  /** Why the connection fails now, or undefined while it is up (or not tried yet). */
  get failing(): LinegateError | undefined {
    return this.#failing;
  }

  /**
   * An error from this connection or from BullMQ's: logged only when it starts a failing state, or
   * turns "away" into "password refused" (after WRONGPASS, ioredis also reports the closed socket).
   */
  note(e: unknown): void {
    const err = redisError(this.#url, e);
    const was = this.#failing;
    if (was !== undefined && (was.code === err.code || was.code === 'LG_ERR_QUEUE_AUTH')) return;
    this.#failing = err;
    if (err.code === 'LG_ERR_QUEUE_AUTH') this.#log.error({ err, code: err.code, redis: this.where }, `${err.message}; no job is taken until it does`);
    else this.#log.warn({ code: err.code, redis: this.where, err: err.message }, `${err.message}; retrying (further errors are not logged until Redis is back)`);
    this.#tell();
  }

  /**
   * How the first contact went, within `ms`: `ready`, `refused` (the password), or `away` (another
   * failure, or nothing yet): a worker then waits for Redis in the background, and still stops at once.
   */
  firstContact(ms: number): Promise<FirstContact> {
    const now = (): FirstContact | undefined => (this.redis.status === 'ready' ? 'ready' : this.#failing?.code === 'LG_ERR_QUEUE_AUTH' ? 'refused' : undefined);
    const known = now();
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve) => {
      const done = (c: FirstContact): void => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        resolve(c);
      };
      // A refused connection says "away" as clearly as the deadline does; a refused password is told apart by its own reply.
      const check = (): void => {
        const c = now() ?? (this.#failing !== undefined ? 'away' : undefined);
        if (c !== undefined) done(c);
      };
      const timer = setTimeout(() => done(now() ?? 'away'), ms);
      this.#listeners.add(check);
    });
  }

  /** Resolves true once the connection is ready (at once when it is), false when `signal` aborts first. */
  ready(signal: AbortSignal): Promise<boolean> {
    if (this.redis.status === 'ready') return Promise.resolve(true);
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (up: boolean): void => {
        this.#listeners.delete(check);
        signal.removeEventListener('abort', onAbort);
        resolve(up);
      };
      const check = (): void => {
        if (this.redis.status === 'ready') done(true);
      };
      const onAbort = (): void => done(false);
      this.#listeners.add(check);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #up(): void {
    const was = this.#failing;
    this.#failing = undefined;
    if (was !== undefined) this.#log.info({ redis: this.where, was: was.code }, 'Redis connection back');
    this.#tell();
  }

  #tell(): void {
    for (const f of [...this.#listeners]) f();
  }
}
