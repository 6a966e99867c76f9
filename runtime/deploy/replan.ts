import path from 'node:path';
import type { z } from 'zod';
import type { Logger, ModelDescription } from '../contract.js';
import { LinegateError } from '../errors.js';
import type { Plan, PlannedStep } from '../compile/compile.js';
import { bindCalibration, describeModels, type CalibrationUse, type PlannedModel } from '../compile/models.js';
import { verifySteps } from '../compile/verify.js';
import { calibrationPath, loadCalibration } from '../config/calibration.js';
import { calibrationSetting } from '../config/station-schema.js';
import { deepFreeze } from '../config/freeze.js';
import type { CalibrationChoice } from './types.js';

/** The station's one model step: the step a package is deployed into. */
export function modelStep(plan: Plan): PlannedStep {
  const steps = plan.stages.filter((s) => s.kind === 'model' && s.plugin.manifest.describeModel !== undefined);
  if (steps.length === 1) return steps[0]!;
  if (steps.length === 0) throw new LinegateError('LG_ERR_DEPLOY_STEP', ['it has no model step whose plugin can say which model it runs']);
  throw new LinegateError('LG_ERR_DEPLOY_STEP', [`it has ${steps.length} model steps (${steps.map((s) => s.name).join(', ')}); deploying into one of several is not supported yet`]);
}

/** How a plan and the journal name a package folder: relative to the station root (portable), absolute when it lies outside it. */
export function packageRef(root: string, dir: string): string {
  const rel = path.relative(root, dir);
  return rel.startsWith('..') || path.isAbsolute(rel) ? path.resolve(dir) : rel.split(path.sep).join('/');
}

export interface Replanned {
  readonly plan: Plan;
  readonly model: ModelDescription;
  readonly warnings: readonly string[];
}

/**
 * The station's plan with `step` running the package in `dir`: the step's config checked again by
 * its plugin, the package checked as `run` checks it (sha256, graph against model.json, every
 * problem at once), and the station's calibration bound to the new model anew. A calibration made
 * for another model is left out unless `calibration` is `keep` or the station file allows a
 * mismatch, and either way a warning says which thresholds the model will run with.
 */
export async function planForModel(plan: Plan, step: PlannedStep, dir: string, calibration: CalibrationChoice, log: Logger): Promise<Replanned> {
  const rel = packageRef(plan.root, dir);
  const parsed = (step.plugin.manifest.config as z.ZodType).safeParse({ ...(step.config as Record<string, unknown>), model: rel });
  if (!parsed.success) throw new LinegateError('LG_ERR_DEPLOY_PACKAGE', [`step "${step.name}" does not take it: ${parsed.error.issues.map((i) => i.message).join('; ')}`]);
  const replaced: PlannedStep = Object.freeze({ ...step, config: deepFreeze(parsed.data) });
  const base: Plan = { ...plan, stages: Object.freeze(plan.stages.map((s) => (s.name === step.name ? replaced : s))) };
  delete (base as { calibration?: unknown }).calibration;
  delete (base as { calibrationUse?: unknown }).calibrationUse;
  const models = Object.freeze(await describeModels(base));
  const model = models.find((m) => m.step === step.name)?.model;
  const { plan: next, warnings } = await withCalibration(plan, base, models, model, calibration);
  // The package checked as run checks it, every problem at once (describeModel stops at the first), with the calibration it will run with.
  await verifySteps(next, [replaced], log);
  if (model === undefined) throw new LinegateError('LG_ERR_DEPLOY_PACKAGE', [`step "${step.name}" cannot read the package in ${rel}`]);
  return { plan: next, model, warnings };
}

async function withCalibration(
  plan: Plan,
  base: Plan,
  models: readonly PlannedModel[],
  model: ModelDescription | undefined,
  calibration: CalibrationChoice,
): Promise<{ plan: Plan; warnings: string[] }> {
  const setting = calibrationSetting(plan.settings);
  const loaded = await loadCalibration(plan.root, plan.settings.id, setting.file);
  const warnings: string[] = [];
  if (loaded === undefined || model === undefined) return { plan: Object.freeze({ ...base, models }), warnings };
  const allow = setting.allowModelMismatch || calibration === 'keep';
  const use: CalibrationUse = bindCalibration(loaded, calibrationPath(plan.root, plan.settings.id, setting.file), models, { allowMismatch: allow, skipMismatch: !allow });
  const file = path.relative(plan.root, use.file);
  const madeFor = `${use.madeFor?.name}@${use.madeFor?.version}`;
  if (use.status === 'skipped') {
    warnings.push(`calibration ${file} was made for ${madeFor}, not for ${model.name}@${model.version}: it is not applied, and the new model runs at its rules' and its own thresholds (see thresholds); calibrate it for this model, or deploy with the calibration kept`);
  } else if (use.status === 'mismatch') {
    warnings.push(`calibration ${file} was made for ${madeFor} and is applied to ${model.name}@${model.version} anyway (${calibration === 'keep' ? 'asked for by the deploy' : 'calibration.allowModelMismatch'}): its thresholds were not chosen for this model`);
  }
  const calibrationUse = deepFreeze(use);
  return { plan: Object.freeze(use.status === 'skipped' ? { ...base, models, calibrationUse } : { ...base, models, calibration: loaded, calibrationUse }), warnings };
}
