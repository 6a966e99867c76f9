import { describe, expect, it } from 'vitest';
import { betaQuantile, clopperPearson, incompleteBeta, logGamma, rateInterval } from '../../runtime/replay/intervals.js';
import { COCO_IOUS, apStats, averagePrecision, detectionCounts, type Prediction } from '../../runtime/replay/metrics.js';
import type { TruthBox } from '../../runtime/replay/report.js';

describe('exact (Clopper-Pearson) intervals', () => {
  it('puts 0 escapes of 226 at [0, 1.62 %]: the upper end is 1 - 0.025^(1/226)', () => {
    const [lo, hi] = clopperPearson(0, 226)!;
    expect(lo).toBe(0);
    expect(hi).toBeCloseTo(1 - 0.025 ** (1 / 226), 10);
    expect(hi).toBeCloseTo(0.01619, 5);
  });

  it('matches published values: 5 of 100 is [0.01643, 0.11283], 50 of 100 is [0.39832, 0.60168]', () => {
    const [a, b] = clopperPearson(5, 100)!;
    expect(a).toBeCloseTo(0.016431879, 7);
    expect(b).toBeCloseTo(0.112834911, 7);
    const [c, d] = clopperPearson(50, 100)!;
    expect(c).toBeCloseTo(0.398321, 5);
    expect(d).toBeCloseTo(0.601679, 5);
    expect(c + d).toBeCloseTo(1, 10); // symmetric at k = n / 2
  });

  it('closes at the ends: k = n has upper 1 and lower 0.025^(1/n); n = 0 has no interval', () => {
    const [lo, hi] = clopperPearson(10, 10)!;
    expect(hi).toBe(1);
    expect(lo).toBeCloseTo(0.025 ** (1 / 10), 10);
    expect(clopperPearson(0, 0)).toBeNull();
    expect(() => clopperPearson(3, 2)).toThrow(RangeError);
  });

  it('rests on a correct incomplete beta function and its inverse', () => {
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
    // I_0.3(2, 5) = 1 - sum_{j<2} C(6, j) 0.3^j 0.7^(6-j) = 0.579825
    expect(incompleteBeta(0.3, 2, 5)).toBeCloseTo(0.579825, 12);
    expect(incompleteBeta(0.5, 7, 7)).toBeCloseTo(0.5, 12);
    for (const [p, a, b] of [[0.025, 1, 226], [0.975, 6, 95], [0.5, 0.5, 0.5], [0.999, 40, 2]] as const) expect(incompleteBeta(betaQuantile(p, a, b), a, b)).toBeCloseTo(p, 10);
  });

  it('gives the bootstrap interval beside it, which collapses at zero misses where the exact one does not', () => {
    const r = rateInterval(0, 226);
    expect(r).toMatchObject({ k: 0, n: 226, rate: 0, bootstrap95: [0, 0] });
    expect(r.exact95![1]).toBeGreaterThan(0.016);
    const some = rateInterval(20, 200, { seed: 3 });
    expect(some.bootstrap95![0]).toBeLessThan(0.1);
    expect(some.bootstrap95![1]).toBeGreaterThan(0.1);
    expect(rateInterval(20, 200, { seed: 3 })).toEqual(some); // seeded: the same every run
    expect(rateInterval(0, 0)).toEqual({ k: 0, n: 0, rate: null, exact95: null, bootstrap95: null });
  });
});

describe('average precision (Pascal VOC all-point interpolation)', () => {
  it('is the area under the precision envelope, hand-computed', () => {
    // hits by falling score: hit, miss, hit, miss, hit; 4 truths.
    // recall 0.25 0.25 0.5 0.5 0.75; precision 1 0.5 0.667 0.5 0.6; envelope 1 0.667 0.667 0.6 0.6
    // AP = 0.25 * 1 + 0.25 * 2/3 + 0.25 * 0.6 = 17/30 (COCO's 101-point sampling would give 0.5710)
    expect(averagePrecision([true, false, true, false, true], 4)).toBeCloseTo(17 / 30, 12);
    expect(averagePrecision([true, true], 2)).toBe(1);
    expect(averagePrecision([false, false], 2)).toBe(0);
  });

  it('averages AP over IoU 0.50:0.05:0.95 for AP50-95', () => {
    expect(COCO_IOUS).toEqual([0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]);
    const box = (label: string, h: number): TruthBox => ({ label, x: 0, y: 0, w: 10, h });
    const truths = new Map<string, TruthBox[]>([['a.jpg', [box('dent', 10), box('pit', 10)]]]);
    const pred = (label: string, h: number, score: number): Prediction => ({ file: 'a.jpg', label, score, box: { x: 0, y: 0, w: 10, h } });
    // dent's box overlaps its truth at IoU 0.8 (a hit at 7 of the 10 IoUs), pit's at 0.6 (3 of 10).
    const s = apStats(truths, [pred('dent', 8, 0.9), pred('pit', 6, 0.8)]);
    expect(s.perClass.dent).toEqual({ ap50: 1, ap50_95: expect.closeTo(0.7, 12), truths: 1, predictions: 1 });
    expect(s.perClass.pit!.ap50_95).toBeCloseTo(0.3, 12);
    expect(s.mAP50).toBe(1);
    expect(s.mAP50_95).toBeCloseTo(0.5, 12);
  });

  it('counts boxes at IoU 0.5 for precision and recall at the operating threshold', () => {
    const truths = new Map<string, TruthBox[]>([['a.jpg', [{ label: 'dent', x: 0, y: 0, w: 10, h: 10 }, { label: 'dent', x: 50, y: 50, w: 10, h: 10 }]]]);
    const c = detectionCounts(truths, [
      { file: 'a.jpg', label: 'dent', score: 0.9, box: { x: 0, y: 0, w: 10, h: 10 } },
      { file: 'a.jpg', label: 'dent', score: 0.8, box: { x: 20, y: 20, w: 10, h: 10 } },
    ]);
    expect(c).toMatchObject({ tp: 1, fp: 1, fn: 1, precision: 0.5, recall: 0.5 });
    expect(c.perClass.dent).toEqual({ tp: 1, fp: 1, fn: 1, precision: 0.5, recall: 0.5 });
  });
});
