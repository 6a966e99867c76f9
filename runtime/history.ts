/**
 * The traceability history as the rest of linegate sees it: every result a
 * station produced, queryable by part, verdict, reject code, label and time.
 * The store behind it (an SQLite file per station, in its own plugin) is
 * invisible here: the API and the `history` command speak only these types.
 */
import type { DeploymentRecord } from './contract.js';
import type { InspectionResult, Verdict } from './result.js';

export interface HistoryFilter {
  readonly partId?: string;
  readonly verdict?: Verdict;
  /** A reason code: a rule id or an LG_ERR_ code. */
  readonly code?: string;
  /** The PLC's numeric reject code. */
  readonly rejectCode?: number;
  /** A defect label on the result. */
  readonly label?: string;
  /** ISO 8601 instants, decidedAt >= since and < until. */
  readonly since?: string;
  readonly until?: string;
}

export interface HistoryPage {
  /** Newest first. */
  readonly items: readonly InspectionResult[];
  /** Opaque; pass it back for the next (older) page; absent on the last page. */
  readonly next?: string;
}

/** Read side of the history: safe to use while a station writes (its own connection). */
export interface HistoryReader {
  query(filter: HistoryFilter, page: { readonly limit: number; readonly cursor?: string }): Promise<HistoryPage>;
  get(resultId: string): Promise<InspectionResult | undefined>;
  /** Rows kept, bytes on disk, oldest and newest decidedAt: for health and metrics. */
  stats(): Promise<{ readonly rows: number; readonly bytes: number; readonly oldest?: string; readonly newest?: string }>;
  /** Model activations (starts, deploys, rollbacks), newest first, when the store keeps them. */
  deployments?(limit: number): Promise<DeploymentRecord[]>;
  close(): Promise<void>;
}
