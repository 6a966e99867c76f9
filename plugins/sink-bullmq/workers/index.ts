import type { Logger } from '../../../runtime/contract.js';
import { LinegateError } from '../../../runtime/errors.js';
import type { StartWorker, WorkerHandle } from './types.js';

/*
 * The workers `linegate worker <name>` can run. Each is loaded only when
 * asked for: BullMQ, ioredis and sharp stay out of every other command.
 */

const WORKERS = {
  'dataset-export': async () => (await import('./dataset-export.js')).startDatasetExport,
  stats: async () => (await import('./stats.js')).startStatsWorker,
} as const satisfies Record<string, () => Promise<StartWorker>>;

export type WorkerName = keyof typeof WORKERS;
export const WORKER_NAMES = Object.keys(WORKERS) as readonly WorkerName[];

const isWorkerName = (name: string): name is WorkerName => Object.hasOwn(WORKERS, name);

/** Starts the named worker; an unknown name is LG_ERR_WORKER_UNKNOWN, before anything connects. */
export async function startWorker(name: string, options: Readonly<Record<string, unknown>>, log: Logger): Promise<WorkerHandle> {
  if (!isWorkerName(name)) throw new LinegateError('LG_ERR_WORKER_UNKNOWN', [name, WORKER_NAMES.join(', ')]);
  const start = await WORKERS[name]();
  return start(options, log);
}

export type { WorkerHandle } from './types.js';
