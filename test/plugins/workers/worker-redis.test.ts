import { Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { JOB_NAMES, QUEUES } from '../../../plugins/sink-bullmq/jobs.js';
import { startWorker, type WorkerHandle } from '../../../plugins/sink-bullmq/workers/index.js';
import { readStats } from '../../../plugins/sink-bullmq/workers/stats-read.js';
import { LinegateProcess, killAll } from '../../helpers/child.js';
import { sampleResult } from '../../helpers/samples.js';
import { capturingLog } from '../../helpers/station.js';
import { uniquePrefix } from '../../helpers/redis.js';
import { OwnRedis, freePort } from '../own-redis.js';
import { until } from './helpers.js';

/**
 * Workers against a Redis that refuses their password or is not there: a
 * coded error that says so (never the password), one log line per state, and
 * a stop signal honoured at once whatever the connection is doing. Uses a
 * redis-server of its own with a password, not the shared one.
 */

const PASSWORD = 'correct-staple-42';
let own: OwnRedis;
beforeAll(async () => {
  own = await OwnRedis.start(PASSWORD);
});
afterAll(() => own.stop());

const workers: WorkerHandle[] = [];
afterEach(async () => {
  await killAll();
  for (const w of workers.splice(0)) await w.close();
});

/** Log lines (pino JSON on stderr) at warn or above. */
const loud = (p: LinegateProcess): Record<string, unknown>[] =>
  p.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => Number(e.level) >= 40 && !String(e.msg).includes('TypeScript sources'));

describe('linegate worker and Redis', () => {
  it('stops at once with LG_ERR_QUEUE_AUTH when Redis refuses the password, saying so without printing it', async () => {
    const w = new LinegateProcess(['worker', 'stats', '--redis', own.url('not-the-password'), '--no-pretty']);
    const t0 = Date.now();
    const exit = await Promise.race([w.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000))]);
    expect(exit).not.toBe('hung');
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(exit).toMatchObject({ code: 2 }); // a 4xx code: the operator's input is wrong
    expect(w.stderr).toMatch(/LG_ERR_QUEUE_AUTH: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/? refused the password \(WRONGPASS/);
    expect(w.stderr).not.toContain('not-the-password');
    expect(loud(w).length).toBeLessThanOrEqual(2); // the refusal as the connection saw it, and as the command ends
  }, 30_000);

  it('honours SIGINT at once while Redis is not there, after one line about it, not one per retry', async () => {
    const port = await freePort(); // nothing listens
    const w = new LinegateProcess(['worker', 'stats', '--redis', `redis://127.0.0.1:${port}`, '--no-pretty']);
    await w.waitFor(/retrying/, 20_000);
    await w.waitFor(/worker started/, 10_000);
    const t0 = Date.now();
    w.signal('SIGINT');
    const exit = await Promise.race([w.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 8000))]);
    expect(exit).toMatchObject({ code: 0 });
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(JSON.parse(w.stdout.trim().split('\n').at(-1)!)).toEqual({ worker: { name: 'stats', processed: 0, failed: 0 } });
    expect(loud(w).filter((e) => String(e.msg).includes('ECONNREFUSED'))).toHaveLength(1);
  }, 40_000);

  it('takes its Redis from LINEGATE_REDIS_URL when no --redis is given, as the station does', async () => {
    const prefix = uniquePrefix();
    const queue = new Queue(QUEUES.results, { connection: { host: '127.0.0.1', port: own.port, password: PASSWORD }, prefix });
    const was = process.env.LINEGATE_REDIS_URL;
    try {
      const r = sampleResult({ station: { id: 'env-01' } });
      await queue.add(JOB_NAMES.results, r, { jobId: r.resultId });
      process.env.LINEGATE_REDIS_URL = own.url();
      const w = await startWorker('stats', { prefix, closeTimeoutMs: 2000 }, capturingLog().log);
      workers.push(w);
      await until(() => w.processed() === 1, { what: 'the worker to take the job from its own Redis' });
      expect((await readStats({ prefix, station: 'env-01', minutes: 5 })).parts).toBe(1);
    } finally {
      if (was === undefined) delete process.env.LINEGATE_REDIS_URL;
      else process.env.LINEGATE_REDIS_URL = was;
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
    }
  });
});
