import { performance } from 'node:perf_hooks';
import type { Frame, Logger } from '../contract.js';
import { LinegateError } from '../errors.js';
import type { InspectionResult } from '../result.js';
import type { Plan } from '../compile/compile.js';
import { RecentCount, Throttle } from '../observability/rate.js';
import { withTimeout } from './bounded.js';
import { buildResult } from './outcome.js';
import type { Settler } from './settle.js';
import type { SinkDispatcher } from './sinks.js';

/** How busy the loop was when a frame was dropped, for the log line. */
export interface LoopLoad {
  readonly inFlight: number;
  readonly queued: number;
}

/** What the drop reporter tells the loop's health. */
export interface DropHealth {
  /** Frames dropped since the start. */
  readonly total: number;
  /** Drops per second over the last window. */
  readonly rate: number;
  /** A frame was dropped within the last window. */
  readonly dropping: boolean;
  /** Drop reports waiting for the critical sinks, and those the critical sinks never got (their queue was full). */
  readonly queued: number;
  readonly skipped: number;
}

/** A drop report waits with the frame's identity and its settle, never with its image. */
interface Report {
  readonly result: InspectionResult;
  readonly frame: Omit<Frame, 'image'>;
}

/**
 * Where dropped frames go. Every drop is counted and still reaches the sinks as an `error` result
 * (904), so a PLC rejects the part rather than never hearing of it; but under overload drops come
 * as fast as the source, so they take ONE bounded path: at most one critical write for drops at a
 * time, a FIFO of at most `sinkQueueSize` waiting, and no image held. Past that FIFO a drop still
 * goes to the background sinks and the `drop` event, but not to the critical sinks (recorded as
 * skipped, LG_ERR_SINK_OVERFLOW). The log gets one line per window with counts, not one per drop.
 */
export class DropReporter {
  readonly #plan: Plan;
  readonly #sinks: SinkDispatcher;
  readonly #settler: Settler;
  readonly #log: Logger;
  readonly #onDrop: (result: InspectionResult) => void;
  readonly #fifoSize: number;
  readonly #windowMs: number;
  readonly #fifo: Report[] = [];
  readonly #recent: RecentCount;
  readonly #line: Throttle;
  /** Drops that skipped the FIFO, on their way to the background sinks: drained at the end. */
  readonly #settling = new Set<Promise<void>>();
  #sending: Promise<void> | undefined;
  /** Past the drain's deadline the critical sinks get no more drop reports. */
  #closed = false;
  #lastDropAt = Number.NEGATIVE_INFINITY;
  #total = 0;
  #skipped = 0;
  #sinceLine = { dropped: 0, skipped: 0, at: performance.now() };
  #load: LoopLoad = { inFlight: 0, queued: 0 };
  #first = true;

  constructor(opts: { plan: Plan; sinks: SinkDispatcher; settler: Settler; log: Logger; onDrop: (result: InspectionResult) => void }) {
    this.#plan = opts.plan;
    this.#sinks = opts.sinks;
    this.#settler = opts.settler;
    this.#log = opts.log;
    this.#onDrop = opts.onDrop;
    this.#fifoSize = opts.plan.settings.sinkQueueSize;
    this.#windowMs = opts.plan.settings.healthWindowMs;
    this.#recent = new RecentCount(this.#windowMs);
    this.#line = new Throttle(this.#windowMs, () => this.#writeLine());
  }

  get total(): number {
    return this.#total;
  }

  /** Counts a dropped frame and sends its error result on its way; never waits. */
  drop(frame: Frame, arrivedAt: number, load: LoopLoad): void {
    const now = performance.now();
    this.#total++;
    this.#sinceLine.dropped++;
    this.#recent.add(now);
    this.#lastDropAt = now;
    this.#load = load;
    const { maxInFlight, queueSize, dropPolicy } = this.#plan.settings;
    const error = new LinegateError('LG_ERR_FRAME_DROPPED', [maxInFlight + queueSize, dropPolicy]);
    const result = buildResult(this.#plan, frame, { error, stageMs: {} }, now - arrivedAt);
    const { image: _image, ...identity } = frame;
    const report: Report = { result, frame: identity };
    if (!this.#closed && this.#fifo.length < this.#fifoSize) {
      this.#fifo.push(report);
      this.#sending ??= this.#send();
    } else {
      this.#skip(report);
    }
    this.#line.note();
  }

  health(now = performance.now()): DropHealth {
    return {
      total: this.#total,
      rate: Math.round(this.#recent.perSecond(now) * 10) / 10,
      dropping: now - this.#lastDropAt < this.#windowMs,
      queued: this.#fifo.length,
      skipped: this.#skipped,
    };
  }

  /**
   * Delivers what waits, at most `ms`; past that the rest goes to the background sinks only (a
   * verdict for a part dropped long ago helps no PLC, and the shutdown must stay bounded). Then
   * writes the last summary line.
   */
  async drain(ms: number): Promise<void> {
    if (this.#sending !== undefined) {
      await withTimeout(this.#sending, ms, () => new Error('drop reports not delivered in time')).catch(() => {
        this.#closed = true;
        for (const report of this.#fifo.splice(0)) this.#skip(report);
      });
      await this.#sending; // the write in progress is bounded by the sink time-out
    }
    while (this.#settling.size > 0) await Promise.all([...this.#settling]);
    this.#line.flush();
  }

  /** The one path to the critical sinks for drops: one report at a time, in arrival order. */
  async #send(): Promise<void> {
    for (let report = this.#fifo.shift(); report !== undefined; report = this.#fifo.shift()) {
      try {
        const { final, durable } = await this.#sinks.dispatch(report.result);
        this.#onDrop(final);
        this.#settler.settle(report.frame, final, durable);
      } catch (err) {
        this.#log.error({ err, partId: report.result.partId }, 'dropped part could not be reported');
      }
    }
    this.#sending = undefined;
  }

  #skip(report: Report): void {
    this.#skipped++;
    this.#sinceLine.skipped++;
    const task = (async () => {
      try {
        const { final, durable } = await this.#sinks.dispatch(report.result, undefined, { skipCritical: true });
        this.#onDrop(final);
        this.#settler.settle(report.frame, final, durable);
      } catch (err) {
        this.#log.error({ err, partId: report.result.partId }, 'dropped part could not be reported');
      }
    })().finally(() => this.#settling.delete(task));
    this.#settling.add(task);
  }

  #writeLine(): void {
    const now = performance.now();
    const { dropped, skipped, at } = this.#sinceLine;
    this.#sinceLine = { dropped: 0, skipped: 0, at: now };
    if (dropped === 0 && skipped === 0) return;
    const { dropPolicy } = this.#plan.settings;
    const seconds = this.#first ? 0 : Math.round((now - at) / 100) / 10;
    const fields = { code: 'LG_ERR_FRAME_DROPPED', dropped, seconds, total: this.#total, policy: dropPolicy, ...this.#load, skippedCritical: skipped };
    const load = `drop policy ${dropPolicy}; ${this.#load.inFlight} in flight, ${this.#load.queued} queued`;
    const skippedNote = skipped === 0 ? '' : `; ${skipped} of them reached no critical sink (the queue of ${this.#fifoSize} drop reports was full)`;
    if (this.#first) {
      this.#first = false;
      this.#log.warn(fields, `dropping frames: the pipeline is slower than the source (${load})${skippedNote}; further drops are logged at most every ${this.#windowMs / 1000} s`);
    } else {
      this.#log.warn(fields, `dropped ${dropped} frame(s) in the last ${seconds} s (total ${this.#total}; ${load})${skippedNote}`);
    }
  }
}
