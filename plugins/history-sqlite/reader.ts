import { statSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { DeploymentRecord } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import type { HistoryFilter, HistoryPage, HistoryReader } from '../../runtime/history.js';
import type { InspectionResult } from '../../runtime/result.js';
import { HISTORY_SCHEMA_VERSION, canonicalInstant } from './schema.js';

/*
 * The read side of a station's history file, on a read-only connection of its own: WAL lets it
 * read a consistent snapshot while the station's writer thread appends, and it can never write.
 * Pages are keyset pages on (decided_at, result_id), newest first: a page costs the same at the
 * millionth row as at the first, and rows inserted between two pages neither repeat nor hide one.
 */

export const MAX_PAGE = 1000;

type Key = readonly [decidedAt: string, resultId: string];

const encodeCursor = (k: Key): string => Buffer.from(JSON.stringify(k)).toString('base64url');

function decodeCursor(cursor: string): Key {
  try {
    const k: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(k) && k.length === 2 && typeof k[0] === 'string' && typeof k[1] === 'string' && !Number.isNaN(Date.parse(k[0]))) return [k[0], k[1]];
  } catch {
    // reported below
  }
  throw new LinegateError('LG_ERR_HISTORY_QUERY', ['cursor', 'not a cursor this history gave out']);
}

function instant(field: string, v: string): string {
  if (Number.isNaN(Date.parse(v))) throw new LinegateError('LG_ERR_HISTORY_QUERY', [field, `"${v}" is not an ISO 8601 instant`]);
  return canonicalInstant(v);
}

/**
 * The SQL of one page. With a code or a label, its child table drives (its primary key is
 * (code, decided_at, result_id)); otherwise the results table, where the planner picks the part,
 * verdict, reject code or time index. Either way the rows come in index order: no sort.
 */
export function pageQuery(f: HistoryFilter, after: Key | undefined, limit: number): { readonly sql: string; readonly params: readonly (string | number)[] } {
  const where: string[] = [];
  const params: (string | number)[] = [];
  let from = 'results r';
  let key = 'r';
  if (f.code !== undefined) {
    from = 'result_codes k JOIN results r ON r.result_id = k.result_id';
    key = 'k';
    where.push('k.code = ?');
    params.push(f.code);
  } else if (f.label !== undefined) {
    from = 'result_labels k JOIN results r ON r.result_id = k.result_id';
    key = 'k';
    where.push('k.label = ?');
    params.push(f.label);
  }
  if (f.code !== undefined && f.label !== undefined) {
    where.push('EXISTS (SELECT 1 FROM result_labels l WHERE l.result_id = r.result_id AND l.label = ?)');
    params.push(f.label);
  }
  if (f.partId !== undefined) (where.push('r.part_id = ?'), params.push(f.partId));
  if (f.verdict !== undefined) (where.push('r.verdict = ?'), params.push(f.verdict));
  if (f.rejectCode !== undefined) (where.push('r.reject_code = ?'), params.push(f.rejectCode));
  if (f.since !== undefined) (where.push(`${key}.decided_at >= ?`), params.push(instant('since', f.since)));
  if (f.until !== undefined) (where.push(`${key}.decided_at < ?`), params.push(instant('until', f.until)));
  if (after !== undefined) (where.push(`(${key}.decided_at, ${key}.result_id) < (?, ?)`), params.push(after[0], after[1]));
  const sql = `SELECT r.record AS record, r.decided_at AS at, r.result_id AS id FROM ${from}${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${key}.decided_at DESC, ${key}.result_id DESC LIMIT ?`;
  return { sql, params: [...params, limit] };
}

class SqliteHistoryReader implements HistoryReader {
  readonly #db: Database.Database;
  readonly #file: string;
  #closed = false;

  constructor(db: Database.Database, file: string) {
    this.#db = db;
    this.#file = file;
  }

  async query(filter: HistoryFilter, page: { readonly limit: number; readonly cursor?: string }): Promise<HistoryPage> {
    this.#open();
    if (!Number.isInteger(page.limit) || page.limit < 1 || page.limit > MAX_PAGE) throw new LinegateError('LG_ERR_HISTORY_QUERY', ['limit', `must be an integer from 1 to ${MAX_PAGE}`]);
    const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
    const { sql, params } = pageQuery(filter, after, page.limit + 1);
    const rows = this.#read(() => this.#db.prepare<unknown[], { record: string; at: string; id: string }>(sql).all(...params));
    const more = rows.length > page.limit;
    const kept = more ? rows.slice(0, page.limit) : rows;
    const items = kept.map((r) => JSON.parse(r.record) as InspectionResult);
    const last = kept.at(-1);
    return more && last !== undefined ? { items, next: encodeCursor([last.at, last.id]) } : { items };
  }

  async get(resultId: string): Promise<InspectionResult | undefined> {
    this.#open();
    const row = this.#read(() => this.#db.prepare<[string], { record: string }>('SELECT record FROM results WHERE result_id = ?').get(resultId));
    return row === undefined ? undefined : (JSON.parse(row.record) as InspectionResult);
  }

  async stats(): Promise<{ readonly rows: number; readonly bytes: number; readonly oldest?: string; readonly newest?: string }> {
    this.#open();
    const s = this.#read(() =>
      this.#db.prepare<[], { rows: number; oldest: string | null; newest: string | null }>('SELECT count(*) AS rows, min(decided_at) AS oldest, max(decided_at) AS newest FROM results').get(),
    );
    const size = (f: string): number => {
      try {
        return statSync(f).size;
      } catch {
        return 0;
      }
    };
    const bytes = size(this.#file) + size(`${this.#file}-wal`);
    return { rows: s?.rows ?? 0, bytes, ...(s?.oldest == null ? {} : { oldest: s.oldest }), ...(s?.newest == null ? {} : { newest: s.newest }) };
  }

  /** Model activations kept in the file, newest first; none in a file written before they were kept. */
  async deployments(limit: number): Promise<DeploymentRecord[]> {
    this.#open();
    const known = this.#read(() => this.#db.prepare<[], { n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'deployments'").get());
    if ((known?.n ?? 0) === 0) return [];
    const rows = this.#read(() => this.#db.prepare<[number], { record: string }>('SELECT record FROM deployments ORDER BY activated_at DESC, seq DESC LIMIT ?').all(Math.max(1, Math.min(limit, MAX_PAGE))));
    return rows.map((r) => JSON.parse(r.record) as DeploymentRecord);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #open(): void {
    if (this.#closed) throw new LinegateError('LG_ERR_HISTORY_READ', [this.#file, 'the reader is closed']);
  }

  #read<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof LinegateError) throw e;
      throw new LinegateError('LG_ERR_HISTORY_READ', [this.#file, messageOf(e)], { cause: e });
    }
  }
}

/** Opens a station's history file for reading; LG_ERR_HISTORY_MISSING when there is none, LG_ERR_HISTORY_READ when it is not one. */
export async function openHistoryReader(file: string): Promise<HistoryReader> {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'SQLITE_CANTOPEN') throw new LinegateError('LG_ERR_HISTORY_MISSING', [file], { cause: e });
    throw new LinegateError('LG_ERR_HISTORY_READ', [file, messageOf(e)], { cause: e });
  }
  try {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > HISTORY_SCHEMA_VERSION) throw new Error(`schema version ${version} is newer than this linegate reads (${HISTORY_SCHEMA_VERSION})`);
    // A file that is no history (or not SQLite at all) fails here, at open, not at the first query.
    db.prepare('SELECT result_id, decided_at, record FROM results LIMIT 0').all();
  } catch (e) {
    db.close();
    throw new LinegateError('LG_ERR_HISTORY_READ', [file, messageOf(e)], { cause: e });
  }
  return new SqliteHistoryReader(db, file);
}
