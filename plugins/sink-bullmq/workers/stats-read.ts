import { Redis } from 'ioredis';
import { z } from 'zod';
import { DEFAULT_PREFIX, DEFAULT_REDIS, Prefix, RedisUrl, parseOptions, release } from './host.js';
import { redisError } from '../redis-errors.js';
import { FIELD, MINUTE_MS, bucketKey, minuteOf, stationsKey } from './stats-keys.js';

/*
 * Reads what the stats worker counted: the sum of a station's last N minute
 * buckets, as plain JSON for `linegate stats` and dashboards.
 */

const ReaderOptions = z
  .object({
    redis: RedisUrl.prefault(() => process.env.LINEGATE_REDIS_URL ?? DEFAULT_REDIS),
    prefix: Prefix.default(DEFAULT_PREFIX),
  })
  .strict();

const StatsQuery = ReaderOptions.extend({
  station: z.string().min(1),
  minutes: z.number().int().min(1).max(7 * 24 * 60).default(60),
  /** The moment the window ends in (ms or Date); default now. */
  now: z.union([z.number(), z.date().transform((d) => d.getTime())]).optional(),
}).strict();

export type ReaderOptionsInput = z.input<typeof ReaderOptions>;
export type StatsQueryInput = z.input<typeof StatsQuery>;

export interface StationStats {
  readonly station: string;
  /** Start of the first minute bucket (ISO). */
  readonly from: string;
  /** End of the last minute bucket, the one holding `now` (ISO, exclusive; may lie ahead of now). */
  readonly to: string;
  readonly minutes: number;
  readonly parts: number;
  /** pass / parts; null when no part was counted. */
  readonly yield: number | null;
  /** parts / minutes (the current minute counts as a whole one). */
  readonly throughputPerMin: number;
  readonly verdicts: { readonly pass: number; readonly fail: number; readonly error: number };
  readonly pareto: {
    /** Parts not passed, by reject code, most frequent first. */
    readonly byRejectCode: readonly { readonly code: number; readonly count: number; readonly share: number }[];
    /** Parts with a fired defect, by defect label, most frequent first. */
    readonly byLabel: readonly { readonly label: string; readonly count: number; readonly share: number }[];
  };
  /** Upper bounds of the latency buckets the percentiles fall in (at most 12 % above the true value); null without parts. */
  readonly latencyMs: { readonly p50: number | null; readonly p95: number | null; readonly p99: number | null };
}

/** A short-lived connection that fails fast: a reader must answer or say why, not wait for Redis forever. */
async function withRedis<T>(url: string, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000, retryStrategy: () => null });
  // The socket's own error (ECONNREFUSED...) says more than the "Connection is closed" the command then fails with.
  let socketError: unknown;
  redis.on('error', (e: unknown) => (socketError = e));
  try {
    await redis.connect();
    return await fn(redis);
  } catch (e) {
    throw redisError(url, socketError ?? e);
  } finally {
    await release(redis);
  }
}

/** Every station the stats worker has counted, sorted. */
export async function listStations(options: ReaderOptionsInput = {}): Promise<string[]> {
  const o = parseOptions('stats', ReaderOptions, options);
  return withRedis(o.redis, async (redis) => (await redis.smembers(stationsKey(o.prefix))).sort());
}

export async function readStats(options: StatsQueryInput): Promise<StationStats> {
  const o = parseOptions('stats', StatsQuery, options);
  const last = minuteOf(o.now ?? Date.now());
  const first = last - o.minutes + 1;
  const buckets = await withRedis(o.redis, async (redis) => {
    const pipe = redis.pipeline();
    for (let m = first; m <= last; m++) pipe.hgetall(bucketKey(o.prefix, o.station, m));
    const replies = (await pipe.exec()) ?? [];
    return replies.map(([err, value]) => {
      if (err !== null) throw err;
      return value as Record<string, string>;
    });
  });

  const sum = new Map<string, number>();
  for (const b of buckets) for (const [field, v] of Object.entries(b)) sum.set(field, (sum.get(field) ?? 0) + Number(v));
  const group = (prefix: string): [string, number][] => [...sum].filter(([f]) => f.startsWith(prefix)).map(([f, n]) => [f.slice(prefix.length), n]);

  const verdicts = { pass: sum.get(`${FIELD.verdict}pass`) ?? 0, fail: sum.get(`${FIELD.verdict}fail`) ?? 0, error: sum.get(`${FIELD.verdict}error`) ?? 0 };
  const parts = verdicts.pass + verdicts.fail + verdicts.error;
  const pareto = <T>(entries: [string, number][], key: (k: string) => T, order: (a: T, b: T) => number): { key: T; count: number; share: number }[] => {
    const total = entries.reduce((t, [, n]) => t + n, 0);
    return entries
      .map(([k, count]) => ({ key: key(k), count, share: total === 0 ? 0 : count / total }))
      .sort((a, b) => b.count - a.count || order(a.key, b.key));
  };
  const latency = group(FIELD.latency)
    .map(([bound, n]): [number, number] => [Number(bound), n])
    .sort((a, b) => a[0] - b[0]);

  return {
    station: o.station,
    from: new Date(first * MINUTE_MS).toISOString(),
    to: new Date((last + 1) * MINUTE_MS).toISOString(),
    minutes: o.minutes,
    parts,
    yield: parts === 0 ? null : verdicts.pass / parts,
    throughputPerMin: parts / o.minutes,
    verdicts,
    pareto: {
      byRejectCode: pareto(group(FIELD.reject), Number, (a, b) => a - b).map(({ key, count, share }) => ({ code: key, count, share })),
      byLabel: pareto(group(FIELD.label), String, (a, b) => a.localeCompare(b)).map(({ key, count, share }) => ({ label: key, count, share })),
    },
    latencyMs: { p50: percentile(latency, 0.5), p95: percentile(latency, 0.95), p99: percentile(latency, 0.99) },
  };
}

/** Nearest rank over the histogram: the bound of the bucket holding the ceil(p * n)-th smallest latency. */
function percentile(histogram: readonly [number, number][], p: number): number | null {
  const n = histogram.reduce((t, [, c]) => t + c, 0);
  if (n === 0) return null;
  const rank = Math.max(1, Math.ceil(p * n));
  let seen = 0;
  for (const [bound, c] of histogram) {
    seen += c;
    if (seen >= rank) return bound;
  }
  return histogram.at(-1)?.[0] ?? null;
}
