import { Redis } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../../../runtime/contract.js';
import { LinegateError } from '../../../runtime/errors.js';
import type { PlantSource, PlantWindow, StationCounts, VerdictCounts } from '../../../runtime/plant/types.js';
import { PlantHierarchy, Verdict } from '../../../runtime/result.js';
import { redactUrl, redisError } from '../redis-errors.js';
import { FIELD, INFO, bucketKey, infoKey, minuteOf, stationsKey } from './stats-keys.js';

/*
 * The plant page's view of what `linegate worker stats` counted: every
 * station's info hash and its minute buckets, in one pipelined round trip on
 * one long-lived connection. While Redis is away a read fails at once (no
 * offline queue, no retries of a command) with the coded error, so the page
 * says so instead of waiting; the connection keeps trying in the background.
 * Its state changes are logged once each, not per reconnect attempt.
 */

/** Bound on one read: a plant page asks again within seconds anyway. */
const COMMAND_TIMEOUT_MS = 3000;

export interface PlantReaderOptions {
  readonly redis: string;
  readonly prefix: string;
  readonly log: Logger;
}

const InfoHash = z.object({
  lastAt: z.coerce.number().int().nonnegative().optional(),
  lastVerdict: Verdict.optional(),
  line: z.string().min(1).optional(),
  hierarchy: z.string().optional(),
});

/** The hierarchy the worker stored, or undefined when it is absent or not one (a hand-edited key must not break the page). */
function hierarchyOf(json: string | undefined): StationCounts['hierarchy'] {
  if (json === undefined) return undefined;
  try {
    const h = PlantHierarchy.safeParse(JSON.parse(json));
    return h.success ? h.data : undefined;
  } catch {
    return undefined;
  }
}

/** One station's counts from its info hash and its buckets (oldest first). */
export function stationCounts(station: string, info: Readonly<Record<string, string>>, buckets: readonly Readonly<Record<string, string>>[]): StationCounts | undefined {
  const i = InfoHash.safeParse(info);
  const meta = i.success ? i.data : {};
  const codes = new Map<number, number>();
  const labels = new Map<string, number>();
  const perMinute: VerdictCounts[] = buckets.map((b) => {
    for (const [field, v] of Object.entries(b)) {
      const n = Number(v);
      if (!Number.isFinite(n)) continue;
      if (field.startsWith(FIELD.reject)) {
        const code = Number(field.slice(FIELD.reject.length));
        if (Number.isInteger(code)) codes.set(code, (codes.get(code) ?? 0) + n);
      } else if (field.startsWith(FIELD.label)) {
        const label = field.slice(FIELD.label.length);
        labels.set(label, (labels.get(label) ?? 0) + n);
      }
    }
    const count = (v: string): number => Number(b[`${FIELD.verdict}${v}`] ?? 0) || 0;
    return { pass: count('pass'), fail: count('fail'), error: count('error') };
  });
  // A station the worker has not counted for longer than the retention: its info is gone, and so is it.
  if (meta.lastAt === undefined && perMinute.every((m) => m.pass + m.fail + m.error === 0)) return undefined;
  const hierarchy = hierarchyOf(meta.hierarchy);
  return {
    station,
    ...(meta.line === undefined ? {} : { line: meta.line }),
    ...(hierarchy === undefined ? {} : { hierarchy }),
    lastAt: meta.lastAt === undefined ? null : new Date(meta.lastAt).toISOString(),
    ...(meta.lastVerdict === undefined ? {} : { lastVerdict: meta.lastVerdict }),
    perMinute,
    rejectCodes: [...codes].map(([code, count]) => {
      const name = info[`${INFO.name}${code}`];
      return name === undefined ? { code, count } : { code, name, count };
    }),
    labels: [...labels].map(([label, count]) => ({ label, count })),
  };
}

export class PlantReader implements PlantSource {
  readonly where: string;
  readonly #url: string;
  readonly #prefix: string;
  readonly #log: Logger;
  readonly #redis: Redis;
  /** Why the connection fails now; undefined while it is up (or before its first answer). */
  #failing: LinegateError | undefined;
  #closing: Promise<void> | undefined;

  constructor(o: PlantReaderOptions) {
    this.#url = o.redis;
    this.#prefix = o.prefix;
    this.#log = o.log;
    this.where = redactUrl(o.redis);
    this.#redis = new Redis(o.redis, {
      // A read while Redis is away fails now: the page shows "away" rather than a spinner.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectTimeout: COMMAND_TIMEOUT_MS,
      // Keep trying, at most every 2 s, for as long as the page runs.
      retryStrategy: (attempt) => Math.min(100 * attempt, 2000),
    });
    this.#redis.on('error', (e: unknown) => this.#note(e));
    this.#redis.on('ready', () => {
      if (this.#failing !== undefined) this.#log.info({ redis: this.where }, 'Redis answers again: the plant page reads its counts');
      this.#failing = undefined;
    });
  }

  async read(w: PlantWindow): Promise<readonly StationCounts[]> {
    const last = minuteOf(w.now);
    const first = last - w.minutes + 1;
    try {
      await this.#ready();
      const stations = (await this.#redis.smembers(stationsKey(this.#prefix))).sort();
      const pipe = this.#redis.pipeline();
      for (const s of stations) {
        pipe.hgetall(infoKey(this.#prefix, s));
        for (let m = first; m <= last; m++) pipe.hgetall(bucketKey(this.#prefix, s, m));
      }
      const replies = (await pipe.exec()) ?? [];
      const hashes = replies.map(([err, value]) => {
        if (err !== null) throw err;
        return value as Record<string, string>;
      });
      if (this.#failing !== undefined) {
        this.#log.info({ redis: this.where }, 'Redis answers again: the plant page reads its counts');
        this.#failing = undefined;
      }
      const per = w.minutes + 1;
      return stations.flatMap((s, i) => stationCounts(s, hashes[i * per] ?? {}, hashes.slice(i * per + 1, (i + 1) * per)) ?? []);
    } catch (e) {
      const err = redisError(this.#url, e);
      this.#note(err);
      throw err;
    }
  }

  /**
   * Resolves once the connection is up. While its first connect (or a reconnect) is under way and
   * nothing has failed yet, waits for it, as long as one command may take; a connection known to
   * be failing fails the read now.
   */
  async #ready(): Promise<void> {
    const r = this.#redis;
    if (r.status === 'ready') return;
    const notUp = (): LinegateError => this.#failing ?? new LinegateError('LG_ERR_QUEUE_REDIS', [this.where, `not connected (${r.status})`]);
    if (this.#failing !== undefined || r.status === 'end' || r.status === 'close') throw notUp();
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        r.off('ready', onReady);
        r.off('error', onError);
      };
      const onReady = (): void => (done(), resolve());
      const onError = (): void => (done(), reject(notUp()));
      const timer = setTimeout(onError, COMMAND_TIMEOUT_MS);
      r.once('ready', onReady);
      r.once('error', onError);
    });
  }

  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      if (this.#redis.status === 'ready') {
        try {
          await Promise.race([this.#redis.quit(), new Promise((_, reject) => setTimeout(reject, 1000).unref())]);
          return;
        } catch {
          // not answering: drop the socket
        }
      }
      this.#redis.disconnect();
    })());
  }

  /** Logged when a failing state starts or changes its code, not at every reconnect attempt. */
  #note(e: unknown): void {
    if (this.#closing !== undefined) return;
    const err = redisError(this.#url, e);
    if (this.#failing?.code === err.code) return;
    this.#failing = err;
    this.#log.warn({ code: err.code, redis: this.where, err: err.message }, `${err.message}; the plant page says so and keeps trying`);
  }
}
