import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { auroc, confusionOf, detection, perClass, rates, sweep, type Prediction } from '../../runtime/replay/metrics.js';
import type { ReplayRow, TruthBox } from '../../runtime/replay/report.js';
import { chooseThreshold, parseTarget, ratesAt } from '../../runtime/replay/calibrate.js';
import { checkGate, compareReports, parseGate } from '../../runtime/replay/compare.js';
import { rateInterval } from '../../runtime/replay/intervals.js';
import { ROOT } from '../helpers/station.js';

/** Hand-computed cases as data folders: add a case by adding input.json and expected.json. */
const CASES = path.join(ROOT, 'test/cases/metrics');

interface Input {
  rows: Pick<ReplayRow, 'truth' | 'verdict' | 'score'>[];
  truths?: Record<string, TruthBox[]>;
  predictions?: Prediction[];
}

/** Every number in `expected` matched to 1e-9; keys absent there are not checked. */
function matches(actual: unknown, expected: unknown, at = ''): void {
  if (typeof expected === 'number') expect(actual, at).toBeCloseTo(expected, 9);
  else if (Array.isArray(expected)) expected.forEach((e, i) => matches((actual as unknown[])[i], e, `${at}[${i}]`));
  else if (expected !== null && typeof expected === 'object') for (const [k, v] of Object.entries(expected)) matches((actual as Record<string, unknown>)[k], v, `${at}.${k}`);
  else expect(actual, at).toEqual(expected);
}

describe('replay metrics against hand-computed cases', () => {
  for (const name of readdirSync(CASES)) {
    it(name, () => {
      const input = JSON.parse(readFileSync(path.join(CASES, name, 'input.json'), 'utf8')) as Input;
      const { about: _about, sweep: sweepRows, ...expected } = JSON.parse(readFileSync(path.join(CASES, name, 'expected.json'), 'utf8')) as Record<string, unknown>;
      void _about;
      const c = confusionOf(input.rows);
      const actual: Record<string, unknown> = { confusion: c, ...rates(c), auroc: auroc(input.rows), perClass: perClass(input.rows) };
      if (input.truths !== undefined) actual.detection = detection(new Map(Object.entries(input.truths)), input.predictions ?? []);
      matches(actual, expected);
      if (sweepRows !== undefined) {
        const s = sweep(input.rows);
        for (const row of sweepRows as { threshold: number }[]) matches(s.find((x) => Math.abs(x.threshold - row.threshold) < 1e-9), row, `sweep@${row.threshold}`);
      }
    });
  }

  it('has no AUROC, recall or escape rate on a set without defects, rather than a made-up number', () => {
    const rows = [{ truth: 'good', verdict: 'pass' as const, score: 0.1 }];
    expect(auroc(rows)).toBeNull();
    expect(rates(confusionOf(rows))).toMatchObject({ recall: null, escapeRate: null, precision: null, overkillRate: 0, accuracy: 1 });
  });
});

describe('threshold choice', () => {
  const pos = [0.6, 0.8, 0.9];
  const neg = [0.1, 0.2, 0.7];

  it('escape=0: the highest threshold that still catches every defect, halfway down to the next score', () => {
    expect(chooseThreshold(pos, neg, parseTarget('escape=0'))).toBeCloseTo(0.4, 12); // (0.2 + 0.6) / 2
  });

  it('overkill<=R: the lowest threshold that rejects at most R of the good parts, halfway up to the next score', () => {
    expect(chooseThreshold(pos, neg, parseTarget('overkill<=0'))).toBeCloseTo(0.75, 12); // clears 0.7; (0.7 + 0.8) / 2
    expect(chooseThreshold(pos, neg, parseTarget('overkill<=0.34'))).toBeCloseTo(0.4, 12); // one good part may go: clears 0.2
  });

  it('escape<=R allows that many escapes for less overkill', () => {
    expect(chooseThreshold(pos, neg, parseTarget('escape<=0.34'))).toBeCloseTo(0.75, 12); // 0.6 may escape
  });

  it('measures a rule set the way the decision applies it: rejected when any label reaches its threshold', () => {
    const images = [
      { file: 'a', truth: 'good', scores: { crack: 0.1, dent: 0.1 } },
      { file: 'b', truth: 'crack', scores: { crack: 0.9, dent: 0.0 } },
      { file: 'c', truth: 'dent', scores: { crack: 0.0, dent: 0.3 } },
    ];
    expect(ratesAt(images, { crack: 0.5, dent: 0.5 })).toEqual({ escapeRate: 0.5, overkillRate: 0, escapes: 1, overkills: 0 });
    expect(ratesAt(images, { crack: 0.5, dent: 0.05 })).toEqual({ escapeRate: 0, overkillRate: 1, escapes: 0, overkills: 1 });
  });

  it('refuses a target it cannot read, or one the set cannot measure', () => {
    for (const t of ['escape=0.1', 'recall>=1', 'overkill<=2', 'overkill']) expect(() => parseTarget(t)).toThrow(expect.objectContaining({ code: 'LG_ERR_CALIBRATE_TARGET' }));
    expect(() => chooseThreshold([], neg, parseTarget('escape=0'))).toThrow(/no defective images/);
    // a good part scoring 1 cannot be passed by any threshold: say so rather than promise what the line will not do
    expect(() => chooseThreshold(pos, [0.1, 1], parseTarget('overkill<=0'))).toThrow(/1 good image\(s\) score 1/);
  });
});

describe('comparison and the promotion gate', () => {
  const report = (verdicts: ('pass' | 'fail')[], escapeRate: number) => ({
    station: 's', dir: 'd', good: ['good'], createdAt: '', images: 2, errors: 0, confusion: { tp: 1, fp: 0, tn: 1, fn: 0 },
    accuracy: 1 - escapeRate, precision: 1, recall: 1 - escapeRate, escapeRate, overkillRate: 0, auroc: 1, perClass: {},
    latencyMs: { p50: 1, p95: 1, p99: 1 }, model: null, sweep: [], thresholds: {}, calibration: null,
    intervals: { escapeRate: rateInterval(0, 1), overkillRate: rateInterval(0, 1) },
    results: [
      { file: 'x', truth: 'dent', verdict: verdicts[0]!, score: 0.9, defects: [] },
      { file: 'y', truth: 'good', verdict: verdicts[1]!, score: 0.1, defects: [] },
    ],
  });

  it('lists the images whose verdicts differ and the metric differences (B - A)', () => {
    const c = compareReports(report(['fail', 'pass'], 0), report(['pass', 'pass'], 0.5));
    expect(c.differing).toEqual([{ file: 'x', truth: 'dent', a: { verdict: 'fail', score: 0.9 }, b: { verdict: 'pass', score: 0.9 } }]);
    expect(c.delta.escapeRate).toBeCloseTo(0.5, 12);
    expect(c.delta.accuracy).toBeCloseTo(-0.5, 12);
  });

  it('passes or fails the candidate on each condition, with the value it saw', () => {
    const c = compareReports(report(['fail', 'pass'], 0), report(['pass', 'pass'], 0.5));
    expect(checkGate(parseGate('escapeRate<=0, recall>=0.99'), c)).toEqual({
      passed: false,
      checks: [
        { condition: 'escapeRate<=0', actual: 0.5, ok: false },
        { condition: 'recall>=0.99', actual: 0.5, ok: false },
      ],
    });
    expect(checkGate(parseGate('a.escapeRate<=0,delta.escapeRate<=0.5,auroc>=1'), c).passed).toBe(true);
    expect(checkGate(parseGate('mAP50>=0.5'), c).checks[0]).toEqual({ condition: 'mAP50>=0.5', actual: null, ok: false }); // not measurable: not a pass
  });

  it('refuses a condition it cannot read, naming it', () => {
    expect(() => parseGate('escapeRate=<0')).toThrow(expect.objectContaining({ code: 'LG_ERR_REPLAY_GATE' }));
    expect(() => parseGate('speed>=3')).toThrow(/unknown metric speed/);
  });
});
