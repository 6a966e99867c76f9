import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { PlantReader } from '../../plugins/sink-bullmq/workers/plant-read.js';
import { infoKey, seenKey, stationsKey } from '../../plugins/sink-bullmq/workers/stats-keys.js';
import { readStats } from '../../plugins/sink-bullmq/workers/stats-read.js';
import { countResult } from '../../plugins/sink-bullmq/workers/stats.js';
import type { InspectionResult } from '../../runtime/result.js';
import { REDIS_URL } from '../helpers/redis.js';
import { silentLog } from '../helpers/station.js';
import { until } from '../helpers/until.js';
import { CELL_1, CELL_2, MIN, OTHER_LINE, enqueue, plantResources, resultOf } from './helpers.js';

/*
 * `linegate worker stats` keeps what the plant page needs per station: its hierarchy, counts by
 * verdict per minute, reject codes with their reason codes, and its newest result; several workers
 * on one Redis count each result once, however often BullMQ hands it out.
 */

const res = plantResources();
const opened: { close(): Promise<void> | void }[] = [];
afterEach(async () => {
  for (const o of opened.splice(0)) await o.close();
});

function redis(): Redis {
  const r = new Redis(REDIS_URL);
  opened.push({ close: () => void r.disconnect() });
  return r;
}

function reader(prefix: string): PlantReader {
  const r = new PlantReader({ redis: REDIS_URL, prefix, log: silentLog });
  opened.push(r);
  return r;
}

/** Station A (cell C1): per minute 8 pass, 1 fail, 1 error. Station B (line M4): per minute 4 pass, 3 fail, 3 error. Three minutes each. */
function twoStations(base: number): { a: InspectionResult[]; b: InspectionResult[] } {
  const a: InspectionResult[] = [];
  const b: InspectionResult[] = [];
  for (let m = 0; m < 3; m++) {
    for (let i = 0; i < 10; i++) {
      const at = (base - 2 + m) * MIN + 1000 + i * 100;
      a.push(resultOf('st-a', CELL_1, at, i < 8 ? 'pass' : i === 8 ? 'fail' : 'error'));
      b.push(resultOf('st-b', OTHER_LINE, at + 50, i < 4 ? 'pass' : i < 7 ? 'fail' : 'error'));
    }
  }
  return { a, b };
}

describe('worker stats, for the plant page', () => {
  it('counts two stations with different places from real jobs, with two workers, each result once even when redelivered', async () => {
    const now = Date.now();
    const base = Math.floor(now / MIN);
    const { a, b } = twoStations(base);
    const queue = res.queue();
    const [w1, w2] = [await res.startStats(), await res.startStats()];
    const processed = (): number => w1.processed() + w2.processed();
    await enqueue(queue, [...a, ...b]);
    await until(() => processed() === 60, { what: '60 jobs processed by the two workers', ms: 20_000 });

    // BullMQ hands a completed job out again (a retry), and the sink sends one result again under another job id.
    const again = a[5]!;
    await (await queue.getJob(again.resultId))!.retry('completed');
    await enqueue(queue, [b[0]!], '-again');
    await until(() => processed() === 62, { what: 'the two redeliveries processed', ms: 20_000 });
    expect((await queue.getJob(again.resultId))!.returnvalue).toEqual({ resultId: again.resultId, outcome: 'duplicate' });
    expect((await queue.getJob(`${b[0]!.resultId}-again`))!.returnvalue).toEqual({ resultId: b[0]!.resultId, outcome: 'duplicate' });
    expect(w1.failed() + w2.failed()).toBe(0);

    const prefix = res.prefix();
    expect(await readStats({ redis: REDIS_URL, prefix, station: 'st-a', minutes: 3, now })).toMatchObject({ parts: 30, verdicts: { pass: 24, fail: 3, error: 3 } });
    expect(await readStats({ redis: REDIS_URL, prefix, station: 'st-b', minutes: 3, now })).toMatchObject({ parts: 30, verdicts: { pass: 12, fail: 9, error: 9 } });

    const counts = await reader(prefix).read({ minutes: 4, now });
    expect(counts.map((c) => c.station)).toEqual(['st-a', 'st-b']);
    const [ca, cb] = counts;
    expect(ca).toEqual({
      station: 'st-a',
      line: 'L1',
      hierarchy: CELL_1,
      lastAt: a.at(-1)!.time.decidedAt,
      lastVerdict: 'error',
      perMinute: [{ pass: 0, fail: 0, error: 0 }, ...Array.from({ length: 3 }, () => ({ pass: 8, fail: 1, error: 1 }))],
      rejectCodes: expect.arrayContaining([
        { code: 11, name: 'crack', count: 3 },
        { code: 901, name: 'LG_ERR_STAGE_FAILED', count: 3 },
      ]),
      labels: [{ label: 'crack', count: 3 }],
    });
    expect(ca!.rejectCodes).toHaveLength(2);
    expect(cb).toMatchObject({ station: 'st-b', line: 'M4', hierarchy: OTHER_LINE, lastAt: b.at(-1)!.time.decidedAt, lastVerdict: 'error' });
    expect(cb!.perMinute.slice(1)).toEqual(Array.from({ length: 3 }, () => ({ pass: 4, fail: 3, error: 3 })));
  }, 60_000);

  it('says "counted" by the result id alone: a part inspected again later, in another minute, is not counted twice', async () => {
    const prefix = res.prefix();
    const r = redis();
    const now = Date.now();
    const first = resultOf('st-a', CELL_1, now - 3 * MIN, 'fail');
    const again = { ...first, time: { ...first.time, decidedAt: new Date(now - MIN).toISOString() } };
    expect(await countResult(r, prefix, 48 * 3_600_000, first, now)).toBe('counted');
    expect(await countResult(r, prefix, 48 * 3_600_000, again, now)).toBe('duplicate');
    const [c] = await reader(prefix).read({ minutes: 5, now });
    expect(c!.perMinute.reduce((t, m) => t + m.fail, 0)).toBe(1);
    expect(await r.sismember(seenKey(prefix, 'st-a', Math.floor((now - 3 * MIN) / MIN)), first.resultId)).toBe(1);
  });

  it('keeps the newest result in the station info whatever order the workers count in, with a moved station\'s new place', async () => {
    const prefix = res.prefix();
    const r = redis();
    const now = Date.now();
    const newer = resultOf('st-a', CELL_2, now - MIN, 'pass');
    const older = resultOf('st-a', CELL_1, now - 2 * MIN, 'fail');
    expect(await countResult(r, prefix, 3_600_000, newer, now)).toBe('counted');
    expect(await countResult(r, prefix, 3_600_000, older, now)).toBe('counted');
    const info = await r.hgetall(infoKey(prefix, 'st-a'));
    expect(info).toMatchObject({ lastAt: String(Date.parse(newer.time.decidedAt)), lastResultId: newer.resultId, lastVerdict: 'pass', line: 'L1', 'name:11': 'crack' });
    expect(JSON.parse(info.hierarchy!)).toEqual(CELL_2);

    // A station file that drops its hierarchy: the newest result has none, and neither has the info.
    const unplaced = resultOf('st-a', undefined, now, 'pass');
    expect(await countResult(r, prefix, 3_600_000, unplaced, now)).toBe('counted');
    expect(await r.hget(infoKey(prefix, 'st-a'), 'hierarchy')).toBeNull();
    expect(await r.hget(infoKey(prefix, 'st-a'), 'line')).toBeNull();
  });

  it('lets every key expire with the retention: the info and the stations set at the end of the newest minute plus retention', async () => {
    const prefix = res.prefix();
    const r = redis();
    const now = Date.now();
    const retentionMs = 2 * 3_600_000;
    const newer = resultOf('st-a', CELL_1, now, 'pass');
    const older = resultOf('st-a', CELL_1, now - 5 * MIN, 'pass');
    await countResult(r, prefix, retentionMs, newer, now);
    await countResult(r, prefix, retentionMs, older, now);
    const end = (Math.floor(now / MIN) + 1) * 60 + retentionMs / 1000;
    // The older result does not pull the shared keys' expiry back.
    for (const key of [infoKey(prefix, 'st-a'), stationsKey(prefix)]) {
      const ttl = await r.ttl(key);
      expect(Math.abs(Math.floor(Date.now() / 1000) + ttl - end), key).toBeLessThanOrEqual(2);
    }
  });

  it('leaves out a station whose counts all expired, and reads nothing of a prefix never counted', async () => {
    const prefix = res.prefix();
    const r = redis();
    await r.sadd(stationsKey(prefix), 'gone-01');
    expect(await reader(prefix).read({ minutes: 60, now: Date.now() })).toEqual([]);
    expect(await reader(`${prefix}-none`).read({ minutes: 60, now: Date.now() })).toEqual([]);
  });
});
