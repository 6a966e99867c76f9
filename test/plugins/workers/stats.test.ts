import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { JOB_NAMES, QUEUES } from '../../../plugins/sink-bullmq/jobs.js';
import { startWorker, type WorkerHandle } from '../../../plugins/sink-bullmq/workers/index.js';
import { bucketKey, seenKey, stationsKey } from '../../../plugins/sink-bullmq/workers/stats-keys.js';
import { listStations, readStats } from '../../../plugins/sink-bullmq/workers/stats-read.js';
import { countResult } from '../../../plugins/sink-bullmq/workers/stats.js';
import { uuidv7 } from '../../../runtime/execute/outcome.js';
import type { Defect, InspectionResult, Verdict } from '../../../runtime/result.js';
import { REDIS_URL, dropPrefix, uniquePrefix } from '../../helpers/redis.js';
import { sampleResult } from '../../helpers/samples.js';
import { silentLog } from '../../helpers/station.js';
import { queueOf, until } from './helpers.js';

const MIN = 60_000;
const resources: { prefix?: string; queue?: Queue; workers: WorkerHandle[]; redis: Redis[] } = { workers: [], redis: [] };

afterEach(async () => {
  for (const w of resources.workers.splice(0)) await w.close();
  for (const r of resources.redis.splice(0)) r.disconnect();
  await resources.queue?.close();
  if (resources.prefix !== undefined) await dropPrefix(resources.prefix);
  resources.queue = undefined;
  resources.prefix = undefined;
});

function setup(): { prefix: string; queue: Queue } {
  const prefix = uniquePrefix();
  resources.prefix = prefix;
  resources.queue = queueOf(QUEUES.results, prefix);
  return { prefix, queue: resources.queue };
}

async function start(prefix: string): Promise<WorkerHandle> {
  const w = await startWorker('stats', { redis: REDIS_URL, prefix, closeTimeoutMs: 2000 }, silentLog);
  resources.workers.push(w);
  return w;
}

const resultAt = (station: string, minute: number, verdict: Verdict, rejectCode: number, totalMs: number, defects: Defect[] = []): InspectionResult =>
  sampleResult({
    resultId: uuidv7(minute * MIN),
    station: { id: station },
    time: { capturedAt: new Date(minute * MIN + 7_000).toISOString(), decidedAt: new Date(minute * MIN + 7_500).toISOString() },
    verdict,
    rejectCode,
    defects,
    timings: { totalMs, stages: {} },
  });

const fired = (label: string): Defect => ({ label, score: 0.9, rule: `reject-${label}` });

/**
 * 100 parts of station S-A over two minutes, latencies 1..90 ms then 200..1100 ms:
 * 80 pass, 9 fail code 11 (crack), 6 fail code 12 (pore), 5 error 901.
 */
function knownSet(base: number): InspectionResult[] {
  const latencies = [...Array.from({ length: 90 }, (_, i) => i + 1), ...Array.from({ length: 10 }, (_, i) => 200 + 100 * i)];
  return latencies.map((ms, i) => {
    const minute = base + (i % 2);
    if (i < 80) return resultAt('S-A', minute, 'pass', 0, ms, i === 3 ? [{ label: 'crack', score: 0.2 }] : []); // a crack below threshold did not fire
    if (i < 89) return resultAt('S-A', minute, 'fail', 11, ms, i === 80 ? [fired('crack'), fired('crack'), { label: 'pore', score: 0.3 }] : [fired('crack')]);
    if (i < 95) return resultAt('S-A', minute, 'fail', 12, ms, [fired('pore')]);
    return resultAt('S-A', minute, 'error', 901, ms);
  });
}

const add = (queue: Queue, results: InspectionResult[], suffix = ''): Promise<unknown> =>
  queue.addBulk(results.map((r) => ({ name: JOB_NAMES.results, data: r, opts: { jobId: `${r.resultId}${suffix}` } })));

describe('worker stats', () => {
  it('counts verdicts, reject codes, fired defect labels and latency per station and minute; readStats sums the window', async () => {
    const { prefix, queue } = setup();
    const base = Math.floor(Date.now() / MIN) - 3;
    const now = (base + 2) * MIN + 30_000;
    const set = knownSet(base);
    const early = resultAt('S-A', base - 10, 'pass', 0, 3);
    await add(queue, [...set, early]);
    const w = await start(prefix);
    await until(() => w.processed() === 101, { what: '101 results counted' });

    expect(await readStats({ redis: REDIS_URL, prefix, station: 'S-A', minutes: 5, now })).toEqual({
      station: 'S-A',
      from: new Date((base - 2) * MIN).toISOString(),
      to: new Date((base + 3) * MIN).toISOString(),
      minutes: 5,
      parts: 100,
      yield: 0.8,
      throughputPerMin: 20,
      verdicts: { pass: 80, fail: 15, error: 5 },
      pareto: {
        byRejectCode: [
          { code: 11, count: 9, share: 0.45 },
          { code: 12, count: 6, share: 0.3 },
          { code: 901, count: 5, share: 0.25 },
        ],
        byLabel: [
          { label: 'crack', count: 9, share: 0.6 },
          { label: 'pore', count: 6, share: 0.4 },
        ],
      },
      // Nearest rank 50 is 50 ms (bucket <= 50.12), rank 95 is 600 ms (<= 631), rank 99 is 1000 ms (<= 1000).
      latencyMs: { p50: 50.12, p95: 631, p99: 1000 },
    });
    // The part ten minutes earlier is only in a window that reaches back to it.
    expect(await readStats({ prefix, station: 'S-A', minutes: 15, now })).toMatchObject({ parts: 101, verdicts: { pass: 81, fail: 15, error: 5 } });
    expect(await readStats({ prefix, station: 'S-A', minutes: 1, now: base * MIN })).toMatchObject({ parts: 50, throughputPerMin: 50 });

    // The key layout dashboards read, and its expiry: 48 h after the end of the minute.
    const redis = new Redis(REDIS_URL);
    resources.redis.push(redis);
    expect(await redis.hgetall(bucketKey(prefix, 'S-A', base - 10))).toEqual({ 'verdict:pass': '1', 'latencyLe:3.162': '1' });
    expect(await redis.sismember(seenKey(prefix, 'S-A', base - 10), early.resultId)).toBe(1);
    expect(await redis.call('EXPIRETIME', bucketKey(prefix, 'S-A', base))).toBe((base + 1) * 60 + 48 * 3600);
    expect(await redis.call('EXPIRETIME', seenKey(prefix, 'S-A', base))).toBe((base + 1) * 60 + 48 * 3600);
  });

  it('counts a result exactly once when it is delivered again, under a new job id or by a retry', async () => {
    const { prefix, queue } = setup();
    const base = Math.floor(Date.now() / MIN) - 1;
    const set = knownSet(base).slice(0, 20);
    await add(queue, set);
    const w = await start(prefix);
    await until(() => w.processed() === 20, { what: 'first delivery' });
    await add(queue, set, '-again');
    await until(() => w.processed() === 40, { what: 'second delivery' });
    const stats = await readStats({ prefix, station: 'S-A', minutes: 3, now: (base + 1) * MIN });
    expect(stats.parts).toBe(20);
    expect(stats.verdicts).toEqual({ pass: 20, fail: 0, error: 0 });

    // A retry after the script ran but before BullMQ recorded the job: the same call again.
    const redis = new Redis(REDIS_URL);
    resources.redis.push(redis);
    const extra = resultAt('S-A', base, 'fail', 11, 5, [fired('crack')]);
    expect(await countResult(redis, prefix, 48 * 3_600_000, extra)).toBe('counted');
    expect(await countResult(redis, prefix, 48 * 3_600_000, extra)).toBe('duplicate');
    expect(await readStats({ prefix, station: 'S-A', minutes: 3, now: (base + 1) * MIN })).toMatchObject({ parts: 21, verdicts: { fail: 1 } });
    // A result from a minute past retention is not counted at all (its key would die at once).
    const old = resultAt('S-A', base - 3 * 24 * 60, 'pass', 0, 5);
    expect(await countResult(redis, prefix, 48 * 3_600_000, old)).toBe('expired');
    expect(await redis.exists(bucketKey(prefix, 'S-A', base - 3 * 24 * 60))).toBe(0);
  });

  it('keeps two stations apart and lists the stations it has seen', async () => {
    const { prefix, queue } = setup();
    const base = Math.floor(Date.now() / MIN) - 1;
    await add(queue, [...knownSet(base).slice(80, 90), ...[5, 5, 5].map((ms) => resultAt('S-B', base, 'pass', 0, ms))]);
    const w = await start(prefix);
    await until(() => w.processed() === 13, { what: '13 results' });
    const b = await readStats({ prefix, station: 'S-B', minutes: 2, now: base * MIN });
    expect(b).toMatchObject({ parts: 3, yield: 1, verdicts: { pass: 3, fail: 0, error: 0 }, pareto: { byRejectCode: [], byLabel: [] }, latencyMs: { p50: 5.012, p95: 5.012, p99: 5.012 } });
    const a = await readStats({ prefix, station: 'S-A', minutes: 2, now: (base + 1) * MIN });
    expect(a).toMatchObject({ parts: 10, yield: 0, verdicts: { pass: 0, fail: 10, error: 0 }, pareto: { byRejectCode: [{ code: 11, count: 9 }, { code: 12, count: 1 }] } });
    expect(await listStations({ prefix })).toEqual(['S-A', 'S-B']);
    const redis = new Redis(REDIS_URL);
    resources.redis.push(redis);
    expect((await redis.smembers(stationsKey(prefix))).sort()).toEqual(['S-A', 'S-B']);
    expect(await readStats({ prefix, station: 'S-C', minutes: 2 })).toMatchObject({ parts: 0, yield: null, latencyMs: { p50: null } });
  });

  it('fails a job that is not a result at once with LG_ERR_QUEUE_JOB_INVALID', async () => {
    const { prefix, queue } = setup();
    await queue.add(JOB_NAMES.results, { resultId: 'nope', verdict: 'maybe' }, { jobId: 'bad', attempts: 5, backoff: { type: 'fixed', delay: 50 } });
    const w = await start(prefix);
    await until(() => w.failed() === 1, { what: 'the failure' });
    const job = await queue.getJob('bad');
    expect(await job?.getState()).toBe('failed');
    expect(job?.attemptsMade).toBe(1);
    expect(job?.failedReason).toMatch(/^LG_ERR_QUEUE_JOB_INVALID: job bad in queue results does not parse/);
    expect(await listStations({ prefix })).toEqual([]);
  });

  it('says which Redis it could not reach', async () => {
    await expect(readStats({ redis: 'redis://127.0.0.1:1', station: 'S-A' })).rejects.toMatchObject({ code: 'LG_ERR_QUEUE_REDIS', message: expect.stringContaining('ECONNREFUSED') });
  });

  it('closes idempotently: every close() is the same promise', async () => {
    const { prefix } = setup();
    const w = await start(prefix);
    const first = w.close();
    expect(w.close()).toBe(first);
    await first;
  });
});
