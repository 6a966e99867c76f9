import { Queue } from 'bullmq';
import { afterEach } from 'vitest';
import type { WorkerHandle } from '../../../plugins/sink-bullmq/workers/types.js';
import { dropPrefix, redisConnection } from '../../helpers/redis.js';

export { until } from '../../helpers/until.js';

/** A producer for one of the sink's queues, as a station would hold it. */
export const queueOf = (name: string, prefix: string): Queue => new Queue(name, { connection: redisConnection(), prefix });

/** What a test opened: closed and its Redis keys dropped after each test. */
export function workerResources(): { prefix?: string; queue?: Queue; workers: WorkerHandle[] } {
  const resources: { prefix?: string; queue?: Queue; workers: WorkerHandle[] } = { workers: [] };
  afterEach(async () => {
    for (const w of resources.workers.splice(0)) await w.close();
    await resources.queue?.close();
    if (resources.prefix !== undefined) await dropPrefix(resources.prefix);
    resources.queue = undefined;
    resources.prefix = undefined;
  });
  return resources;
}
