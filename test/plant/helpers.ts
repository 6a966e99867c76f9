import { Queue } from 'bullmq';
import { afterEach } from 'vitest';
import { JOB_NAMES, QUEUES } from '../../plugins/sink-bullmq/jobs.js';
import { startWorker, type WorkerHandle } from '../../plugins/sink-bullmq/workers/index.js';
import { uuidv7 } from '../../runtime/execute/outcome.js';
import type { InspectionResult, PlantHierarchy, Verdict } from '../../runtime/result.js';
import { REDIS_URL, dropPrefix, redisConnection, uniquePrefix } from '../helpers/redis.js';
import { sampleResult } from '../helpers/samples.js';
import { silentLog } from '../helpers/station.js';

/* What the plant tests share: results of placed stations, the results queue, stats workers. */

export const MIN = 60_000;

export const CELL_1: PlantHierarchy = { site: 'plant-1', area: 'casting', line: 'L1', cell: 'C1' };
export const CELL_2: PlantHierarchy = { site: 'plant-1', area: 'casting', line: 'L1', cell: 'C2' };
export const OTHER_LINE: PlantHierarchy = { site: 'plant-1', area: 'machining', line: 'M4', cell: 'C1' };

/** A result of `station` decided at `at` (ms); a fail carries rule `crack` with code 11, an error LG_ERR_STAGE_FAILED with 901. */
export function resultOf(station: string, hierarchy: PlantHierarchy | undefined, at: number, verdict: Verdict): InspectionResult {
  const iso = new Date(at).toISOString();
  return sampleResult({
    resultId: uuidv7(at),
    station: { id: station, ...(hierarchy === undefined ? {} : { line: hierarchy.line, hierarchy }) },
    time: { capturedAt: iso, decidedAt: iso },
    verdict,
    rejectCode: verdict === 'pass' ? 0 : verdict === 'fail' ? 11 : 901,
    reasons: verdict === 'pass' ? [] : verdict === 'fail' ? [{ code: 'crack', message: '1 crack', rejectCode: 11 }] : [{ code: 'LG_ERR_STAGE_FAILED', message: 'step failed', rejectCode: 901, step: 'model' }],
    defects: verdict === 'fail' ? [{ label: 'crack', score: 0.9, rule: 'crack' }] : [],
  });
}

/** A queue, its workers and its keys: closed and dropped after each test. */
export function plantResources(): { readonly prefix: () => string; readonly queue: () => Queue; readonly startStats: () => Promise<WorkerHandle> } {
  let prefix: string | undefined;
  let queue: Queue | undefined;
  const workers: WorkerHandle[] = [];
  afterEach(async () => {
    for (const w of workers.splice(0)) await w.close();
    await queue?.close();
    if (prefix !== undefined) await dropPrefix(prefix);
    prefix = undefined;
    queue = undefined;
  });
  const p = (): string => (prefix ??= uniquePrefix());
  return {
    prefix: p,
    queue: () => (queue ??= new Queue(QUEUES.results, { connection: redisConnection(), prefix: p() })),
    startStats: async () => {
      const w = await startWorker('stats', { redis: REDIS_URL, prefix: p(), closeTimeoutMs: 2000 }, silentLog);
      workers.push(w);
      return w;
    },
  };
}

/** Puts results on the queue as the station's sink does: the job id is the result id. */
export function enqueue(queue: Queue, results: readonly InspectionResult[], suffix = ''): Promise<unknown> {
  return queue.addBulk(results.map((r) => ({ name: JOB_NAMES.results, data: r, opts: { jobId: `${r.resultId}${suffix}` } })));
}
