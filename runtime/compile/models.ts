import path from 'node:path';
import type { Calibration, Logger, ModelDescription } from '../contract.js';
import { LinegateError } from '../errors.js';
import { makeContext } from '../execute/context.js';
import type { ModelRef } from '../result.js';
import type { Plan, PlannedStep } from './compile.js';

/** A model step and the model its config names. */
export interface PlannedModel {
  readonly step: string;
  readonly model: ModelDescription;
}

/** How the station's calibration relates to the model it runs; decided once, at compile time. */
export interface CalibrationUse {
  /** Absolute path of the calibration file. */
  readonly file: string;
  /** The model its thresholds were chosen for (`provenance.model`); null when the file does not say. */
  readonly madeFor: ModelRef | null;
  /**
   * bound: made for the model the station runs; unbound: the file names no model; unchecked: no
   * step can say which model it runs; mismatch: made for another model, applied because the
   * station allows it; skipped: made for another model, left out (compare judges each model at
   * its own thresholds).
   */
  readonly status: 'bound' | 'unbound' | 'unchecked' | 'mismatch' | 'skipped';
}

/** What `describeModel` needs of a logger: nothing is worth logging before the station starts. */
const quiet: Logger = {
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  fatal: () => undefined,
  child: () => quiet,
};

/**
 * The model each model step names, from its plugin's `describeModel`. A package that cannot be read
 * is left out here: `verify` lists why, with every other problem, instead of failing on the first.
 */
export async function describeModels(plan: Plan): Promise<PlannedModel[]> {
  const out: PlannedModel[] = [];
  for (const step of plan.stages) {
    const describe = step.plugin.manifest.describeModel;
    if (step.kind !== 'model' || describe === undefined) continue;
    try {
      out.push({ step: step.name, model: await describe(step.config as never, makeContext(plan, step as PlannedStep, quiet, new AbortController().signal)) });
    } catch {
      // verify reports it
    }
  }
  return out;
}

const refOf = (m: ModelRef | ModelDescription): string => `${m.name}@${m.version}`;

/**
 * Binds the calibration to the station's model: thresholds chosen for one model mean nothing for
 * another (a promised zero-escape cut let 2.6 % escapes through on a retrained model). Throws
 * LG_ERR_CALIBRATION_MODEL for a calibration made for another model unless `allowMismatch`;
 * `skipMismatch` leaves such a calibration out instead (compare).
 */
export function bindCalibration(
  calibration: Calibration,
  file: string,
  models: readonly PlannedModel[],
  o: { readonly allowMismatch: boolean; readonly skipMismatch?: boolean },
): CalibrationUse {
  const madeFor = modelOf(calibration);
  if (madeFor === null) return { file, madeFor, status: 'unbound' };
  if (models.length === 0) return { file, madeFor, status: 'unchecked' };
  if (models.some((m) => m.model.sha256 === madeFor.sha256)) return { file, madeFor, status: 'bound' };
  if (o.skipMismatch === true) return { file, madeFor, status: 'skipped' };
  if (o.allowMismatch) return { file, madeFor, status: 'mismatch' };
  const runs = models[0]!;
  throw new LinegateError('LG_ERR_CALIBRATION_MODEL', [file, refOf(madeFor), madeFor.sha256, runs.step, refOf(runs.model), runs.model.sha256], {
    step: runs.step,
    path: 'station.calibration',
  });
}

/** `provenance.model` as the Calibration schema checked it. */
function modelOf(calibration: Calibration): ModelRef | null {
  const m = calibration.provenance.model as ModelRef | null | undefined;
  return m ?? null;
}

/** The calibration as the result record names it: its file (relative to the station root when inside it), its model, and whether it was made for another. */
export function resultCalibration(use: CalibrationUse, root: string): { file: string; model: ModelRef | null; mismatch: boolean } {
  const rel = path.relative(root, use.file);
  const file = rel.startsWith('..') || path.isAbsolute(rel) ? use.file : rel.split(path.sep).join('/');
  return { file, model: use.madeFor, mismatch: use.status === 'mismatch' };
}
