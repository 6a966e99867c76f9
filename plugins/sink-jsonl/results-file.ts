import path from 'node:path';
import type { Health, Logger } from '../../runtime/contract.js';
import type { LinegateError } from '../../runtime/errors.js';
import type { FileOps } from '../lib/file-ops.js';
import { LineFile, writeError } from '../lib/line-file.js';

/*
 * The JSONL results file's writer: lines whole or not at all (a failed or short
 * write is cut back to the last good offset, so the file never holds half a
 * line, nor a line glued onto half of one), optionally fsync'd each, and a full
 * disk as one state in its health, with the cause, until a write works again.
 * Recovery needs nothing: the next write that fits just works.
 */

export interface ResultsFileOptions {
  readonly ops: FileOps;
  /** fsync after every line (durable), or only on flush and close. */
  readonly syncEach: boolean;
  readonly log: Logger;
}

export class ResultsFile {
  readonly #o: ResultsFileOptions;
  #file: LineFile | undefined;
  #fault: { readonly err: LinegateError; readonly since: string; failed: number } | undefined;

  constructor(o: ResultsFileOptions) {
    this.#o = o;
  }

  /** Appends one line to `file` (switching files when the name changes); throws the coded error when it is not kept. */
  async append(file: string, line: string): Promise<void> {
    try {
      if (this.#file?.file !== file || this.#file.broken !== undefined) await this.#switchTo(file);
      await this.#file!.append(Buffer.from(line), this.#o.syncEach);
    } catch (e) {
      const err = writeError(file, e);
      this.#failed(err);
      throw err;
    }
    this.#ok();
  }

  /** fsync of what was written without it (syncEach off). */
  async sync(): Promise<void> {
    await this.#file?.sync();
  }

  health(): Health {
    const f = this.#fault;
    if (f === undefined) return { status: 'ok', detail: this.#file === undefined ? 'no result written yet' : `writing ${this.#file.file}` };
    return {
      status: 'degraded',
      detail: `results are not written (${f.err.code}: ${f.err.message}); ${f.failed} refused since ${f.since}; writing resumes by itself`,
      data: { code: f.err.code, since: f.since, failed: f.failed },
    };
  }

  async close(): Promise<void> {
    const f = this.#file;
    this.#file = undefined;
    if (f === undefined) return;
    await f.sync().catch(() => undefined);
    await f.close();
  }

  async #switchTo(file: string): Promise<void> {
    const old = this.#file;
    this.#file = undefined;
    if (old !== undefined) {
      await old.sync().catch(() => undefined);
      await old.close();
    }
    const { file: opened, cut } = await LineFile.open(file, this.#o.ops);
    if (cut > 0) this.#o.log.warn({ file, cutBytes: cut }, 'results file ended in a torn line (a crash or power loss mid-write); it was cut off');
    this.#file = opened;
  }

  #failed(err: LinegateError): void {
    if (this.#fault !== undefined && this.#fault.err.code === err.code) {
      this.#fault.failed++;
      return;
    }
    this.#fault = { err, since: new Date().toISOString(), failed: 1 };
    // The station logs the failed write once per state (it is thrown to it): health carries the rest.
    this.#o.log.debug({ err }, 'results file cannot be written');
  }

  #ok(): void {
    const f = this.#fault;
    if (f === undefined) return;
    this.#fault = undefined;
    this.#o.log.debug({ code: f.err.code, failed: f.failed, since: f.since }, 'results file written again');
  }
}

/** `<dir>/<station>-YYYY-MM-DD.jsonl` (daily, by the result's decision date) or `<dir>/<station>.jsonl`. */
export function resultsFileName(dir: string, stationId: string, rotate: 'daily' | 'none', decidedAt: string): string {
  return path.join(dir, rotate === 'daily' ? `${stationId}-${decidedAt.slice(0, 10)}.jsonl` : `${stationId}.jsonl`);
}
