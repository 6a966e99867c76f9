import { LinegateError } from '../errors.js';
import type { ReplayReport } from './report.js';

/*
 * Two models on the same images: the metric differences, the images whose
 * verdicts differ, and a promotion gate over the candidate's numbers.
 */

const METRICS = ['accuracy', 'precision', 'recall', 'escapeRate', 'overkillRate', 'auroc', 'errors', 'mAP50', 'mAP50_95', 'latencyP50', 'latencyP99'] as const;
type Metric = (typeof METRICS)[number];

export function metricsOf(r: ReplayReport): Record<Metric, number | null> {
  return {
    accuracy: r.accuracy,
    precision: r.precision,
    recall: r.recall,
    escapeRate: r.escapeRate,
    overkillRate: r.overkillRate,
    auroc: r.auroc,
    errors: r.errors,
    // Over all detections when replay could collect them (see DetectionStats.mAP50Over).
    mAP50: r.detection?.mAP50 ?? null,
    mAP50_95: r.detection?.allDetections?.mAP50_95 ?? r.detection?.operatingThreshold.mAP50_95 ?? null,
    latencyP50: r.latencyMs.p50,
    latencyP99: r.latencyMs.p99,
  };
}

/** Which thresholds a side was judged at: its own calibration, a calibration that names no model, or the model's own (rule or package) thresholds. */
export interface JudgedAt {
  readonly kind: 'calibration' | 'unbound-calibration' | 'own-thresholds';
  /** The calibration file that judged, or that was left out because it was made for another model. */
  readonly calibration: string | null;
  readonly text: string;
}

export interface Side {
  readonly model: ReplayReport['model'];
  readonly metrics: Record<Metric, number | null>;
  readonly confusion: ReplayReport['confusion'];
  readonly judgedAt: JudgedAt;
  readonly thresholds: ReplayReport['thresholds'];
}

export interface Comparison {
  readonly a: Side;
  readonly b: Side;
  /** b - a, per metric (null where either is). */
  readonly delta: Record<Metric, number | null>;
  readonly images: number;
  /** Images whose verdict differs between the two models. */
  readonly differing: readonly { readonly file: string; readonly truth: string; readonly a: { verdict: string; score: number }; readonly b: { verdict: string; score: number } }[];
}

export function compareReports(a: ReplayReport, b: ReplayReport): Comparison {
  const ma = metricsOf(a);
  const mb = metricsOf(b);
  const delta = Object.fromEntries(METRICS.map((m) => [m, ma[m] === null || mb[m] === null ? null : mb[m]! - ma[m]!])) as Record<Metric, number | null>;
  const bByFile = new Map(b.results.map((r) => [r.file, r]));
  const differing = a.results.flatMap((ra) => {
    const rb = bByFile.get(ra.file);
    if (rb === undefined || rb.verdict === ra.verdict) return [];
    return [{ file: ra.file, truth: ra.truth, a: { verdict: ra.verdict, score: ra.score }, b: { verdict: rb.verdict, score: rb.score } }];
  });
  const side = (r: ReplayReport, m: Record<Metric, number | null>): Side => ({ model: r.model, metrics: m, confusion: r.confusion, judgedAt: judgedAt(r), thresholds: r.thresholds });
  return { a: side(a, ma), b: side(b, mb), delta, images: a.images, differing };
}

/** Says which thresholds judged a replay, from its report (replayed with calibration: 'own-model'). */
export function judgedAt(r: ReplayReport): JudgedAt {
  const cal = r.calibration;
  const at = Object.entries(r.thresholds ?? {})
    .map(([l, t]) => `${l} ${t.value} (${t.from})`)
    .join(', ');
  const values = at === '' ? '' : `: ${at}`;
  const model = r.model === null ? 'the model' : `${r.model.name}@${r.model.version}`;
  if (cal === null) return { kind: 'own-thresholds', calibration: null, text: `${model} judged at its own thresholds (no calibration)${values}` };
  const madeFor = cal.madeFor === null ? '' : `${cal.madeFor.name}@${cal.madeFor.version}`;
  if (cal.status === 'skipped') {
    return { kind: 'own-thresholds', calibration: cal.file, text: `${model} judged at its own thresholds: the calibration ${cal.file} was made for ${madeFor}${values}` };
  }
  if (cal.status === 'bound' || cal.status === 'mismatch') return { kind: 'calibration', calibration: cal.file, text: `${model} judged at its calibration ${cal.file}${values}` };
  return { kind: 'unbound-calibration', calibration: cal.file, text: `${model} judged at the calibration ${cal.file}, which names no model (calibrate again to bind it)${values}` };
}

export interface Condition {
  readonly text: string;
  /** `b` (the candidate, the default), `a`, or `delta` (b - a). */
  readonly of: 'a' | 'b' | 'delta';
  readonly metric: Metric;
  readonly op: '<=' | '>=' | '<' | '>' | '==';
  readonly value: number;
}

/** "escapeRate<=0,recall>=0.99,delta.accuracy>=0": conditions on the candidate (`b`) unless prefixed `a.` or `delta.`. */
export function parseGate(text: string): Condition[] {
  return text
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '')
    .map((c) => {
      const m = /^(?:(a|b|delta)\.)?([A-Za-z0-9_]+)\s*(<=|>=|==|<|>)\s*(-?[0-9.]+(?:e-?\d+)?)$/.exec(c);
      if (m === null) throw new LinegateError('LG_ERR_REPLAY_GATE', [c, 'write <metric><op><number>, e.g. escapeRate<=0 or delta.recall>=0']);
      const metric = m[2] as Metric;
      if (!METRICS.includes(metric)) throw new LinegateError('LG_ERR_REPLAY_GATE', [c, `unknown metric ${metric}; known: ${METRICS.join(', ')}`]);
      return { text: c, of: (m[1] ?? 'b') as Condition['of'], metric, op: m[3] as Condition['op'], value: Number(m[4]) };
    });
}

/** Each condition with its value and verdict; a metric that is null (not measurable on this set) fails its condition. */
export function checkGate(conditions: readonly Condition[], c: Comparison): { readonly passed: boolean; readonly checks: readonly { condition: string; actual: number | null; ok: boolean }[] } {
  const checks = conditions.map((cond) => {
    const actual = cond.of === 'delta' ? c.delta[cond.metric] : c[cond.of].metrics[cond.metric];
    const ok = actual !== null && compare(actual, cond.op, cond.value);
    return { condition: cond.text, actual, ok };
  });
  return { passed: checks.every((x) => x.ok), checks };
}

function compare(x: number, op: Condition['op'], v: number): boolean {
  // Rates are sums of fractions: 1e-9 keeps 0.1 + 0.2 from failing "<= 0.3".
  const eps = 1e-9;
  switch (op) {
    case '<=':
      return x <= v + eps;
    case '>=':
      return x >= v - eps;
    case '<':
      return x < v;
    case '>':
      return x > v;
    case '==':
      return Math.abs(x - v) <= eps;
  }
}
