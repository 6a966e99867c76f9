import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { messageOf } from '../../../runtime/errors.js';
import type { InspectionResult } from '../../../runtime/result.js';
import { ResultJob } from '../jobs.js';
import { BaseOptions, connectWorker, parseOptions, startHost } from './host.js';
import { redisError } from '../redis-errors.js';
import { MINUTE_MS, bucketKey, fieldsOf, minuteOf, seenKey, stationsKey } from './stats-keys.js';
import type { StartWorker } from './types.js';

/*
 * `linegate worker stats`: rolling per-station, per-minute counters in Redis
 * for dashboards (layout in stats-keys.ts). A retried or redelivered job must
 * not count twice, so "was this result counted?" and "count it" are one Lua
 * script: Redis runs it atomically.
 */

export const StatsOptions = BaseOptions.extend({
  concurrency: BaseOptions.shape.concurrency.default(4),
  retentionHours: z.number().positive().max(24 * 366).default(48).describe('how long a minute bucket is kept after its minute ends'),
}).strict();
export type StatsSettings = z.infer<typeof StatsOptions>;

/*
 * KEYS: seen set, counters hash, stations set.
 * ARGV: resultId, expire-at (unix seconds), station, then the hash fields to increment.
 * Returns 1 when counted, 0 when the result was counted before.
 */
const COUNT_ONCE = `
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
for i = 4, #ARGV do redis.call('HINCRBY', KEYS[2], ARGV[i], 1) end
redis.call('EXPIREAT', KEYS[1], ARGV[2])
redis.call('EXPIREAT', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
`;
const COUNT_ONCE_SHA = createHash('sha1').update(COUNT_ONCE).digest('hex');

export type CountOutcome = 'counted' | 'duplicate' | 'expired';

/** Counts one result unless its resultId was counted already; exported for the tests' exactly-once checks. */
export async function countResult(redis: Redis, prefix: string, retentionMs: number, r: InspectionResult, now = Date.now()): Promise<CountOutcome> {
  const minute = minuteOf(r.time.decidedAt);
  const expireAtMs = (minute + 1) * MINUTE_MS + retentionMs;
  // Its bucket is already past retention (a spool replayed after days): counting would only make a key that dies at once.
  if (expireAtMs <= now) return 'expired';
  const keys = [seenKey(prefix, r.station.id, minute), bucketKey(prefix, r.station.id, minute), stationsKey(prefix)];
  const args = [r.resultId, String(Math.ceil(expireAtMs / 1000)), r.station.id, ...fieldsOf(r)];
  let n: unknown;
  try {
    n = await redis.evalsha(COUNT_ONCE_SHA, keys.length, ...keys, ...args);
  } catch (e) {
    // The script cache is empty after a Redis restart or on a new server: send the script itself once.
    if (!messageOf(e).startsWith('NOSCRIPT')) throw e;
    n = await redis.eval(COUNT_ONCE, keys.length, ...keys, ...args);
  }
  return n === 1 ? 'counted' : 'duplicate';
}

export const startStatsWorker: StartWorker = async (input, log) => {
  const o = parseOptions('stats', StatsOptions, input);
  const wlog = log.child({ worker: 'stats' });
  const connection = connectWorker(o.redis, wlog);
  const retentionMs = o.retentionHours * 3_600_000;
  return startHost({
    name: 'stats',
    queue: 'results',
    schema: ResultJob,
    settings: o,
    connection,
    log: wlog,
    async handle(result) {
      try {
        const outcome = await countResult(connection, o.prefix, retentionMs, result);
        if (outcome !== 'counted') wlog.debug({ resultId: result.resultId, outcome }, 'result not counted');
        return { resultId: result.resultId, outcome };
      } catch (e) {
        throw redisError(o.redis, e);
      }
    },
  });
};
