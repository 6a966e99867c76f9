import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { messageOf } from '../../../runtime/errors.js';
import type { InspectionResult } from '../../../runtime/result.js';
import { ResultJob } from '../jobs.js';
import { BaseOptions, connectWorker, parseOptions, startHost } from './host.js';
import { redisError } from '../redis-errors.js';
import { MINUTE_MS, bucketKey, fieldsOf, idMinute, infoKey, minuteOf, rejectNameOf, seenKey, stationsKey } from './stats-keys.js';
import type { StartWorker } from './types.js';

/*
 * `linegate worker stats`: rolling per-station, per-minute counters in Redis
 * for dashboards and the plant page (layout in stats-keys.ts). A retried or
 * redelivered job must not count twice, whichever of several workers on the
 * same Redis takes it, so "was this result counted?" and "count it" are one
 * Lua script: Redis runs it atomically.
 */

export const StatsOptions = BaseOptions.extend({
  concurrency: BaseOptions.shape.concurrency.default(4),
  retentionHours: z.number().positive().max(24 * 366).default(48).describe('how long a minute bucket is kept after its minute ends'),
}).strict();
export type StatsSettings = z.infer<typeof StatsOptions>;

/*
 * KEYS: seen set, counters hash, stations set, info hash.
 * ARGV: resultId, expire-at (unix seconds), station, decidedAt (ms), verdict, line, hierarchy JSON,
 * reject code, its reason code (the last four '' when absent), then the hash fields to increment.
 * Returns 1 when counted, 0 when the result was counted before.
 *
 * A key shared by several minutes (the seen set of an id minute, the info hash, the stations set)
 * only ever has its expiry pushed later: TTL against Redis's own clock, so Redis 6 runs it too
 * (EXPIRETIME and EXPIREAT GT need 7). The info hash is "newest wins" by decidedAt, so the order
 * in which several workers count does not change what it ends up saying.
 */
const COUNT_ONCE = `
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
local at = tonumber(ARGV[2])
local now = tonumber(redis.call('TIME')[1])
local function extend(key)
  local ttl = redis.call('TTL', key)
  if ttl < 0 or now + ttl < at then redis.call('EXPIREAT', key, at) end
end
for i = 10, #ARGV do redis.call('HINCRBY', KEYS[2], ARGV[i], 1) end
redis.call('EXPIREAT', KEYS[2], at)
extend(KEYS[1])
redis.call('SADD', KEYS[3], ARGV[3])
extend(KEYS[3])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[4], 'name:' .. ARGV[8], ARGV[9]) end
local last = tonumber(redis.call('HGET', KEYS[4], 'lastAt') or '-1')
if tonumber(ARGV[4]) >= last then
  redis.call('HSET', KEYS[4], 'lastAt', ARGV[4], 'lastResultId', ARGV[1], 'lastVerdict', ARGV[5])
  if ARGV[6] == '' then redis.call('HDEL', KEYS[4], 'line') else redis.call('HSET', KEYS[4], 'line', ARGV[6]) end
  if ARGV[7] == '' then redis.call('HDEL', KEYS[4], 'hierarchy') else redis.call('HSET', KEYS[4], 'hierarchy', ARGV[7]) end
end
extend(KEYS[4])
return 1
`;
const COUNT_ONCE_SHA = createHash('sha1').update(COUNT_ONCE).digest('hex');

export type CountOutcome = 'counted' | 'duplicate' | 'expired';

/** Counts one result unless its resultId was counted already; exported for the tests' exactly-once checks. */
export async function countResult(redis: Redis, prefix: string, retentionMs: number, r: InspectionResult, now = Date.now()): Promise<CountOutcome> {
  const decidedMs = Date.parse(r.time.decidedAt);
  const minute = minuteOf(decidedMs);
  const expireAtMs = (minute + 1) * MINUTE_MS + retentionMs;
  // Its bucket is already past retention (a spool replayed after days): counting would only make a key that dies at once.
  if (expireAtMs <= now) return 'expired';
  const station = r.station.id;
  const keys = [seenKey(prefix, station, idMinute(r.resultId) ?? minute), bucketKey(prefix, station, minute), stationsKey(prefix), infoKey(prefix, station)];
  const h = r.station.hierarchy;
  const args = [
    r.resultId,
    String(Math.ceil(expireAtMs / 1000)),
    station,
    String(decidedMs),
    r.verdict,
    r.station.line ?? '',
    h === undefined ? '' : JSON.stringify({ site: h.site, area: h.area, line: h.line, cell: h.cell }),
    String(r.rejectCode),
    rejectNameOf(r) ?? '',
    ...fieldsOf(r),
  ];
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
