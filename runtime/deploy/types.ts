import { z } from 'zod';
import { ModelRef } from '../result.js';

/*
 * Live model deployment as the API, the CLI and the dashboard speak it. One activation is one
 * journal line (var/deploy/<station>/journal.jsonl), so the same record answers "which model
 * judged parts between 10:02 and 10:40, and who put it there" after any restart.
 */

export const DeployAction = z.enum(['start', 'deploy', 'rollback']).describe('start: the model the station file names, at its first start; deploy: a package uploaded; rollback: back to the one before');
export type DeployAction = z.infer<typeof DeployAction>;

export const Deployment = z
  .object({
    step: z.string().min(1).describe('the model step it runs in'),
    name: z.string().min(1),
    version: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/).describe('of the weights: the identity results and calibrations name'),
    dir: z.string().min(1).describe('the package folder, relative to the station root'),
    activatedAt: z.iso.datetime(),
    by: z.string().min(1).describe('the API token name that asked for it; "station file" at a first start'),
    action: DeployAction,
    calibration: z.enum(['leave', 'keep']).optional().describe('deploys only: whether a calibration made for another model was applied anyway'),
    base: z
      .object({ dir: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/) })
      .strict()
      .optional()
      .describe('deploys and rollbacks: the model the station file named then (its folder and weights); an edited station file starts anew from its own model'),
  })
  .strict();
export type Deployment = z.infer<typeof Deployment>;

export const Agreement = z.object({
  total: z.number().int().nonnegative(),
  agree: z.number().int().nonnegative(),
  rate: z.number().min(0).max(1).nullable().describe('agree / total; null before the first compared frame'),
  byClass: z.record(z.string(), z.object({ total: z.number().int().nonnegative(), agree: z.number().int().nonnegative() })).describe("keyed by the primary's class: pass, error, or the label that failed the part"),
});
export type Agreement = z.infer<typeof Agreement>;

const RunningShadow = z.object({
    state: z.literal('running'),
    model: ModelRef,
    since: z.iso.datetime(),
    by: z.string(),
    frames: z.number().int().nonnegative().describe('frames the shadow judged'),
    skipped: z.number().int().nonnegative().describe('frames it did not judge: it was still busy (dropped first under load) or the frame had no image'),
    failed: z.number().int().nonnegative().describe('frames the shadow could not judge (its own error verdict)'),
    queued: z.number().int().nonnegative().describe('disagreements sent to the samples queue'),
    agreement: Agreement,
  });

export const ShadowStatus = z.discriminatedUnion('state', [
  z.object({ state: z.literal('off'), last: RunningShadow.optional().describe('the counts of the shadow that ran last, as it stopped') }),
  RunningShadow,
]);
export type ShadowStatus = z.infer<typeof ShadowStatus>;

export const ModelsStatus = z.object({
  station: z.string(),
  active: Deployment.nullable().describe('the model judging parts now'),
  history: z.array(Deployment).describe('activations, newest first (the journal, bounded)'),
  canRollback: z.boolean(),
  thresholds: z.record(z.string(), z.number()).describe('the score threshold per label the active model runs with'),
  calibration: z.object({ file: z.string().nullable(), status: z.enum(['applied', 'not-applied', 'none']), madeFor: ModelRef.nullable() }),
  shadow: ShadowStatus,
});
export type ModelsStatus = z.infer<typeof ModelsStatus>;

export const DeployReport = z.object({
  deployment: Deployment,
  previous: Deployment.nullable(),
  thresholds: z.record(z.string(), z.number()).describe('the threshold per label the new model runs with, from its warm-up'),
  calibration: ModelsStatus.shape.calibration,
  warmupMs: z.number().nonnegative(),
  warnings: z.array(z.string()).describe('what the quality engineer must know: e.g. a calibration made for another model was not carried over'),
});
export type DeployReport = z.infer<typeof DeployReport>;

/** How a deploy treats a calibration made for another model: leave it out (default), or apply it anyway (said in the report and logged). */
export const CalibrationChoice = z.enum(['leave', 'keep']);
export type CalibrationChoice = z.infer<typeof CalibrationChoice>;

/** A package as uploaded: file name (flat, no folders) to bytes. */
export type PackageFiles = ReadonlyMap<string, Uint8Array>;

/** What the station offers the API and the CLI for its models (runtime/station.ts implements it). */
export interface ModelControl {
  models(): ModelsStatus;
  /** Stores, checks, loads and warms up the package beside the serving model, then switches between two parts. Throws LinegateErrors (every problem found) when refused; the serving model is untouched then. */
  deployModel(files: PackageFiles, o: { readonly by: string; readonly calibration?: CalibrationChoice; readonly signal?: AbortSignal }): Promise<DeployReport>;
  /** Back to the model active before the current one. */
  rollbackModel(o: { readonly by: string; readonly signal?: AbortSignal }): Promise<DeployReport>;
  /** Runs the package beside the active model on the same frames, after each verdict is out; replaces a running shadow. */
  startShadow(files: PackageFiles, o: { readonly by: string; readonly signal?: AbortSignal }): Promise<ShadowStatus>;
  stopShadow(o: { readonly by: string }): Promise<ShadowStatus>;
}
