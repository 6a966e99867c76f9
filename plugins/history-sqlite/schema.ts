import type { InspectionResult } from '../../runtime/result.js';

/*
 * The history file's tables, shared by the writer thread (which gets these strings) and the reader.
 * One row per result, the whole record as JSON beside the columns the filters need. Every filter
 * has an index that ends in (decided_at, result_id), the paging key, so "newest first, after this
 * cursor" is an index range scan for any one filter, never a sort of everything that matched.
 * Reason codes and defect labels are many per result: each has a child table of its own, keyed
 * the same way, with decided_at copied in so that a page of one code is read from its index alone.
 */

/** Bumped when the tables change in a way an older reader cannot read. */
export const HISTORY_SCHEMA_VERSION = 1;

export const HISTORY_DDL = `
CREATE TABLE IF NOT EXISTS results (
  seq         INTEGER PRIMARY KEY,
  result_id   TEXT NOT NULL UNIQUE,
  part_id     TEXT NOT NULL,
  station     TEXT NOT NULL,
  decided_at  TEXT NOT NULL,
  verdict     TEXT NOT NULL,
  reject_code INTEGER NOT NULL,
  model       TEXT,
  record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_time    ON results (decided_at, result_id);
CREATE INDEX IF NOT EXISTS results_part    ON results (part_id, decided_at, result_id);
CREATE INDEX IF NOT EXISTS results_verdict ON results (verdict, decided_at, result_id);
CREATE INDEX IF NOT EXISTS results_reject  ON results (reject_code, decided_at, result_id);
CREATE TABLE IF NOT EXISTS result_codes (
  code       TEXT NOT NULL,
  decided_at TEXT NOT NULL,
  result_id  TEXT NOT NULL,
  PRIMARY KEY (code, decided_at, result_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS result_codes_id ON result_codes (result_id);
CREATE TABLE IF NOT EXISTS result_labels (
  label      TEXT NOT NULL,
  decided_at TEXT NOT NULL,
  result_id  TEXT NOT NULL,
  PRIMARY KEY (label, decided_at, result_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS result_labels_id ON result_labels (result_id);
CREATE TABLE IF NOT EXISTS deployments (
  seq          INTEGER PRIMARY KEY,
  activated_at TEXT NOT NULL,
  station      TEXT NOT NULL,
  step         TEXT NOT NULL,
  action       TEXT NOT NULL,
  sha256       TEXT NOT NULL,
  record       TEXT NOT NULL,
  UNIQUE (activated_at, station, step, action, sha256)
);
`;

/**
 * One model activation (a start, a deploy, a rollback) as the writer thread stores it. Retention
 * never deletes these: which model judged a station's parts, and who put it there, outlives the
 * results themselves.
 */
export interface DeploymentRow {
  readonly at: string;
  readonly station: string;
  readonly step: string;
  readonly action: string;
  readonly sha256: string;
  readonly record: string;
}

/** One result as the writer thread stores it: plain data, so it crosses to the thread as it is. */
export interface HistoryRow {
  readonly id: string;
  readonly part: string;
  readonly station: string;
  /** ISO 8601 UTC with milliseconds: sorts as text in time order. */
  readonly at: string;
  readonly verdict: string;
  readonly rejectCode: number;
  readonly model: string | null;
  readonly codes: readonly string[];
  readonly labels: readonly string[];
  readonly record: string;
}

/** The one form every instant takes in the file (and in a query), so text order is time order. */
export function canonicalInstant(iso: string): string {
  return new Date(iso).toISOString();
}

export function toRow(r: InspectionResult): HistoryRow {
  return {
    id: r.resultId,
    part: r.partId,
    station: r.station.id,
    at: canonicalInstant(r.time.decidedAt),
    verdict: r.verdict,
    rejectCode: r.rejectCode,
    model: r.model === null ? null : `${r.model.name}@${r.model.version}`,
    codes: [...new Set(r.reasons.map((x) => x.code))],
    labels: [...new Set(r.defects.map((d) => d.label))],
    record: JSON.stringify(r),
  };
}
