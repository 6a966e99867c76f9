import { DEPLOYMENT_RECORDS_SERVICE, type DeploymentRecord, type DeploymentRecords, type Health, type Logger, type PluginContext, type SinkInstance, type WriteInfo } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import type { DeliveryStatus, InspectionResult } from '../../runtime/result.js';
import { canonicalInstant, toRow, type DeploymentRow, type HistoryRow } from './schema.js';
import { HistoryFault, HistoryWriter, type RetentionRun } from './writer.js';

export interface HistorySinkOptions {
  readonly file: string;
  readonly step: string;
  readonly pluginId: string;
  readonly maxAgeDays: number;
  /** 0: no size limit. */
  readonly maxBytes: number;
  /** Rows per transaction at most. */
  readonly batchSize: number;
  readonly retentionEveryMs: number;
  /** Bound on close (flush, checkpoint, the thread's end). */
  readonly closeMs: number;
  readonly log: Logger;
  /** How the file is opened; tests give one that fills up. */
  readonly open?: (file: string) => Promise<HistoryWriter>;
}

/** After a failed open, the next try waits this long: a missing folder is not retried per result. */
const REOPEN_MS = 5000;
const DAY_MS = 86_400_000;

interface Fault {
  readonly err: LinegateError;
  readonly where: 'open' | 'write' | 'retention';
  readonly since: string;
  failed: number;
}

/** A failure of the thread or of SQLite, as the catalogue names it: a full disk is one the lane waits out. */
export function historyError(file: string, e: unknown): LinegateError {
  if (e instanceof LinegateError) return e;
  const code = e instanceof HistoryFault ? e.code : String((e as { code?: unknown }).code ?? '');
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') return new LinegateError('LG_ERR_DISK_FULL', [file, messageOf(e)], { cause: e });
  return new LinegateError('LG_ERR_HISTORY_WRITE', [file, `${code === '' ? '' : `${code}: `}${messageOf(e)}`], { cause: e });
}

/**
 * The history sink's state: a batch of rows not yet committed, the writer thread (opened again by
 * itself after a fault), retention on a timer, and health. Rows are committed one transaction per
 * lane batch: while more results wait behind this one (`info.behind`), the row joins the batch and
 * the write resolves `pending`; the write that empties the lane (or fills the batch) commits them
 * all. A failed commit keeps its rows for the next (a full disk: the lane tries the same result
 * again), up to four batches; past that the oldest are let go and counted.
 */
export class HistorySink implements SinkInstance {
  readonly #o: HistorySinkOptions;
  readonly #batch = new Map<string, HistoryRow>();
  #writer: HistoryWriter | undefined;
  #openFailedAt = -Infinity;
  #openError: LinegateError | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #fault: Fault | undefined;
  #written = 0;
  #lost = 0;
  #retention: (RetentionRun & { readonly at: string }) | undefined;
  #retaining = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(o: HistorySinkOptions) {
    this.#o = o;
  }

  /** Opens the file and starts retention; never throws: a file that cannot be opened is `degraded`, never a station that cannot start. */
  async start(): Promise<void> {
    try {
      await this.#ensureOpen();
    } catch (e) {
      this.#enter(historyError(this.#o.file, e), 'open');
    }
    this.#timer = setInterval(() => void this.retain(), this.#o.retentionEveryMs);
    this.#timer.unref();
    void this.retain();
  }

  write(result: InspectionResult, ctx: PluginContext, _image?: unknown, info?: WriteInfo): Promise<DeliveryStatus | void> {
    if (this.#closed) return Promise.reject(new LinegateError('LG_ERR_PLUGIN_CLOSED', [this.#o.step, this.#o.pluginId], { step: this.#o.step }));
    try {
      ctx.signal.throwIfAborted();
    } catch (e) {
      return Promise.reject(e);
    }
    this.#batch.set(result.resultId, toRow(result));
    if ((info?.behind ?? 0) > 0 && this.#batch.size < this.#o.batchSize) return Promise.resolve('pending');
    return this.#commit().then(() => 'delivered' as const);
  }

  readonly #records: DeploymentRecords = { record: (station, d) => this.recordDeployment(station, d) };

  service(name: string): unknown {
    return name === DEPLOYMENT_RECORDS_SERVICE ? this.#records : undefined;
  }

  /** Keeps a model activation, in order with the results around it; throws when the file cannot take it (the deploy journal still has it). */
  recordDeployment(station: string, d: DeploymentRecord): Promise<void> {
    if (this.#closed) return Promise.reject(new LinegateError('LG_ERR_PLUGIN_CLOSED', [this.#o.step, this.#o.pluginId], { step: this.#o.step }));
    const row: DeploymentRow = { at: canonicalInstant(d.activatedAt), station, step: d.step, action: d.action, sha256: d.sha256, record: JSON.stringify(d) };
    const run = this.#chain.then(async () => {
      const writer = await this.#ensureOpen();
      await writer.deployment(row);
    });
    this.#chain = run.catch(() => undefined);
    return run.catch((e: unknown) => {
      throw historyError(this.#o.file, e);
    });
  }

  async flush(): Promise<void> {
    if (this.#batch.size > 0) await this.#commit().catch(() => undefined);
    await this.#chain;
  }

  /** Deletes what is past the age and size limits; one run at a time; failures are health, never thrown. */
  async retain(now = Date.now()): Promise<RetentionRun | undefined> {
    const w = this.#writer;
    if (this.#retaining || this.#closed || w === undefined || w.dead !== undefined) return undefined;
    this.#retaining = true;
    try {
      const run = await w.retain({ cutoff: new Date(now - this.#o.maxAgeDays * DAY_MS).toISOString(), maxBytes: this.#o.maxBytes });
      this.#retention = { ...run, at: new Date(now).toISOString() };
      if (run.byAge + run.bySize > 0) this.#o.log.info({ file: this.#o.file, ...run }, `history retention removed ${run.byAge} result(s) past ${this.#o.maxAgeDays} days and ${run.bySize} over the size limit`);
      if (this.#fault?.where === 'retention') this.#leave();
      return run;
    } catch (e) {
      if (!this.#closed) this.#enter(historyError(this.#o.file, e), 'retention');
      return undefined;
    } finally {
      this.#retaining = false;
    }
  }

  health(): Health {
    const data = { file: this.#o.file, written: this.#written, uncommitted: this.#batch.size, lost: this.#lost, ...(this.#retention === undefined ? {} : { retention: this.#retention }) };
    const f = this.#fault;
    if (f === undefined) return { status: 'ok', detail: `${this.#written} result(s) written to ${this.#o.file}`, data };
    return {
      status: 'degraded',
      detail: `history ${f.where === 'retention' ? 'retention fails' : 'is not written'} (${f.err.code}: ${f.err.message}) since ${f.since}, ${f.failed} failure(s); verdicts are not affected, and it recovers by itself`,
      data: { ...data, code: f.err.code, since: f.since, failed: f.failed },
    };
  }

  /** Commits what is batched, stops retention, checkpoints and closes the file; bounded by `closeMs`, idempotent. */
  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      this.#closed = true;
      if (this.#timer !== undefined) clearInterval(this.#timer);
      const started = Date.now();
      const flushed = this.#batch.size > 0 ? this.#commit().catch(() => undefined) : this.#chain;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([flushed.then(() => undefined, () => undefined), new Promise<void>((r) => (timer = setTimeout(r, this.#o.closeMs)))]);
      clearTimeout(timer);
      if (this.#batch.size > 0) this.#o.log.warn({ file: this.#o.file, rows: this.#batch.size }, 'history closed with results it could not commit');
      await this.#writer?.close(Math.max(100, this.#o.closeMs - (Date.now() - started)));
      this.#writer = undefined;
    })());
  }

  /** One commit at a time, in order: the batch as it is when its turn comes. */
  #commit(): Promise<void> {
    const run = this.#chain.then(async () => {
      if (this.#batch.size === 0) return;
      const rows = [...this.#batch.values()];
      let writer: HistoryWriter;
      try {
        writer = await this.#ensureOpen();
        this.#written += await writer.insert(rows);
      } catch (e) {
        const err = historyError(this.#o.file, e);
        this.#hold();
        this.#enter(err, 'write');
        throw err;
      }
      for (const r of rows) this.#batch.delete(r.id);
      if (this.#fault !== undefined && this.#fault.where !== 'retention') this.#leave();
    });
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** A failing file must not hold results without bound: past four batches, the oldest go (counted). */
  #hold(): void {
    const max = this.#o.batchSize * 4;
    for (const id of this.#batch.keys()) {
      if (this.#batch.size <= max) break;
      this.#batch.delete(id);
      this.#lost++;
    }
  }

  async #ensureOpen(): Promise<HistoryWriter> {
    const w = this.#writer;
    if (w !== undefined && w.dead === undefined) return w;
    if (w !== undefined) {
      this.#writer = undefined;
      await w.close(100);
    }
    if (this.#openError !== undefined && Date.now() - this.#openFailedAt < REOPEN_MS) throw this.#openError;
    try {
      this.#writer = await (this.#o.open ?? ((file: string) => HistoryWriter.open({ file })))(this.#o.file);
      this.#openError = undefined;
      return this.#writer;
    } catch (e) {
      this.#openFailedAt = Date.now();
      this.#openError = historyError(this.#o.file, e);
      throw this.#openError;
    }
  }

  #enter(err: LinegateError, where: Fault['where']): void {
    const f = this.#fault;
    if (f !== undefined && f.err.code === err.code && f.where === where) {
      f.failed++;
      return;
    }
    this.#fault = { err, where, since: new Date().toISOString(), failed: 1 };
    // A failed write is thrown to the station, which logs its sink's failing state once: only what it cannot see is logged here.
    const level = where === 'write' ? 'debug' : 'warn';
    this.#o.log[level]({ err, code: err.code, file: this.#o.file }, `history ${where === 'retention' ? 'retention failed' : 'is not written'}: ${err.message}; the station goes on, health is degraded until it recovers`);
  }

  #leave(): void {
    const f = this.#fault;
    if (f === undefined) return;
    this.#fault = undefined;
    const level = f.where === 'write' ? 'debug' : 'info';
    this.#o.log[level]({ code: f.err.code, failed: f.failed, since: f.since, file: this.#o.file }, `history works again after ${f.failed} failure(s) since ${f.since}`);
  }
}
