import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { HISTORY_DDL, HISTORY_SCHEMA_VERSION, type DeploymentRow, type HistoryRow } from './schema.js';

/*
 * The history file's one writer, on a thread of its own. better-sqlite3 is synchronous: on the
 * event loop, a commit that meets a slow disk (or a checkpoint's fsync) would hold up the PLC
 * link's answer. Here the thread waits for the disk and the station's loop never does.
 *
 * The thread's code is plain JavaScript evaluated as a script (as the model thread's is), so it
 * runs the same under tsx, vitest and from dist/; the SQL comes from schema.ts.
 */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const Database = require(workerData.sqlitePath);
const fault = (e) => ({ code: e && e.code ? String(e.code) : 'UNKNOWN', message: String(e && e.message ? e.message : e) });
const yieldTurn = () => new Promise((r) => setImmediate(r));

function open() {
  fs.mkdirSync(path.dirname(workerData.file), { recursive: true });
  const db = new Database(workerData.file, { timeout: 5000 });
  try {
    // Only a new, empty file takes it; it lets retention hand freed pages back to the file system.
    db.pragma('auto_vacuum = INCREMENTAL');
    db.pragma('journal_mode = WAL');
    // WAL + NORMAL: a commit is appended to the WAL without an fsync; the WAL is fsync'd at each
    // checkpoint. A killed process (SIGKILL, a crash) loses nothing committed: the WAL is in the
    // OS's page cache and is replayed at the next open. Only an OS crash or power loss can lose
    // the last transactions, and the station's durable sinks (the JSONL file, the queue spool)
    // hold those results: the history is an index of them, not their only copy.
    db.pragma('synchronous = NORMAL');
    db.pragma('journal_size_limit = ' + workerData.walLimitBytes);
    if (workerData.maxPageCount > 0) db.pragma('max_page_count = ' + workerData.maxPageCount);
    const version = db.pragma('user_version', { simple: true });
    if (version > workerData.schemaVersion) {
      throw Object.assign(new Error('history file has schema version ' + version + ', newer than this linegate reads (' + workerData.schemaVersion + ')'), { code: 'LG_SCHEMA' });
    }
    db.exec(workerData.ddl);
    if (version === 0) db.pragma('user_version = ' + workerData.schemaVersion);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

function main() {
  let db;
  try {
    db = open();
  } catch (e) {
    parentPort.postMessage({ t: 'open-error', error: fault(e) });
    parentPort.close();
    return;
  }
  const insert = db.prepare('INSERT OR IGNORE INTO results (result_id, part_id, station, decided_at, verdict, reject_code, model, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  const insertCode = db.prepare('INSERT OR IGNORE INTO result_codes (code, decided_at, result_id) VALUES (?, ?, ?)');
  const insertLabel = db.prepare('INSERT OR IGNORE INTO result_labels (label, decided_at, result_id) VALUES (?, ?, ?)');
  const insertDeployment = db.prepare('INSERT OR IGNORE INTO deployments (activated_at, station, step, action, sha256, record) VALUES (?, ?, ?, ?, ?, ?)');
  // One transaction per batch: one WAL append for many rows.
  const insertAll = db.transaction((rows) => {
    let added = 0;
    for (const r of rows) {
      // A result id already kept (a part inspected again after a crash) is not a second row.
      if (insert.run(r.id, r.part, r.station, r.at, r.verdict, r.rejectCode, r.model, r.record).changes === 0) continue;
      added++;
      for (const c of r.codes) insertCode.run(c, r.at, r.id);
      for (const l of r.labels) insertLabel.run(l, r.at, r.id);
    }
    return added;
  });
  const olderThan = db.prepare('SELECT result_id FROM results WHERE decided_at < ? ORDER BY decided_at, result_id LIMIT ?').pluck();
  const oldest = db.prepare('SELECT result_id FROM results ORDER BY decided_at, result_id LIMIT ?').pluck();
  const count = db.prepare('SELECT count(*) FROM results').pluck();
  const delCodes = db.prepare('DELETE FROM result_codes WHERE result_id = ?');
  const delLabels = db.prepare('DELETE FROM result_labels WHERE result_id = ?');
  const delResult = db.prepare('DELETE FROM results WHERE result_id = ?');
  const deleteAll = db.transaction((ids) => {
    for (const id of ids) {
      delCodes.run(id);
      delLabels.run(id);
      delResult.run(id);
    }
  });
  const pragma = (p) => db.pragma(p, { simple: true });
  const usedBytes = () => (pragma('page_count') - pragma('freelist_count')) * pragma('page_size');
  let closing = false;
  let retaining = Promise.resolve();

  // Chunks, each its own transaction, with a turn between them: inserts posted meanwhile go in
  // between, so a first retention over a year of rows never holds the station's writes back.
  async function retain(m) {
    const t0 = Date.now();
    let byAge = 0;
    let bySize = 0;
    for (;;) {
      if (closing) break;
      const ids = olderThan.all(m.cutoff, m.chunk);
      if (ids.length === 0) break;
      deleteAll(ids);
      byAge += ids.length;
      await yieldTurn();
    }
    // Down to 90 % of the limit, so the next run does not start again at once.
    if (m.maxBytes > 0 && usedBytes() > m.maxBytes) {
      const target = m.maxBytes * 0.9;
      for (let used = usedBytes(); !closing && used > target; used = usedBytes()) {
        // As many rows as the excess holds at the average row's size: a fixed chunk would overshoot a small file.
        const rows = count.get();
        if (rows === 0) break;
        const ids = oldest.all(Math.max(1, Math.min(m.chunk, Math.ceil(((used - target) / used) * rows))));
        if (ids.length === 0) break;
        deleteAll(ids);
        bySize += ids.length;
        await yieldTurn();
      }
    }
    // Freed pages go back to the file system (auto_vacuum = INCREMENTAL): the file shrinks at the
    // next checkpoint instead of keeping its largest size for ever.
    if (byAge + bySize > 0 && !closing) db.pragma('incremental_vacuum');
    if (!closing) db.pragma('wal_checkpoint(PASSIVE)');
    return { byAge, bySize, usedBytes: usedBytes(), ms: Date.now() - t0 };
  }

  async function handle(m) {
    if (m.t === 'insert') return { added: insertAll(m.rows) };
    if (m.t === 'deployment') {
      const d = m.row;
      return { added: insertDeployment.run(d.at, d.station, d.step, d.action, d.sha256, d.record).changes };
    }
    if (m.t === 'retain') {
      const run = retain(m);
      retaining = run.then(() => undefined, () => undefined);
      return run;
    }
    if (m.t === 'close') {
      closing = true;
      await retaining;
      try {
        db.pragma('wal_checkpoint(PASSIVE)');
      } finally {
        db.close();
      }
      return {};
    }
    throw new Error('unknown request ' + m.t);
  }

  parentPort.on('message', (m) => {
    handle(m).then(
      (value) => parentPort.postMessage({ t: 'ok', id: m.id, value }),
      (e) => parentPort.postMessage({ t: 'err', id: m.id, error: fault(e) }),
    ).then(() => {
      if (m.t === 'close') parentPort.close();
    });
  });
  parentPort.postMessage({ t: 'ready' });
}
main();
`;

/** A failure the SQLite thread reported: SQLite's own code (`SQLITE_FULL`, `SQLITE_CANTOPEN`, ...) or the file system's (`ENOSPC`). */
export class HistoryFault extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'HistoryFault';
    this.code = code;
  }
}

export interface WriterOptions {
  readonly file: string;
  /** The WAL is cut back to this size after a checkpoint. */
  readonly walLimitBytes?: number;
  /** SQLite's max_page_count: a file that may not grow past it fails as a full disk does (tests). */
  readonly maxPageCount?: number;
}

export interface RetentionRun {
  readonly byAge: number;
  readonly bySize: number;
  /** Bytes the rows and indexes use after the run. */
  readonly usedBytes: number;
  readonly ms: number;
}

type FromWorker =
  | { t: 'ready' }
  | { t: 'open-error'; error: { code: string; message: string } }
  | { t: 'ok'; id: number; value: unknown }
  | { t: 'err'; id: number; error: { code: string; message: string } };

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

const WAL_LIMIT_BYTES = 64 * 1024 * 1024;
const sqlitePath = (): string => createRequire(import.meta.url).resolve('better-sqlite3');

/** The client side of the writer thread: requests are done one at a time, in the order they were made. */
export class HistoryWriter {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #dead: Error | undefined;
  #closing: Promise<void> | undefined;
  readonly #exited: Promise<void>;

  private constructor(worker: Worker) {
    this.#worker = worker;
    this.#exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (m: FromWorker) => {
      if (m.t !== 'ok' && m.t !== 'err') return;
      const p = this.#pending.get(m.id);
      if (p === undefined) return;
      this.#pending.delete(m.id);
      this.#idle();
      if (m.t === 'ok') p.resolve(m.value);
      else p.reject(new HistoryFault(m.error.code, m.error.message));
    });
    const die = (e: Error): void => {
      this.#dead ??= e;
      for (const p of this.#pending.values()) p.reject(e);
      this.#pending.clear();
    };
    worker.on('error', (e) => die(new HistoryFault('THREAD', `history thread failed: ${e.message}`)));
    worker.once('exit', (code) => die(new HistoryFault('THREAD', `history thread exited (code ${code})`)));
  }

  /** Opens (creating) the file on a new thread; rejects with a HistoryFault when it cannot. */
  static open(o: WriterOptions): Promise<HistoryWriter> {
    const worker = new Worker(WORKER_CODE, {
      eval: true,
      workerData: {
        sqlitePath: sqlitePath(),
        file: o.file,
        ddl: HISTORY_DDL,
        schemaVersion: HISTORY_SCHEMA_VERSION,
        walLimitBytes: o.walLimitBytes ?? WAL_LIMIT_BYTES,
        maxPageCount: o.maxPageCount ?? 0,
      },
      // The parent's loaders (tsx, vitest) have no business in a thread that only requires better-sqlite3.
      execArgv: [],
      stdout: false,
      stderr: false,
    });
    return new Promise<HistoryWriter>((resolve, reject) => {
      const onMessage = (m: FromWorker): void => {
        if (m.t === 'ready') {
          off();
          const w = new HistoryWriter(worker);
          w.#idle();
          resolve(w);
        } else if (m.t === 'open-error') {
          off();
          reject(new HistoryFault(m.error.code, m.error.message));
        }
      };
      const onError = (e: Error): void => {
        off();
        reject(new HistoryFault('THREAD', `history thread failed: ${e.message}`));
      };
      const onExit = (code: number): void => {
        off();
        reject(new HistoryFault('THREAD', `history thread exited (code ${code}) before it opened ${o.file}`));
      };
      const off = (): void => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
  }

  /** Why the thread is gone, when it is. */
  get dead(): Error | undefined {
    return this.#dead;
  }

  /** Inserts the rows in one transaction; resolves with how many were new (a known result id is skipped). */
  async insert(rows: readonly HistoryRow[]): Promise<number> {
    const v = (await this.#request({ t: 'insert', rows })) as { added: number };
    return v.added;
  }

  /** Keeps one model activation; the same one twice (same instant, step, action and weights) is one row. */
  async deployment(row: DeploymentRow): Promise<void> {
    await this.#request({ t: 'deployment', row });
  }

  /** Deletes rows decided before `cutoff`, then the oldest while the file uses more than `maxBytes` (0: no size limit), `chunk` rows a transaction. */
  async retain(o: { readonly cutoff: string; readonly maxBytes: number; readonly chunk?: number }): Promise<RetentionRun> {
    return (await this.#request({ t: 'retain', cutoff: o.cutoff, maxBytes: o.maxBytes, chunk: o.chunk ?? 2000 })) as RetentionRun;
  }

  /** Finishes what was asked, checkpoints and closes the file, and ends the thread; terminated when that takes longer than `ms`. Idempotent. */
  close(ms: number): Promise<void> {
    return (this.#closing ??= (async () => {
      if (this.#dead === undefined) {
        const closed = this.#request({ t: 'close' }).then(() => this.#exited);
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
        const outcome = await Promise.race([closed.then(() => 'done' as const, () => 'done' as const), late]);
        clearTimeout(timer);
        if (outcome === 'done') return;
      }
      await this.#worker.terminate();
    })());
  }

  #request(m: Record<string, unknown>): Promise<unknown> {
    if (this.#dead !== undefined) return Promise.reject(this.#dead);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // Referenced while a request is out, so a process awaiting it does not end under it.
      this.#worker.ref();
      this.#worker.postMessage({ ...m, id });
    });
  }

  #idle(): void {
    if (this.#pending.size === 0) this.#worker.unref();
  }
}
