import type { Logger } from '../contract.js';
import { LinegateError, LinegateErrors, isLinegateError, messageOf } from '../errors.js';
import { withTimeout } from '../execute/bounded.js';
import { makeContext } from '../execute/context.js';
import type { Plan, PlannedStep } from './compile.js';

/**
 * Runs every step's `verify` (what its config names: model packages, ...) without starting
 * anything, each bounded by the init time-out, and throws every problem found at once: the check
 * `linegate check` prints and `run` makes before the first step starts.
 */
export function verifyPlan(plan: Plan, log: Logger, signal: AbortSignal = new AbortController().signal): Promise<void> {
  return verifySteps(plan, [plan.source, ...plan.stages, ...plan.sinks], log, signal);
}

/** The same for some of the plan's steps (a deploy checks the model step it replaces). */
export async function verifySteps(plan: Plan, steps: readonly PlannedStep[], log: Logger, signal: AbortSignal = new AbortController().signal): Promise<void> {
  const errors: LinegateError[] = [];
  for (const step of steps) {
    const verify = step.plugin.manifest.verify;
    if (verify === undefined) continue;
    const ctx = makeContext(plan, step, log, signal);
    const timeoutMs = plan.settings.initTimeoutMs;
    let found: readonly Error[];
    try {
      found = await withTimeout(verify(step.config as never, ctx), timeoutMs, () => new Error(`its check did not end within ${timeoutMs} ms`));
    } catch (e) {
      found = [e instanceof Error ? e : new Error(String(e))];
    }
    errors.push(...found.map((e) => coded(e, step)));
  }
  if (errors.length > 0) throw new LinegateErrors(errors);
}

/** A plugin's coded error as it is; anything else coded here, naming the step. */
function coded(e: Error, step: PlannedStep): LinegateError {
  if (isLinegateError(e)) return e;
  return new LinegateError('LG_ERR_STATION_RESOURCE', [step.name, step.plugin.manifest.id, messageOf(e)], { step: step.name, path: `${step.path}.config`, cause: e });
}
