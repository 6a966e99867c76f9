import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JOB_NAMES, QUEUES } from '../../../plugins/sink-bullmq/jobs.js';
import { readStats } from '../../../plugins/sink-bullmq/workers/stats-read.js';
import { dropPrefix, uniquePrefix } from '../../helpers/redis.js';
import { sampleResult } from '../../helpers/samples.js';
import { ROOT } from '../../helpers/station.js';
import { queueOf, until } from './helpers.js';

interface Run {
  readonly child: ChildProcessWithoutNullStreams;
  readonly out: { stdout: string; stderr: string };
  readonly exit: Promise<number | null>;
}

/** The CLI as an operator runs it: a child process of bin/linegate.mjs. */
function linegate(args: string[]): Run {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/linegate.mjs'), ...args], { cwd: ROOT, env: { ...process.env, LINEGATE_LOG_LEVEL: 'info' } });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, out, exit };
}

const prefix = uniquePrefix();
afterAll(() => dropPrefix(prefix));

describe('linegate worker / linegate stats', () => {
  it('worker with an unknown name exits 2 with LG_ERR_WORKER_UNKNOWN and the names there are', async () => {
    const r = linegate(['worker', 'nope']);
    expect(await r.exit).toBe(2);
    expect(r.out.stderr).toContain('LG_ERR_WORKER_UNKNOWN: no worker named "nope" (there are: dataset-export, stats)');
    expect(r.out.stdout).toBe('');
  });

  it('worker stats counts until SIGTERM, closes and exits 0 with its report; stats prints the counts as JSON', async () => {
    const queue = queueOf(QUEUES.results, prefix);
    const result = sampleResult({ station: { id: 'cli-01' }, verdict: 'fail', rejectCode: 11, timings: { totalMs: 12, stages: {} } });
    try {
      await queue.add(JOB_NAMES.results, result, { jobId: result.resultId });
    } finally {
      await queue.close();
    }
    const w = linegate(['worker', 'stats', '--prefix', prefix, '--no-pretty']);
    await until(async () => (await readStats({ prefix, station: 'cli-01', minutes: 2 })).parts === 1, { what: 'the worker to count the result', ms: 15_000 });
    w.child.kill('SIGTERM');
    expect(await w.exit).toBe(0);
    expect(w.out.stderr).toContain('"msg":"worker started"');
    expect(JSON.parse(w.out.stdout)).toEqual({ worker: { name: 'stats', processed: 1, failed: 0 } });

    const s = linegate(['stats', 'cli-01', '--prefix', prefix, '--minutes', '2']);
    expect(await s.exit).toBe(0);
    expect(JSON.parse(s.out.stdout)).toMatchObject({ station: 'cli-01', minutes: 2, parts: 1, yield: 0, verdicts: { fail: 1 }, pareto: { byRejectCode: [{ code: 11, count: 1, share: 1 }] }, latencyMs: { p50: 12.59 } });
  });
});
