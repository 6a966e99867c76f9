import type { Plan } from '../compile/compile.js';
import type { InspectionResult } from '../result.js';
import type { ReportCalibration, ReportModel, ThresholdSource } from './report.js';

/*
 * What a replay judged with, for its report: the model package (with its
 * preprocessing), the calibration (with its provenance), and each label's
 * threshold with where it came from. A report that leaves these out cannot be
 * checked against the line it claims to describe.
 */

/** The model that judged: the results' model, described by the step that ran it. */
export function reportModel(plan: Plan, results: readonly InspectionResult[]): ReportModel | null {
  const ran = results.find((r) => r.model !== null)?.model ?? null;
  const described = plan.models?.find((m) => ran === null || m.model.sha256 === ran.sha256)?.model;
  if (ran === null && described === undefined) return null;
  const id = ran ?? described!;
  return {
    name: id.name,
    version: id.version,
    sha256: id.sha256,
    ...(described?.task === undefined ? {} : { task: described.task }),
    ...(described?.preprocessing === undefined ? {} : { preprocessing: described.preprocessing }),
    ...(described?.decode === undefined ? {} : { decode: described.decode }),
  };
}

export function reportCalibration(plan: Plan): ReportCalibration | null {
  const use = plan.calibrationUse;
  if (use === undefined) return null;
  // A skipped calibration is not on the plan; its provenance is not what judged, so it is not repeated here.
  return { file: use.file, status: use.status, madeFor: use.madeFor, provenance: plan.calibration?.provenance ?? {} };
}

interface RuleData {
  readonly label?: unknown;
  readonly minScore?: unknown;
}

/**
 * Each label's threshold as the results carry it, and its source. The decision step records the
 * values but not their source, so the source is the first of core/threshold-rules@1's order
 * (calibration > rule > model > 0.5) that gives exactly the value used; `decision` when none does
 * (another decision plugin, or a rule set that mixes sources on one label).
 */
export function reportThresholds(plan: Plan, results: readonly InspectionResult[]): Record<string, { value: number; from: ThresholdSource }> {
  const used = new Map<string, number>();
  for (const r of results) for (const [label, v] of Object.entries(r.thresholds ?? {})) if (!used.has(label)) used.set(label, v);
  const decision = plan.stages.find((s) => s.kind === 'decision');
  const rules: readonly RuleData[] =
    decision?.plugin.manifest.id === 'core/threshold-rules@1' ? ((decision.config as { rules?: readonly RuleData[] }).rules ?? []) : [];
  const model = plan.models?.[0]?.model.thresholds;
  const out: Record<string, { value: number; from: ThresholdSource }> = {};
  for (const [label, value] of [...used].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const ruleValues = rules.filter((r) => r.label === label && typeof r.minScore === 'number').map((r) => r.minScore as number);
    const candidates: [ThresholdSource, number | undefined][] = [
      ['calibration', plan.calibration?.thresholds[label]],
      ['rule', ruleValues.length === 0 ? undefined : Math.min(...ruleValues)],
      ['model', model === undefined ? undefined : (model.perLabel[label] ?? model.default)],
      ['default', 0.5],
    ];
    out[label] = { value, from: candidates.find(([, v]) => v === value)?.[0] ?? 'decision' };
  }
  return out;
}
