import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Calibration } from '../config/calibration.js';
import { LinegateError, messageOf } from '../errors.js';
import { labelScore, type InspectionResult } from '../result.js';
import { clopperPearson, seededRandom } from './intervals.js';
import { GOOD_NAMES, goodBy, percentile, type IsGood } from './metrics.js';

/*
 * Thresholds per label from a labelled replay: zero (or at most R) escapes at
 * the lowest overkill, or the fewest escapes within an overkill budget. The
 * choice is bootstrapped for confidence intervals, and written with its
 * provenance to the station's calibration file, which the station then uses.
 */

export type Target = { readonly kind: 'escape' | 'overkill'; readonly max: number; readonly text: string };

export function parseTarget(text: string): Target {
  const m = /^(escape|overkill)\s*(=|<=)\s*([0-9.]+)$/.exec(text.trim());
  const max = m === null ? NaN : Number(m[3]);
  if (m === null || !Number.isFinite(max) || max < 0 || max > 1 || (m[2] === '=' && max !== 0)) {
    throw new LinegateError('LG_ERR_CALIBRATE_TARGET', [text, 'write escape=0, escape<=R or overkill<=R with R a rate from 0 to 1']);
  }
  return { kind: m[1] as Target['kind'], max, text: text.trim() };
}

/** Reject when score >= threshold: the threshold that meets the target on these scores (see the comments for which one). */
export function chooseThreshold(positives: readonly number[], negatives: readonly number[], target: Target): number {
  const all = [...positives, ...negatives];
  if (target.kind === 'escape') {
    if (positives.length === 0) throw new LinegateError('LG_ERR_CALIBRATE_TARGET', [target.text, 'no defective images to measure escapes on']);
    // The highest threshold with at most k escapes is the (k+1)-th lowest defect score; the midpoint
    // down to the next score below gives the same result on this set and a margin for the next part.
    const k = Math.floor(target.max * positives.length + 1e-9);
    const edge = [...positives].sort((a, b) => a - b)[k]!;
    const below = all.filter((s) => s < edge);
    return below.length === 0 ? edge / 2 : (Math.max(...below) + edge) / 2;
  }
  if (negatives.length === 0) throw new LinegateError('LG_ERR_CALIBRATE_TARGET', [target.text, 'no good images to measure overkill on']);
  // At most k good parts rejected: the threshold must clear the (k+1)-th highest good score; the midpoint
  // up to the next score above keeps every defect that scores above that good part.
  const k = Math.floor(target.max * negatives.length + 1e-9);
  if (k >= negatives.length) return 0;
  const edge = [...negatives].sort((a, b) => b - a)[k]!;
  // Rules reject at score >= threshold and scores stop at 1: a good part at 1 cannot be passed.
  if (edge >= 1) throw new LinegateError('LG_ERR_CALIBRATE_TARGET', [target.text, `${k + 1} good image(s) score 1 on this label: no threshold passes them`]);
  const above = all.filter((s) => s > edge);
  return above.length === 0 ? (edge + 1) / 2 : (edge + Math.min(...above)) / 2;
}

export interface ScoredImage {
  readonly file: string;
  /** `good` for a good part (whatever its folder is called), else its class. */
  readonly truth: string;
  /** Per label: the score the decision judged that label by. */
  readonly scores: Readonly<Record<string, number>>;
}

export function scoredImages(results: readonly InspectionResult[], truthOf: ReadonlyMap<string, string>, labels: readonly string[], isGood: IsGood = goodBy(GOOD_NAMES)): ScoredImage[] {
  const truth = (file: string): string => {
    const t = truthOf.get(file) ?? 'good';
    return isGood(t) ? 'good' : t;
  };
  return results
    .filter((r) => r.verdict !== 'error')
    .map((r) => ({
      file: r.partId,
      truth: truth(r.partId),
      scores: Object.fromEntries(labels.map((l) => [l, labelScore(r, l)])),
    }));
}

/** A label's positives: the defective images of its own class, or all defective images when no class is named after a label. */
function split(images: readonly ScoredImage[], labels: readonly string[], label: string): { pos: number[]; neg: number[] } {
  const named = images.some((i) => labels.includes(i.truth));
  const pos = images.filter((i) => i.truth !== 'good' && (!named || i.truth === label)).map((i) => i.scores[label]!);
  const neg = images.filter((i) => i.truth === 'good').map((i) => i.scores[label]!);
  return { pos, neg };
}

export function ratesAt(images: readonly ScoredImage[], thresholds: Readonly<Record<string, number>>): { escapeRate: number | null; overkillRate: number | null; escapes: number; overkills: number } {
  const rejected = (i: ScoredImage): boolean => Object.entries(thresholds).some(([l, t]) => (i.scores[l] ?? 0) >= t);
  const pos = images.filter((i) => i.truth !== 'good');
  const neg = images.filter((i) => i.truth === 'good');
  const escapes = pos.filter((i) => !rejected(i)).length;
  const overkills = neg.filter(rejected).length;
  return { escapeRate: pos.length === 0 ? null : escapes / pos.length, overkillRate: neg.length === 0 ? null : overkills / neg.length, escapes, overkills };
}

export interface CalibrationResult {
  readonly target: string;
  readonly images: number;
  readonly thresholds: Readonly<Record<string, { value: number; ci95: [number, number]; positives: number; negatives: number }>>;
  readonly escapeRate: number | null;
  readonly overkillRate: number | null;
  /** Percentile bootstrap of the rates at the chosen thresholds: [0, 0] when the set has no miss, however small it is. */
  readonly ci95: { readonly escapeRate: [number, number] | null; readonly overkillRate: [number, number] | null };
  /** Exact (Clopper-Pearson) 95 % intervals of the same rates, with their counts: the ones to quote (0 of 226 escapes: [0, 1.62 %]). */
  readonly exact95: {
    readonly escapeRate: { readonly k: number; readonly n: number; readonly interval: [number, number] } | null;
    readonly overkillRate: { readonly k: number; readonly n: number; readonly interval: [number, number] } | null;
  };
  /** With no escape among n defective images, the true escape rate is still below 3/n at 95 % (the rule of three). */
  readonly escapeUpper95: number | null;
  readonly bootstrap: number;
}

const ci = (xs: number[]): [number, number] => [percentile(xs, 2.5), percentile(xs, 97.5)];

export function calibrate(images: readonly ScoredImage[], labels: readonly string[], target: Target, o: { bootstrap?: number; seed?: number } = {}): CalibrationResult {
  if (labels.length === 0) throw new LinegateError('LG_ERR_CALIBRATE_TARGET', [target.text, "the station's decision step reports no per-label thresholds to calibrate"]);
  const choose = (set: readonly ScoredImage[]): Record<string, number> =>
    Object.fromEntries(
      labels.map((l) => {
        const { pos, neg } = split(set, labels, l);
        return [l, chooseThreshold(pos, neg, target)];
      }),
    );
  const chosen = choose(images);
  const B = o.bootstrap ?? 1000;
  const next = seededRandom(o.seed ?? 1);
  const boot: Record<string, number>[] = [];
  const escapes: number[] = [];
  const overkills: number[] = [];
  for (let b = 0; b < B; b++) {
    const sample = images.map(() => images[Math.floor(next() * images.length)]!);
    try {
      boot.push(choose(sample));
    } catch {
      // A resample without a defective (or good) image cannot choose; it still measures the chosen thresholds.
    }
    const at = ratesAt(sample, chosen);
    if (at.escapeRate !== null) escapes.push(at.escapeRate);
    if (at.overkillRate !== null) overkills.push(at.overkillRate);
  }
  const thresholds = Object.fromEntries(
    labels.map((l) => {
      const { pos, neg } = split(images, labels, l);
      const values = boot.map((t) => t[l]!);
      return [l, { value: chosen[l]!, ci95: values.length === 0 ? ([chosen[l]!, chosen[l]!] as [number, number]) : ci(values), positives: pos.length, negatives: neg.length }];
    }),
  );
  const at = ratesAt(images, chosen);
  const defective = images.filter((i) => i.truth !== 'good').length;
  const goodParts = images.length - defective;
  const exact = (k: number, n: number) => (n === 0 ? null : { k, n, interval: clopperPearson(k, n)! });
  return {
    target: target.text,
    images: images.length,
    thresholds,
    escapeRate: at.escapeRate,
    overkillRate: at.overkillRate,
    ci95: { escapeRate: escapes.length === 0 ? null : ci(escapes), overkillRate: overkills.length === 0 ? null : ci(overkills) },
    exact95: { escapeRate: exact(at.escapes, defective), overkillRate: exact(at.overkills, goodParts) },
    escapeUpper95: defective === 0 ? null : at.escapes === 0 ? Math.min(1, 3 / defective) : null,
    bootstrap: B,
  };
}

/**
 * Writes the thresholds into the station's calibration file, keeping what
 * else it holds (ROI, scale), with the provenance of this calibration; the
 * write is atomic (temporary file, then rename).
 */
export async function writeCalibration(file: string, station: string, result: CalibrationResult, provenance: Record<string, unknown>): Promise<Record<string, unknown>> {
  let existing: Record<string, unknown> = {};
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text !== undefined) {
    try {
      existing = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new LinegateError('LG_ERR_CALIBRATION_INVALID', [file, `not JSON, not overwritten: ${messageOf(e)}`]);
    }
    if (existing.station !== undefined && existing.station !== station) throw new LinegateError('LG_ERR_CALIBRATION_INVALID', [file, `it is for station "${String(existing.station)}", not "${station}"`]);
  }
  // Thresholds kept from a calibration of another model would judge this one by that one's scores.
  const before = (existing.provenance as { model?: { sha256?: unknown } | null } | undefined)?.model?.sha256;
  const now = (provenance.model as { sha256?: unknown } | null | undefined)?.sha256;
  const keep = before === undefined || now === undefined || before === now ? (existing.thresholds as Record<string, number> | undefined) : {};
  const thresholds = { ...keep, ...Object.fromEntries(Object.entries(result.thresholds).map(([l, t]) => [l, round6(t.value)])) };
  const next = {
    ...existing,
    station,
    thresholds,
    provenance: { date: new Date().toISOString(), method: `linegate calibrate --target ${result.target}`, ...provenance, result: { ...result } },
  };
  // The file must load as the station will load it.
  const parsed = Calibration.safeParse(next);
  if (!parsed.success) throw new LinegateError('LG_ERR_CALIBRATION_INVALID', [file, parsed.error.issues[0]?.message ?? 'invalid']);
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  await writeFile(tmp, `${JSON.stringify(next, null, 2)}\n`, { flush: true });
  await rename(tmp, file);
  return next;
}

const round6 = (v: number): number => Math.round(v * 1e6) / 1e6;
