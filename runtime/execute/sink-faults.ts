import type { Logger } from '../contract.js';
import type { LinegateError } from '../errors.js';

/** What the failing write was about, for the one line that reports the state. */
export interface FailedWrite {
  readonly resultId: string;
  readonly partId: string;
  readonly critical: boolean;
}

/**
 * One sink's failing state: one log line when its writes start to fail and one when they work
 * again, with the count in between. A full disk must raise one alarm, not a line per result: a
 * line per result buries the rest of the log and costs the CPU the frames need. A failure with
 * another code is another fault, and gets its own line.
 */
export class SinkFaults {
  readonly #sink: string;
  readonly #log: Logger;
  #failing: { code: string; count: number; since: string } | undefined;

  constructor(sink: string, log: Logger) {
    this.#sink = sink;
    this.#log = log;
  }

  /** The code of the fault the sink is in, if any. */
  get failing(): string | undefined {
    return this.#failing?.code;
  }

  failed(err: LinegateError, write: FailedWrite): void {
    const f = this.#failing;
    if (f !== undefined && f.code === err.code) {
      f.count++;
      this.#log.debug({ sink: this.#sink, code: err.code, resultId: write.resultId }, 'sink still failing');
      return;
    }
    this.#failing = { code: err.code, count: 1, since: new Date().toISOString() };
    this.#log.error(
      { err, code: err.code, sink: this.#sink, resultId: write.resultId, partId: write.partId, critical: write.critical },
      `${err.message}; further failures of sink "${this.#sink}" are counted, not logged, until it delivers again`,
    );
  }

  ok(): void {
    const f = this.#failing;
    if (f === undefined) return;
    this.#failing = undefined;
    this.#log.info({ sink: this.#sink, code: f.code, failed: f.count, since: f.since }, `sink "${this.#sink}" delivers again; ${f.count} result(s) failed since ${f.since} (${f.code})`);
  }
}
