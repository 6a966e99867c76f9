import { afterAll, describe, expect, it } from 'vitest';
import { JOB_NAMES, QUEUES } from '../../../plugins/sink-bullmq/jobs.js';
import { readStats } from '../../../plugins/sink-bullmq/workers/stats-read.js';
import { linegate as inProcess } from '../../helpers/cli.js';
import { LinegateProcess } from '../../helpers/child.js';
import { REDIS_URL, dropPrefix, uniquePrefix } from '../../helpers/redis.js';
import { sampleResult } from '../../helpers/samples.js';
import { queueOf, until } from './helpers.js';

const prefix = uniquePrefix();
afterAll(() => dropPrefix(prefix));

describe('linegate worker / linegate stats', () => {
  it('worker with an unknown name exits 2 with LG_ERR_WORKER_UNKNOWN and the names there are', async () => {
    const r = await inProcess(['worker', 'nope']);
    expect(r.code).toBe(2);
    expect(r.messages()).toContain('LG_ERR_WORKER_UNKNOWN: no worker named "nope" (there are: dataset-export, stats)');
    expect(r.stdout).toBe('');
  });

  it('worker stats counts until SIGTERM, closes and exits 0 with its report; stats prints the counts as JSON', async () => {
    const queue = queueOf(QUEUES.results, prefix);
    const result = sampleResult({ station: { id: 'cli-01' }, verdict: 'fail', rejectCode: 11, timings: { totalMs: 12, stages: {} } });
    try {
      await queue.add(JOB_NAMES.results, result, { jobId: result.resultId });
    } finally {
      await queue.close();
    }
    // A process: the point is that SIGTERM closes the worker and it exits 0 with its report.
    const w = new LinegateProcess(['worker', 'stats', '--prefix', prefix, '--redis', REDIS_URL, '--no-pretty'], { timeoutMs: 30_000 });
    await until(async () => (await readStats({ redis: REDIS_URL, prefix, station: 'cli-01', minutes: 2 })).parts === 1, { what: 'the worker to count the result', ms: 15_000 });
    w.signal('SIGTERM');
    expect((await w.exited).code).toBe(0);
    expect(w.stderr).toContain('"msg":"worker started"');
    expect(JSON.parse(w.stdout)).toEqual({ worker: { name: 'stats', processed: 1, failed: 0 } });

    const s = await inProcess(['stats', 'cli-01', '--prefix', prefix, '--minutes', '2'], { LINEGATE_REDIS_URL: REDIS_URL });
    expect(s.code, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ station: 'cli-01', minutes: 2, parts: 1, yield: 0, verdicts: { fail: 1 }, pareto: { byRejectCode: [{ code: 11, count: 1, share: 1 }] }, latencyMs: { p50: 12.59 } });
  });
});
