import type { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { JOB_NAMES, QUEUES } from '../../../plugins/sink-bullmq/jobs.js';
import { connectWorker, startHost } from '../../../plugins/sink-bullmq/workers/host.js';
import type { WorkerHandle } from '../../../plugins/sink-bullmq/workers/types.js';
import { REDIS_URL, uniquePrefix } from '../../helpers/redis.js';
import { silentLog } from '../../helpers/station.js';
import { queueOf, until, workerResources } from './helpers.js';

const resources = workerResources();

/** A worker on the results queue whose handler the test controls. */
async function hostWith(closeTimeoutMs: number, handle: (signal: AbortSignal) => Promise<void>): Promise<{ w: WorkerHandle; queue: Queue }> {
  const prefix = uniquePrefix();
  resources.prefix = prefix;
  const queue = queueOf(QUEUES.results, prefix);
  resources.queue = queue;
  const settings = { redis: REDIS_URL, prefix, concurrency: 1, closeTimeoutMs };
  const w = await startHost({ name: 'probe', queue: 'results', schema: z.object({ n: z.number() }), settings, connection: connectWorker(REDIS_URL, silentLog), log: silentLog, handle: (_d, _j, signal) => handle(signal) });
  resources.workers.push(w);
  return { w, queue };
}

describe('the worker host', () => {
  it('close() waits for the running job to finish', async () => {
    let started = false;
    let finish = (): void => undefined;
    const { w, queue } = await hostWith(10_000, () => {
      started = true;
      return new Promise<void>((resolve) => (finish = resolve));
    });
    await queue.add(JOB_NAMES.results, { n: 1 }, { jobId: 'slow' });
    await until(() => started, { what: 'the job to start' });
    let closed = false;
    const closing = w.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 150));
    expect(closed).toBe(false);
    finish();
    await closing;
    expect(w.processed()).toBe(1);
    expect(await (await queue.getJob('slow'))?.getState()).toBe('completed');
  });

  it('past closeTimeoutMs, close() aborts the running job through its signal and returns', async () => {
    let aborted = false;
    let started = false;
    const { w, queue } = await hostWith(200, (signal) => {
      started = true;
      return new Promise<void>((_, reject) =>
        signal.addEventListener('abort', () => {
          aborted = true;
          reject(new Error('cancelled'));
        }),
      );
    });
    await queue.add(JOB_NAMES.results, { n: 1 }, { jobId: 'stuck' });
    await until(() => started, { what: 'the job to start' });
    const t0 = Date.now();
    await w.close();
    expect(aborted).toBe(true);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(w.processed()).toBe(0);
  });
});
