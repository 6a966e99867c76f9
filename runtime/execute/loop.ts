import { performance } from 'node:perf_hooks';
import type { Frame, FrameInput, Health, Logger, SourceInstance } from '../contract.js';
import { LinegateError, messageOf } from '../errors.js';
import type { InspectionResult } from '../result.js';
import type { Plan } from '../compile/compile.js';
import { hungAfterMs, settleQueueSize, type StationSettings } from '../config/station-schema.js';
import { partChannel, type PartTiming } from '../observability/channels.js';
import { raceAbort } from './bounded.js';
import { withSignal } from './context.js';
import { DropReporter } from './drops.js';
import type { StartedStep } from './lifecycle.js';
import { buildResult, type Outcome } from './outcome.js';
import { Settler } from './settle.js';
import type { SinkDispatcher } from './sinks.js';
import { Slots, type Slot } from './slots.js';
import type { Pipeline } from './pipeline.js';
import { runStages } from './stages.js';
import { Tally, type RunSummary } from './tally.js';
import { Wake } from './wake.js';

export type { RunSummary } from './tally.js';

export interface LoopHooks {
  onResult(result: InspectionResult): void;
  onDrop(result: InspectionResult): void;
  /** The loop takes no more frames (the source ended, `maxFrames`, `stop()`); called once, before the drain. */
  onStopping(): void;
  /** An inspected part's verdict is with the critical sinks (the PLC has it): what may run after it (a shadow model) gets the frame. */
  onJudged?(result: InspectionResult, frame: Frame): void;
}

interface Pending {
  readonly frame: Frame;
  /** performance.now() when the frame arrived: the cycle budget runs from here. */
  readonly arrivedAt: number;
  /** Ends the part when its budget runs out while it still waits for a slot. */
  expiry: NodeJS.Timeout | undefined;
}

/**
 * The frame loop: pulls frames from the source into a bounded queue, inspects
 * at most `maxInFlight` parts at once, and applies the drop policy when the
 * source outruns the pipeline. Every part, inspected or not, ends as exactly
 * one result handed to the sinks: a part that cannot be inspected (stage error,
 * spent budget, dropped, shutdown) becomes an `error` verdict, so a PLC rejects
 * it rather than never hearing of it.
 */
export class FrameLoop {
  readonly #settings: StationSettings;
  readonly #source: StartedStep<SourceInstance>;
  /** The stages and plan current when a part starts: a model deploy swaps it between two parts. */
  readonly #pipeline: () => Pipeline;
  readonly #sinks: SinkDispatcher;
  readonly #log: Logger;
  readonly #hooks: LoopHooks;
  readonly #stop = new AbortController();
  readonly #queue: Pending[] = [];
  /** Parts on their way to a result (inspected, or expired in the queue): the drain waits for each. */
  readonly #parts = new Set<Promise<void>>();
  readonly #slots: Slots;
  readonly #drops: DropReporter;
  /** Parts waiting for the durable sinks before their source may settle them. */
  readonly #settler: Settler;
  readonly #wake = new Wake();
  readonly #tally = new Tally();
  #sequence = 0;
  #phase: 'inspecting' | 'draining' | 'ended' = 'inspecting';

  constructor(args: {
    plan: Plan;
    source: StartedStep<SourceInstance>;
    pipeline: () => Pipeline;
    sinks: SinkDispatcher;
    log: Logger;
    hooks: LoopHooks;
  }) {
    this.#settings = args.plan.settings;
    this.#source = args.source;
    this.#pipeline = args.pipeline;
    this.#sinks = args.sinks;
    this.#log = args.log;
    this.#hooks = args.hooks;
    this.#slots = new Slots({ size: this.#settings.maxInFlight, hungAfterMs: hungAfterMs(this.#settings), log: args.log });
    this.#settler = new Settler({ log: args.log, settleMs: this.#settings.sinkTimeoutMs, onChange: () => this.#wake.notify() });
    this.#drops = new DropReporter({ plan: args.plan, sinks: args.sinks, settler: this.#settler, log: args.log, onDrop: (r) => this.#tell('drop', () => this.#hooks.onDrop(r)) });
  }

  /** Stops taking frames; what has arrived is still inspected and delivered. */
  stop(): void {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort(new LinegateError('LG_ERR_FRAME_SHUTDOWN'));
    this.#wake.notify();
  }

  get stopping(): boolean {
    return this.#stop.signal.aborted;
  }

  /** Frames wait or every slot is taken: work that can wait (a shadow model) steps aside. */
  get saturated(): boolean {
    return this.#queue.length > 0 || this.#slots.free === 0;
  }

  /** Runs until the source ends, `maxFrames` frames have arrived, or `stop()`; then drains. */
  async run(opts: { maxFrames?: number } = {}): Promise<RunSummary> {
    const started = performance.now();
    try {
      await this.#pump(opts.maxFrames);
    } finally {
      this.#phase = 'draining';
      this.#tell('stopping', () => this.#hooks.onStopping());
      await this.#drain();
      this.#phase = 'ended';
    }
    return this.#tally.summary(this.#drops.total, started);
  }

  /** Degraded while frames are dropped (within the last window), a stage call is hung, or parts are kept unsettled; the counts in `data`. */
  health(): Health {
    const now = performance.now();
    const drops = this.#drops.health(now);
    const hung = this.#slots.hung(now);
    const settle = this.#settler.health();
    const problems: string[] = [];
    if (drops.dropping) problems.push(`dropping ${drops.rate} frames/s (${drops.total} in all, drop policy ${this.#settings.dropPolicy})`);
    for (const h of hung) problems.push(`step "${h.step}" hung on part ${h.partId}, ${h.ms} ms past its budget`);
    if (settle.keeping) problems.push(`a durable sink is not taking results: parts are left with the source for its next run (${settle.kept} so far, LG_ERR_SINK_NOT_DURABLE)`);
    return {
      status: problems.length > 0 ? 'degraded' : 'ok',
      detail: problems.length > 0 ? problems.join('; ') : this.#phase,
      data: {
        arrived: this.#tally.frames,
        inFlight: this.#slots.busy,
        queued: this.#queue.length,
        dropped: drops.total,
        dropRate: drops.rate,
        dropReports: { queued: drops.queued, skipped: drops.skipped },
        hung,
        overrunning: this.#slots.overrunning,
        settle,
      },
    };
  }

  async #pump(maxFrames: number | undefined): Promise<void> {
    const { maxInFlight, queueSize, dropPolicy } = this.#settings;
    const source = this.#source;
    const iterator = source.instance.frames(withSignal(source.ctx, AbortSignal.any([source.ctx.signal, this.#stop.signal])))[Symbol.asyncIterator]();
    try {
      while (!this.stopping && (maxFrames === undefined || this.#tally.frames < maxFrames)) {
        if (dropPolicy === 'block') await this.#waitForRoom(maxInFlight + queueSize);
        if (this.stopping) break;
        const next = await raceAbort(iterator.next(), this.#stop.signal).catch((e: unknown) => {
          if (this.stopping) return { done: true as const, value: undefined };
          throw new LinegateError('LG_ERR_SOURCE_FAILED', [source.step.name, messageOf(e)], { step: source.step.name, cause: e });
        });
        if (next.done === true) break;
        this.#accept(next.value);
      }
    } finally {
      // Lets the source release its file handles or camera now, not at close.
      void Promise.resolve(iterator.return?.()).catch((err: unknown) => this.#log.warn({ err }, 'source iterator did not end cleanly'));
    }
  }

  /** Everything that arrived gets its result (inspected, expired in the queue, or dropped) before the run ends. */
  async #drain(): Promise<void> {
    while (this.#queue.length > 0 || this.#parts.size > 0) {
      this.#schedule();
      await this.#wake.next();
    }
    const { closeTimeoutMs } = this.#settings;
    await this.#drops.drain(closeTimeoutMs);
    // Parts whose result a durable sink has not confirmed yet; past the bound their source keeps them.
    await this.#settler.idle(closeTimeoutMs);
    // Steps are closed next: give the stage calls still running past their budget a bounded chance to return.
    await this.#slots.idle(closeTimeoutMs);
  }

  #accept(input: FrameInput): void {
    const arrivedAt = performance.now();
    this.#tally.arrived(arrivedAt);
    const sequence = this.#sequence++;
    const frame: Frame = {
      ...input,
      partId: input.partId ?? `${this.#settings.id}-${sequence}`,
      sequence,
      capturedAt: input.capturedAt ?? new Date(),
    };
    const pending: Pending = { frame, arrivedAt, expiry: undefined };
    const { queueSize, dropPolicy } = this.#settings;
    if (dropPolicy === 'block' || this.#slots.free > 0 || this.#queue.length < queueSize) {
      this.#enqueue(pending);
    } else if (dropPolicy === 'drop-oldest' && this.#queue.length > 0) {
      this.#drop(this.#queue.shift()!);
      this.#enqueue(pending);
    } else {
      // drop-newest, or drop-oldest with nothing queued to drop (a queue of 0): the newcomer goes.
      this.#drop(pending);
    }
    this.#schedule();
  }

  #enqueue(pending: Pending): void {
    this.#queue.push(pending);
    if (this.#queue.length <= this.#slots.free) return; // #schedule takes it at once
    // Behind a stage call that outlives its budget a frame could wait for ever; its PLC must not.
    const left = this.#settings.cycleBudgetMs - (performance.now() - pending.arrivedAt);
    pending.expiry = setTimeout(() => this.#expire(pending), Math.max(0, left));
    pending.expiry.unref();
  }

  #expire(pending: Pending): void {
    const at = this.#queue.indexOf(pending);
    if (at < 0) return;
    this.#queue.splice(at, 1);
    const error = new LinegateError('LG_ERR_STAGE_TIMEOUT', [this.#settings.cycleBudgetMs, '(queue)']);
    this.#log.warn({ partId: pending.frame.partId, code: error.code, inFlight: this.#slots.busy }, `${error.message}: no slot came free in time`);
    this.#track(this.#finish(pending, { error, stageMs: {} }, this.#pipeline().plan).then(() => undefined), pending);
  }

  #schedule(): void {
    while (this.#slots.free > 0 && this.#queue.length > 0) {
      const pending = this.#queue.shift()!;
      clearTimeout(pending.expiry);
      const slot = this.#slots.take();
      this.#track(
        this.#inspect(pending, slot).then(
          (after) => {
            slot.release();
            // Work that follows a verdict (a shadow model) starts once the slot is free: it sees the line as the next part will.
            after?.();
          },
          (e: unknown) => {
            slot.release();
            throw e;
          },
        ),
        pending,
      );
      // The slot may outlive the part (a stage call still running): the next part starts only once it is free.
      void slot.freed.then(() => {
        this.#schedule();
        this.#wake.notify();
      });
    }
  }

  #track(task: Promise<void>, pending: Pending): void {
    const tracked: Promise<void> = task
      .catch((err: unknown) => this.#log.error({ err, partId: pending.frame.partId }, 'part could not be finished'))
      .finally(() => {
        this.#parts.delete(tracked);
        this.#wake.notify();
      });
    this.#parts.add(tracked);
  }

  /** Back-pressure for a source that can wait: room in the queue, and not too many parts waiting for the durable sinks. */
  async #waitForRoom(capacity: number): Promise<void> {
    const settling = settleQueueSize(this.#settings);
    while (!this.stopping && (this.#slots.busy + this.#queue.length >= capacity || this.#settler.waiting >= settling)) await this.#wake.next();
  }

  #drop(pending: Pending): void {
    clearTimeout(pending.expiry);
    this.#drops.drop(pending.frame, pending.arrivedAt, { inFlight: this.#slots.busy, queued: this.#queue.length });
  }

  /** Resolves with what is to run once the part's slot is free (the judged hook), if anything. */
  async #inspect(pending: Pending, slot: Slot): Promise<(() => void) | undefined> {
    let outcome: Outcome;
    // The part keeps the pipeline it started on to its result, whatever a deploy does meanwhile.
    const pipeline = this.#pipeline();
    const release = pipeline.acquire();
    try {
      outcome = await runStages({
        frame: pending.frame,
        arrivedAt: pending.arrivedAt,
        stages: pipeline.stages,
        stationId: this.#settings.id,
        cycleBudgetMs: this.#settings.cycleBudgetMs,
        slot,
        log: this.#log,
      });
    } catch (e) {
      // A fault in the loop itself still ends as a reject, never as a part nobody hears of.
      this.#log.error({ err: e, partId: pending.frame.partId }, 'frame loop fault');
      outcome = { stageMs: {}, error: new LinegateError('LG_ERR_STAGE_FAILED', ['(loop)', 'runtime', messageOf(e)], { cause: e }) };
    } finally {
      release();
    }
    return this.#finish(pending, outcome, pipeline.plan);
  }

  async #finish(pending: Pending, outcome: Outcome, plan: Plan): Promise<(() => void) | undefined> {
    const result = buildResult(plan, pending.frame, outcome, performance.now() - pending.arrivedAt);
    const { final, durable } = await this.#sinks.dispatch(result, pending.frame.image);
    const ms = performance.now() - pending.arrivedAt;
    this.#tally.finished(final, ms);
    this.#tell('result', () => this.#hooks.onResult(final));
    if (partChannel.hasSubscribers) partChannel.publish({ station: this.#settings.id, sequence: pending.frame.sequence, verdict: final.verdict, ms } satisfies PartTiming);
    // The slot is free once this returns; the settle waits for the durable sinks without holding the image.
    const { image: _image, ...identity } = pending.frame;
    this.#settler.settle(identity, final, durable);
    const judged = this.#hooks.onJudged;
    if (judged === undefined || final.verdict === 'error') return undefined;
    return () => this.#tell('judged', () => judged(final, pending.frame));
  }

  /** Whatever a hook does, the part goes on (its settle, the slot, the drain). */
  #tell(event: string, hook: () => void): void {
    try {
      hook();
    } catch (err) {
      this.#log.error({ err, event }, `the ${event} hook failed; the frame loop goes on`);
    }
  }
}
