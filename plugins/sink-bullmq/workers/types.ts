import type { Logger } from '../../../runtime/contract.js';

/*
 * What a running worker gives its caller (the CLI, a test): plain types only,
 * so nothing outside this folder depends on BullMQ or ioredis.
 */

export interface WorkerHandle {
  /** The worker's name, e.g. `dataset-export`. */
  readonly name: string;
  /** Jobs completed since start. */
  processed(): number;
  /** Job attempts that failed since start (an attempt BullMQ will retry counts too). */
  failed(): number;
  /**
   * Stops taking jobs, waits for the running ones (bounded by `closeTimeoutMs`,
   * then cancels them: BullMQ hands them to another worker), then releases
   * Redis. Idempotent: every call returns the same promise.
   */
  close(): Promise<void>;
}

/** Starts a worker from unvalidated options (CLI flags, a test's object). */
export type StartWorker = (options: Readonly<Record<string, unknown>>, log: Logger) => Promise<WorkerHandle>;
