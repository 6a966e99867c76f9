import { performance } from 'node:perf_hooks';
import type { Logger } from '../contract.js';
import { LinegateError } from '../errors.js';
import { withTimeout } from './bounded.js';

/** A stage call a part stopped waiting for when its budget ran out. */
export interface StageRun {
  readonly step: string;
  readonly plugin: string;
  readonly partId: string;
}

/** A stage call still running long past its part's budget, for the health report. */
export interface HungRun {
  readonly step: string;
  readonly partId: string;
  /** How long past the budget it has been running. */
  readonly ms: number;
}

interface Overrun extends StageRun {
  /** performance.now() when the budget ran out. */
  readonly since: number;
  hung: boolean;
  timer: NodeJS.Timeout | undefined;
}

/**
 * One inspection slot. The part holds it while it is inspected and delivered; a stage call the part
 * stopped waiting for holds it until that call really returns, because an ONNX run cannot be
 * cancelled and a new part beside it would oversubscribe the CPU the station was sized for.
 */
export interface Slot {
  /** The part has stopped waiting for `run` (its budget ran out); the slot stays taken until `run` settles. */
  overrun(run: Promise<unknown>, what: StageRun): void;
  /** The part is finished; idempotent. */
  release(): void;
  /** Resolves when the part is finished and every call it stopped waiting for has returned. */
  readonly freed: Promise<void>;
}

/**
 * The station's `maxInFlight` slots, and the watch on stage calls that outlive their budget: one
 * still running `hungAfterMs` after its budget ran out is reported hung once (log and health), and
 * its return is logged with how long it took.
 */
export class Slots {
  readonly #size: number;
  readonly #hungAfterMs: number;
  readonly #log: Logger;
  readonly #busy = new Set<Promise<void>>();
  readonly #overruns = new Set<Overrun>();

  constructor(opts: { size: number; hungAfterMs: number; log: Logger }) {
    this.#size = opts.size;
    this.#hungAfterMs = opts.hungAfterMs;
    this.#log = opts.log;
  }

  /** Slots taken, by parts or by the stage calls they left behind. */
  get busy(): number {
    return this.#busy.size;
  }

  get free(): number {
    return this.#size - this.#busy.size;
  }

  /** Takes a free slot; the caller checks `free` first. */
  take(): Slot {
    if (this.free <= 0) throw new Error('no free inspection slot');
    let holds = 1;
    let released = false;
    let resolveFreed!: () => void;
    const freed = new Promise<void>((resolve) => (resolveFreed = resolve));
    this.#busy.add(freed);
    const drop = (): void => {
      if (--holds > 0) return;
      this.#busy.delete(freed);
      resolveFreed();
    };
    return {
      freed,
      release: () => {
        if (released) return;
        released = true;
        drop();
      },
      overrun: (run, what) => {
        holds++;
        const entry = this.#watch(what);
        const done = (): void => {
          this.#returned(entry);
          drop();
        };
        run.then(done, done);
      },
    };
  }

  /** Stage calls running long past their budget, with how long. */
  hung(now = performance.now()): HungRun[] {
    return [...this.#overruns].filter((o) => o.hung).map((o) => ({ step: o.step, partId: o.partId, ms: Math.round(now - o.since) }));
  }

  /** Stage calls running past their budget, hung or not yet. */
  get overrunning(): number {
    return this.#overruns.size;
  }

  /**
   * Waits until every slot is free, at most `ms`: the steps must not be closed under a call still
   * running, but a call that never returns must not hold the station's shutdown either. Logs what
   * is left behind, and stops watching it.
   */
  async idle(ms: number): Promise<void> {
    if (this.#busy.size === 0) return;
    const all = Promise.all([...this.#busy]).then(() => undefined);
    await withTimeout(all, ms, () => new Error(`stage calls still running after ${ms} ms`)).catch(() => {
      const left = [...this.#overruns].map((o) => ({ step: o.step, partId: o.partId, ms: Math.round(performance.now() - o.since) }));
      this.#log.error({ running: left }, `${left.length} stage call(s) still running past their budget after waiting ${ms} ms: closing the station without them`);
      for (const o of this.#overruns) clearTimeout(o.timer);
      this.#overruns.clear();
    });
  }

  #watch(what: StageRun): Overrun {
    const entry: Overrun = { ...what, since: performance.now(), hung: false, timer: undefined };
    entry.timer = setTimeout(() => {
      entry.hung = true;
      const ms = Math.round(performance.now() - entry.since);
      const err = new LinegateError('LG_ERR_STAGE_HUNG', [what.step, what.plugin, what.partId, ms], { step: what.step });
      this.#log.error({ err, code: err.code, step: what.step, partId: what.partId, ms }, err.message);
    }, this.#hungAfterMs);
    // The watch alone must not keep a finished process alive.
    entry.timer.unref();
    this.#overruns.add(entry);
    return entry;
  }

  #returned(entry: Overrun): void {
    clearTimeout(entry.timer);
    if (!this.#overruns.delete(entry) || !entry.hung) return;
    const ms = Math.round(performance.now() - entry.since);
    this.#log.warn({ step: entry.step, partId: entry.partId, ms }, `step "${entry.step}" returned on part ${entry.partId}, ${ms} ms after its budget ran out: its slot is free again`);
  }
}
