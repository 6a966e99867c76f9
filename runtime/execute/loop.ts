import { performance } from 'node:perf_hooks';
import type { Frame, FrameInput, Logger, Part, PartPatch, SourceInstance, StageInstance } from '../contract.js';
import { LinegateError, isLinegateError, messageOf } from '../errors.js';
import type { InspectionResult } from '../result.js';
import type { Plan } from '../compile/compile.js';
import type { StationSettings } from '../config/station-schema.js';
import { partChannel, stageChannel, type PartTiming, type StageTiming } from '../observability/channels.js';
import { Histogram } from '../observability/histogram.js';
import { raceAbort, withTimeout } from './bounded.js';
import { withSignal } from './context.js';
import type { StartedStep } from './lifecycle.js';
import { buildResult, type Outcome } from './outcome.js';
import type { SinkDispatcher } from './sinks.js';

export interface RunSummary {
  readonly frames: number;
  readonly pass: number;
  readonly fail: number;
  readonly error: number;
  readonly dropped: number;
  readonly fps: number;
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number };
}

export interface LoopHooks {
  onResult(result: InspectionResult): void;
  onDrop(result: InspectionResult): void;
}

interface Pending {
  readonly frame: Frame;
  /** performance.now() when the frame arrived: the cycle budget runs from here. */
  readonly arrivedAt: number;
}

/** Which part slot each caps type fills; a stage that promises a slot must fill it. */
const SLOT: Record<string, keyof Part | undefined> = {
  'image/raw': 'image',
  tensor: 'tensors',
  'model/output': 'outputs',
  findings: 'findings',
  decision: 'decision',
};

/**
 * The frame loop: pulls frames from the source into a bounded queue, inspects
 * at most `maxInFlight` parts at once, and applies the drop policy when the
 * source outruns the pipeline. Every part, inspected or not, ends as exactly
 * one result handed to the sinks: a part that cannot be inspected (stage error,
 * spent budget, dropped, shutdown) becomes an `error` verdict, so a PLC rejects
 * it rather than never hearing of it.
 */
export class FrameLoop {
  readonly #plan: Plan;
  readonly #settings: StationSettings;
  readonly #source: StartedStep<SourceInstance>;
  readonly #stages: readonly StartedStep<StageInstance>[];
  readonly #sinks: SinkDispatcher;
  readonly #log: Logger;
  readonly #hooks: LoopHooks;
  readonly #stop = new AbortController();
  readonly #queue: Pending[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  /** Results of dropped frames on their way to the sinks: drained, but they hold no inspection slot. */
  readonly #reports = new Set<Promise<void>>();
  readonly #latency = new Histogram();
  readonly #counts = { frames: 0, pass: 0, fail: 0, error: 0, dropped: 0 };
  #firstAt: number | undefined;
  #sequence = 0;
  /** Wakes the pump when a slot frees up under the `block` policy. */
  #slotFreed: (() => void) | undefined;

  constructor(args: {
    plan: Plan;
    source: StartedStep<SourceInstance>;
    stages: readonly StartedStep<StageInstance>[];
    sinks: SinkDispatcher;
    log: Logger;
    hooks: LoopHooks;
  }) {
    this.#plan = args.plan;
    this.#settings = args.plan.settings;
    this.#source = args.source;
    this.#stages = args.stages;
    this.#sinks = args.sinks;
    this.#log = args.log;
    this.#hooks = args.hooks;
  }

  /** Stops taking frames; what has arrived is still inspected and delivered. */
  stop(): void {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort(new LinegateError('LG_ERR_FRAME_SHUTDOWN'));
    this.#slotFreed?.();
  }

  get stopping(): boolean {
    return this.#stop.signal.aborted;
  }

  /** Runs until the source ends, `maxFrames` frames have arrived, or `stop()`; then drains. */
  async run(opts: { maxFrames?: number } = {}): Promise<RunSummary> {
    const started = performance.now();
    try {
      await this.#pump(opts.maxFrames);
    } finally {
      // Drain: everything that arrived gets its result, in flight or still queued.
      while (this.#queue.length > 0 || this.#inFlight.size > 0 || this.#reports.size > 0) {
        this.#schedule();
        await Promise.race([...this.#inFlight, ...this.#reports]);
      }
    }
    const elapsedS = (performance.now() - (this.#firstAt ?? started)) / 1000;
    const round = (v: number): number => Math.round(v * 100) / 100;
    return {
      ...this.#counts,
      fps: elapsedS > 0 ? round(this.#counts.frames / elapsedS) : 0,
      latencyMs: { p50: round(this.#latency.quantile(0.5)), p95: round(this.#latency.quantile(0.95)), p99: round(this.#latency.quantile(0.99)) },
    };
  }

  async #pump(maxFrames: number | undefined): Promise<void> {
    const { maxInFlight, queueSize, dropPolicy } = this.#settings;
    const source = this.#source;
    const iterator = source.instance.frames(withSignal(source.ctx, AbortSignal.any([source.ctx.signal, this.#stop.signal])))[Symbol.asyncIterator]();
    try {
      while (!this.stopping && (maxFrames === undefined || this.#counts.frames < maxFrames)) {
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

  #accept(input: FrameInput): void {
    const arrivedAt = performance.now();
    this.#firstAt ??= arrivedAt;
    const sequence = this.#sequence++;
    const frame: Frame = {
      ...input,
      partId: input.partId ?? `${this.#settings.id}-${sequence}`,
      sequence,
      capturedAt: input.capturedAt ?? new Date(),
    };
    this.#counts.frames++;
    const pending: Pending = { frame, arrivedAt };
    const { maxInFlight, queueSize, dropPolicy } = this.#settings;
    if (this.#inFlight.size < maxInFlight || this.#queue.length < queueSize || dropPolicy === 'block') {
      this.#queue.push(pending);
    } else if (dropPolicy === 'drop-oldest') {
      this.#drop(this.#queue.shift()!);
      this.#queue.push(pending);
    } else {
      this.#drop(pending);
    }
    this.#schedule();
  }

  #schedule(): void {
    while (this.#inFlight.size < this.#settings.maxInFlight && this.#queue.length > 0) {
      const pending = this.#queue.shift()!;
      const task: Promise<void> = this.#inspect(pending)
        .catch((err: unknown) => this.#log.error({ err, partId: pending.frame.partId }, 'part could not be finished'))
        .finally(() => {
          this.#inFlight.delete(task);
          this.#schedule(); // a queued frame takes the freed slot now, not when the next frame arrives
          this.#slotFreed?.();
        });
      this.#inFlight.add(task);
    }
  }

  async #waitForRoom(capacity: number): Promise<void> {
    while (!this.stopping && this.#inFlight.size + this.#queue.length >= capacity) {
      await new Promise<void>((resolve) => (this.#slotFreed = resolve));
      this.#slotFreed = undefined;
    }
  }

  /** A dropped frame is never silent: counted, logged, and still a reject for the critical sinks. */
  #drop(pending: Pending): void {
    this.#counts.dropped++;
    const { maxInFlight, queueSize, dropPolicy } = this.#settings;
    const err = new LinegateError('LG_ERR_FRAME_DROPPED', [maxInFlight + queueSize, dropPolicy]);
    this.#log.warn({ partId: pending.frame.partId, sequence: pending.frame.sequence, dropped: this.#counts.dropped }, err.message);
    const task: Promise<void> = this.#finish(pending, { error: err, stageMs: {} }, true)
      .catch((e: unknown) => this.#log.error({ err: e, partId: pending.frame.partId }, 'dropped part could not be reported'))
      .finally(() => this.#reports.delete(task));
    this.#reports.add(task);
  }

  async #inspect(pending: Pending): Promise<void> {
    let outcome: Outcome;
    try {
      outcome = await this.#runStages(pending);
    } catch (e) {
      // A fault in the loop itself still ends as a reject, never as a part nobody hears of.
      this.#log.error({ err: e, partId: pending.frame.partId }, 'frame loop fault');
      outcome = { stageMs: {}, error: new LinegateError('LG_ERR_STAGE_FAILED', ['(loop)', 'runtime', messageOf(e)], { cause: e }) };
    }
    await this.#finish(pending, outcome, false);
  }

  /** Runs the stages in order under the part's cycle budget; a stage error ends the part as an error outcome. */
  async #runStages(pending: Pending): Promise<Outcome> {
    const budgetMs = this.#settings.cycleBudgetMs;
    const remaining = Math.ceil(budgetMs - (performance.now() - pending.arrivedAt));
    const budget = AbortSignal.timeout(Math.max(1, remaining));
    const stageMs: Record<string, number> = {};
    let part: Part = { frame: pending.frame };
    let current = '';
    try {
      for (const stage of this.#stages) {
        current = stage.step.name;
        const t0 = performance.now();
        const cycle = new AbortController();
        const onBudget = (): void => cycle.abort(new LinegateError('LG_ERR_STAGE_TIMEOUT', [budgetMs, current], { step: current }));
        if (budget.aborted || remaining <= 0) onBudget();
        else budget.addEventListener('abort', onBudget, { once: true });
        try {
          const patch = await raceAbort(stage.instance.run(part, withSignal(stage.ctx, cycle.signal)), cycle.signal);
          part = merge(part, patch);
        } finally {
          budget.removeEventListener('abort', onBudget);
        }
        const ms = performance.now() - t0;
        stageMs[current] = ms;
        if (stageChannel.hasSubscribers) stageChannel.publish({ station: this.#settings.id, step: current, sequence: pending.frame.sequence, ms } satisfies StageTiming);
        checkProduced(stage, part);
      }
      return { part, stageMs };
    } catch (e) {
      const error = isLinegateError(e) ? e : new LinegateError('LG_ERR_STAGE_FAILED', [current, this.#stageId(current), messageOf(e)], { step: current, cause: e });
      this.#log.warn({ err: e, partId: pending.frame.partId, step: current, code: error.code }, error.message);
      return { part, stageMs, error };
    }
  }

  #stageId(name: string): string {
    return this.#stages.find((s) => s.step.name === name)?.step.plugin.manifest.id ?? '?';
  }

  async #finish(pending: Pending, outcome: Outcome, dropped: boolean): Promise<void> {
    const result = buildResult(this.#plan, pending.frame, outcome, performance.now() - pending.arrivedAt);
    const final = await this.#sinks.deliver(result, pending.frame.image);
    const ms = performance.now() - pending.arrivedAt;
    if (dropped) {
      this.#hooks.onDrop(final);
    } else {
      this.#counts[final.verdict]++;
      this.#latency.record(ms);
      this.#hooks.onResult(final);
    }
    if (partChannel.hasSubscribers) partChannel.publish({ station: this.#settings.id, sequence: pending.frame.sequence, verdict: final.verdict, ms } satisfies PartTiming);
    if (pending.frame.settle !== undefined) {
      await withTimeout(pending.frame.settle(final), this.#settings.sinkTimeoutMs, () => new Error(`settling part ${final.partId} timed out`)).catch((err: unknown) =>
        this.#log.error({ err, partId: final.partId }, 'the source could not settle the part'),
      );
    }
  }
}

function merge(part: Part, patch: PartPatch): Part {
  if (patch === undefined || patch === null) return part;
  const meta = patch.meta === undefined ? part.meta : { ...part.meta, ...patch.meta };
  return meta === undefined ? { ...part, ...patch } : { ...part, ...patch, meta };
}

function checkProduced(stage: StartedStep<StageInstance>, part: Part): void {
  const caps = stage.step.plugin.manifest.produces ?? [];
  const slots = caps.map((c) => SLOT[c.type]).filter((s): s is keyof Part => s !== undefined);
  if (slots.length > 0 && !slots.some((slot) => part[slot] !== undefined)) {
    throw new LinegateError('LG_ERR_STAGE_OUTPUT', [stage.step.name, stage.step.plugin.manifest.id, slots.join(' or ')], { step: stage.step.name });
  }
}
