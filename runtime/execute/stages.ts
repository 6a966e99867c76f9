import { performance } from 'node:perf_hooks';
import type { Frame, Logger, Part, PartPatch, StageInstance } from '../contract.js';
import { LinegateError, isLinegateError, messageOf } from '../errors.js';
import { stageChannel, type StageTiming } from '../observability/channels.js';
import { raceAbort } from './bounded.js';
import { withSignal } from './context.js';
import type { StartedStep } from './lifecycle.js';
import type { Outcome } from './outcome.js';
import type { Slot } from './slots.js';

/** Which part slot each caps type fills; a stage that promises a slot must fill it. */
const SLOT: Record<string, keyof Part | undefined> = {
  'image/raw': 'image',
  tensor: 'tensors',
  'model/output': 'modelOutput',
  findings: 'findings',
  decision: 'decision',
};

export interface StageRunArgs {
  readonly frame: Frame;
  /** performance.now() when the frame arrived: the cycle budget runs from here. */
  readonly arrivedAt: number;
  readonly stages: readonly StartedStep<StageInstance>[];
  readonly stationId: string;
  readonly cycleBudgetMs: number;
  /** The part's slot: a stage call the part stops waiting for keeps it taken until the call returns. */
  readonly slot: Slot;
  readonly log: Logger;
  /** Ends the part early besides its budget (an on-demand inspection whose client went away); the frame loop passes none. */
  readonly signal?: AbortSignal;
}

/**
 * Runs the stages in order under the part's cycle budget. When the budget runs out the part stops
 * waiting at once (its verdict must not wait for a stage that ignores its signal), and the call it
 * left behind is handed to the slot. A stage error ends the part as an error outcome.
 */
export async function runStages(a: StageRunArgs): Promise<Outcome> {
  const remaining = Math.ceil(a.cycleBudgetMs - (performance.now() - a.arrivedAt));
  const timeout = AbortSignal.timeout(Math.max(1, remaining));
  const budget = a.signal === undefined ? timeout : AbortSignal.any([timeout, a.signal]);
  const stageMs: Record<string, number> = {};
  let part: Part = { frame: a.frame };
  let current = '';
  try {
    for (const stage of a.stages) {
      current = stage.step.name;
      const t0 = performance.now();
      const cycle = new AbortController();
      const onBudget = (): void => cycle.abort(new LinegateError('LG_ERR_STAGE_TIMEOUT', [a.cycleBudgetMs, current], { step: current }));
      if (budget.aborted || remaining <= 0) onBudget();
      // A stage is not started for a part whose budget is already spent: the call could not help it.
      cycle.signal.throwIfAborted();
      budget.addEventListener('abort', onBudget, { once: true });
      try {
        const run = stage.instance.run(part, withSignal(stage.ctx, cycle.signal));
        const patch = await raceAbort(run, cycle.signal).catch((e: unknown) => {
          if (cycle.signal.aborted) a.slot.overrun(run, { step: current, plugin: stage.step.plugin.manifest.id, partId: a.frame.partId });
          throw e;
        });
        part = merge(part, patch);
      } finally {
        budget.removeEventListener('abort', onBudget);
      }
      const ms = performance.now() - t0;
      stageMs[current] = ms;
      if (stageChannel.hasSubscribers) stageChannel.publish({ station: a.stationId, step: current, sequence: a.frame.sequence, ms } satisfies StageTiming);
      checkProduced(stage, part);
    }
    return { part, stageMs };
  } catch (e) {
    const id = a.stages.find((s) => s.step.name === current)?.step.plugin.manifest.id ?? '?';
    const error = isLinegateError(e) ? e : new LinegateError('LG_ERR_STAGE_FAILED', [current, id, messageOf(e)], { step: current, cause: e });
    a.log.warn({ err: e, partId: a.frame.partId, step: current, code: error.code }, error.message);
    return { part, stageMs, error };
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
