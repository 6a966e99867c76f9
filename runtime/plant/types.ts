import type { PlantHierarchy, Verdict } from '../result.js';

/*
 * What the plant page reads: per-station counts, from wherever they are kept
 * (the stats worker's keys in Redis: plugins/sink-bullmq/workers/plant-read.ts).
 * Plain data only, so runtime/ never sees ioredis.
 */

/** Counts by verdict. */
export interface VerdictCounts {
  readonly pass: number;
  readonly fail: number;
  readonly error: number;
}

/** One station's counts over a window of whole minutes, as the stats worker kept them. */
export interface StationCounts {
  readonly station: string;
  readonly line?: string;
  readonly hierarchy?: PlantHierarchy;
  /** decidedAt of the newest result counted (ISO), whether inside the window or before it; null when unknown. */
  readonly lastAt: string | null;
  readonly lastVerdict?: Verdict;
  /** One entry per minute of the window, oldest first. */
  readonly perMinute: readonly VerdictCounts[];
  /** Parts not passed, by the reject code the PLC got, with the reason code behind it when known. */
  readonly rejectCodes: readonly { readonly code: number; readonly name?: string; readonly count: number }[];
  /** Parts with a fired defect, by label. */
  readonly labels: readonly { readonly label: string; readonly count: number }[];
}

export interface PlantWindow {
  /** Whole minutes, the one holding `now` included. */
  readonly minutes: number;
  /** ms since the epoch. */
  readonly now: number;
}

/** Where the plant page gets its counts. `read` fails with a coded error (LG_ERR_QUEUE_REDIS, LG_ERR_QUEUE_AUTH) while the store is away. */
export interface PlantSource {
  /** Where the counts come from, without credentials, for the page and the log. */
  readonly where: string;
  read(window: PlantWindow): Promise<readonly StationCounts[]>;
  /** Idempotent. */
  close(): Promise<void>;
}
