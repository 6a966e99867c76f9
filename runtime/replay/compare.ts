import { LinegateError } from '../errors.js';
import type { ReplayReport } from './report.js';

/*
 * Two models on the same images: the metric differences, the images whose
 * verdicts differ, and a promotion gate over the candidate's numbers.
 */

const METRICS = ['accuracy', 'precision', 'recall', 'escapeRate', 'overkillRate', 'auroc', 'errors', 'mAP50', 'latencyP50', 'latencyP99'] as const;
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
    mAP50: r.detection?.mAP50 ?? null,
    latencyP50: r.latencyMs.p50,
    latencyP99: r.latencyMs.p99,
  };
}

export interface Comparison {
  readonly a: { readonly model: ReplayReport['model']; readonly metrics: Record<Metric, number | null>; readonly confusion: ReplayReport['confusion'] };
  readonly b: { readonly model: ReplayReport['model']; readonly metrics: Record<Metric, number | null>; readonly confusion: ReplayReport['confusion'] };
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
  return { a: { model: a.model, metrics: ma, confusion: a.confusion }, b: { model: b.model, metrics: mb, confusion: b.confusion }, delta, images: a.images, differing };
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
      const m = /^(?:(a|b|delta)\.)?([A-Za-z0-9]+)\s*(<=|>=|==|<|>)\s*(-?[0-9.]+(?:e-?\d+)?)$/.exec(c);
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
