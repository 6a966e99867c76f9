import type { APStats, ClassAP, ClassStats, OperatingCounts, ReplayRow, SweepRow, TruthBox } from './report.js';

/*
 * The numbers of a replay, each a small pure function so that a test can pin
 * it to a hand-computed case. Positive = defective part; predicted positive =
 * rejected, which includes `error` (the PLC rejects a part linegate could not
 * inspect).
 */

export interface Confusion {
  readonly tp: number;
  readonly fp: number;
  readonly tn: number;
  readonly fn: number;
}

/** Folder names that hold good parts unless told more (`--good`); matched without regard to case. */
export const GOOD_NAMES: readonly string[] = ['good', 'ok', 'pass'];

/** Whether a truth (a class folder's name) is a good part. */
export type IsGood = (truth: string) => boolean;

export function goodBy(names: readonly string[]): IsGood {
  const set = new Set(names.map((n) => n.toLowerCase()));
  return (truth) => set.has(truth.toLowerCase());
}

const DEFAULT_GOOD = goodBy(GOOD_NAMES);
const rejected = (r: Pick<ReplayRow, 'verdict'>): boolean => r.verdict !== 'pass';
const ratio = (a: number, b: number): number | null => (b === 0 ? null : a / b);

export function confusionOf(rows: readonly Pick<ReplayRow, 'truth' | 'verdict'>[], isGood: IsGood = DEFAULT_GOOD): Confusion {
  const defective = (r: Pick<ReplayRow, 'truth'>): boolean => !isGood(r.truth);
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (const r of rows) {
    if (defective(r)) rejected(r) ? tp++ : fn++;
    else rejected(r) ? fp++ : tn++;
  }
  return { tp, fp, tn, fn };
}

export function rates(c: Confusion): { accuracy: number | null; precision: number | null; recall: number | null; escapeRate: number | null; overkillRate: number | null } {
  return {
    accuracy: ratio(c.tp + c.tn, c.tp + c.fp + c.tn + c.fn),
    precision: ratio(c.tp, c.tp + c.fp),
    recall: ratio(c.tp, c.tp + c.fn),
    escapeRate: ratio(c.fn, c.tp + c.fn),
    overkillRate: ratio(c.fp, c.fp + c.tn),
  };
}

/**
 * The probability that a random defective part scores above a random good one
 * (ties count half): the Mann-Whitney form of the area under the ROC curve.
 * Parts that could not be inspected are left out: their score is no model output.
 */
export function auroc(all: readonly (Pick<ReplayRow, 'truth' | 'score'> & { verdict?: ReplayRow['verdict'] })[], isGood: IsGood = DEFAULT_GOOD): number | null {
  const defective = (r: Pick<ReplayRow, 'truth'>): boolean => !isGood(r.truth);
  const rows = all.filter((r) => r.verdict !== 'error');
  const pos = rows.filter(defective).length;
  const neg = rows.length - pos;
  if (pos === 0 || neg === 0) return null;
  const sorted = [...rows].sort((a, b) => a.score - b.score);
  let rankSum = 0;
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j < sorted.length && sorted[j]!.score === sorted[i]!.score) j++;
    const midRank = (i + 1 + j) / 2; // ties share the mean of their ranks
    for (let k = i; k < j; k++) if (defective(sorted[k]!)) rankSum += midRank;
    i = j;
  }
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/**
 * What the line would do with "reject when score >= t" at each distinct score
 * (plus a threshold above them all). An `error` stays rejected whatever t is.
 */
export function sweep(rows: readonly Pick<ReplayRow, 'truth' | 'score' | 'verdict'>[], isGood: IsGood = DEFAULT_GOOD): SweepRow[] {
  const defective = (r: Pick<ReplayRow, 'truth'>): boolean => !isGood(r.truth);
  const scored = rows.filter((r) => r.verdict !== 'error').sort((a, b) => a.score - b.score);
  const errors = rows.filter((r) => r.verdict === 'error');
  const errPos = errors.filter(defective).length;
  const errNeg = errors.length - errPos;
  const pos = scored.filter(defective).length + errPos;
  const neg = scored.length + errors.length - pos;
  const thresholds = [...new Set(scored.map((r) => r.score))];
  const top = thresholds.length === 0 ? 1 : Math.min(1, thresholds.at(-1)! + 1e-6);
  if (thresholds.at(-1) !== top) thresholds.push(top);
  // One pass from the top: rows at or above each threshold are the rejected ones (errors always are).
  const out: SweepRow[] = [];
  let i = scored.length;
  let tpAbove = 0;
  let fpAbove = 0;
  for (let k = thresholds.length - 1; k >= 0; k--) {
    const t = thresholds[k]!;
    while (i > 0 && scored[i - 1]!.score >= t) {
      i--;
      if (defective(scored[i]!)) tpAbove++;
      else fpAbove++;
    }
    const c = { tp: tpAbove + errPos, fp: fpAbove + errNeg, tn: neg - fpAbove - errNeg, fn: pos - tpAbove - errPos };
    const { escapeRate, overkillRate } = rates(c);
    out.push({ threshold: t, ...c, escapeRate, overkillRate });
  }
  return out.reverse();
}

export function perClass(rows: readonly Pick<ReplayRow, 'truth' | 'verdict'>[], isGood: IsGood = DEFAULT_GOOD): Record<string, ClassStats> {
  const out: Record<string, ClassStats> = {};
  for (const truth of [...new Set(rows.map((r) => r.truth))].sort()) {
    const mine = rows.filter((r) => r.truth === truth);
    const pass = mine.filter((r) => r.verdict === 'pass').length;
    const fail = mine.filter((r) => r.verdict === 'fail').length;
    const error = mine.length - pass - fail;
    const correct = isGood(truth) ? pass : fail + error;
    out[truth] = { images: mine.length, pass, fail, error, correct, accuracy: correct / mine.length };
  }
  return out;
}

/** Nearest-rank percentile of unsorted values; 0 for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function iou(a: { x: number; y: number; w: number; h: number }, b: { x: number; y: number; w: number; h: number }): number {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (a.w * a.h + b.w * b.h - inter);
}

export interface Prediction {
  readonly file: string;
  readonly label: string;
  readonly score: number;
  readonly box: { x: number; y: number; w: number; h: number };
}

/**
 * Average precision per class at an IoU, Pascal VOC style: predictions of all
 * images by falling score, each matched to the best unmatched truth of its
 * class in its image; AP is the area under the precision envelope (all-point
 * interpolation). Classes without truths are left out of the mean.
 */
export function detection(truths: ReadonlyMap<string, readonly TruthBox[]>, predictions: readonly Prediction[], threshold = 0.5): DetectionAt {
  const perClass: Record<string, { ap: number; truths: number; predictions: number }> = {};
  for (const label of labelsOf(truths, predictions)) {
    const { hits, total } = matchClass(truths, predictions, label, threshold);
    perClass[label] = { ap: total === 0 ? 0 : averagePrecision(hits, total), truths: total, predictions: hits.length };
  }
  const scored = Object.values(perClass).filter((c) => c.truths > 0);
  return { iou: threshold, perClass, mAP50: scored.length === 0 ? 0 : scored.reduce((s, c) => s + c.ap, 0) / scored.length, classAgnostic: false };
}

/** AP at one IoU per class (see `detection`); `mAP50` is the mean at that IoU, whatever it is. */
export interface DetectionAt {
  readonly iou: number;
  readonly perClass: Readonly<Record<string, { readonly ap: number; readonly truths: number; readonly predictions: number }>>;
  readonly mAP50: number;
  readonly classAgnostic: boolean;
}

const labelsOf = (truths: ReadonlyMap<string, readonly TruthBox[]>, predictions: readonly Prediction[]): string[] =>
  [...new Set([...[...truths.values()].flat().map((t) => t.label), ...predictions.map((p) => p.label)])].sort();

/** A class's predictions by falling score, each a hit when it takes an unmatched truth at IoU >= threshold; and the number of truths. */
function matchClass(truths: ReadonlyMap<string, readonly TruthBox[]>, predictions: readonly Prediction[], label: string, threshold: number): { hits: boolean[]; total: number } {
  const gts = new Map<string, { box: TruthBox; used: boolean }[]>();
  let total = 0;
  for (const [file, boxes] of truths) {
    const mine = boxes.filter((b) => b.label === label).map((box) => ({ box, used: false }));
    gts.set(file, mine);
    total += mine.length;
  }
  const preds = predictions.filter((p) => p.label === label).sort((a, b) => b.score - a.score);
  const hits = preds.map((p) => {
    let best: { box: TruthBox; used: boolean } | undefined;
    let bestIou = threshold;
    for (const g of gts.get(p.file) ?? []) {
      const v = iou(p.box, g.box);
      if (!g.used && v >= bestIou) {
        best = g;
        bestIou = v;
      }
    }
    if (best === undefined) return false;
    best.used = true;
    return true;
  });
  return { hits, total };
}

/** COCO's IoU thresholds for mAP50-95: 0.50, 0.55, ..., 0.95. */
export const COCO_IOUS: readonly number[] = Array.from({ length: 10 }, (_, i) => Math.round((0.5 + 0.05 * i) * 100) / 100);

/** AP50 and AP50-95 (the mean of AP over COCO_IOUS) per class, and their means over the classes that have truths. */
export function apStats(truths: ReadonlyMap<string, readonly TruthBox[]>, predictions: readonly Prediction[]): APStats {
  const at = COCO_IOUS.map((t) => detection(truths, predictions, t));
  const d50 = at[0]!;
  const perClass: Record<string, ClassAP> = {};
  for (const [label, c] of Object.entries(d50.perClass)) {
    perClass[label] = { ap50: c.ap, ap50_95: at.reduce((s, d) => s + d.perClass[label]!.ap, 0) / at.length, truths: c.truths, predictions: c.predictions };
  }
  return { perClass, mAP50: d50.mAP50, mAP50_95: at.reduce((s, d) => s + d.mAP50, 0) / at.length };
}

/** Detection counts at IoU `threshold`: a prediction is a true positive when it takes a truth, a truth no prediction took is a miss. */
export function detectionCounts(truths: ReadonlyMap<string, readonly TruthBox[]>, predictions: readonly Prediction[], threshold = 0.5): OperatingCounts & { perClass: Record<string, OperatingCounts> } {
  const perClass: Record<string, OperatingCounts> = {};
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (const label of labelsOf(truths, predictions)) {
    const { hits, total } = matchClass(truths, predictions, label, threshold);
    const t = hits.filter(Boolean).length;
    perClass[label] = counts(t, hits.length - t, total - t);
    tp += t;
    fp += hits.length - t;
    fn += total - t;
  }
  return { ...counts(tp, fp, fn), perClass };
}

const counts = (tp: number, fp: number, fn: number): OperatingCounts => ({ tp, fp, fn, precision: ratio(tp, tp + fp), recall: ratio(tp, tp + fn) });

/** Area under the interpolated precision-recall curve of hits in falling-score order. */
export function averagePrecision(hits: readonly boolean[], truths: number): number {
  const recall: number[] = [0];
  const precision: number[] = [1];
  let tp = 0;
  hits.forEach((hit, i) => {
    if (hit) tp++;
    recall.push(tp / truths);
    precision.push(tp / (i + 1));
  });
  // The envelope: precision at recall r is the best precision at any recall >= r.
  for (let i = precision.length - 2; i >= 0; i--) precision[i] = Math.max(precision[i]!, precision[i + 1]!);
  let ap = 0;
  for (let i = 1; i < recall.length; i++) ap += (recall[i]! - recall[i - 1]!) * precision[i]!;
  return ap;
}
