import type { Defect } from '../result.js';
import type { RateInterval } from './intervals.js';

/*
 * The replay report: what `linegate replay --json` writes, `--html` renders,
 * and `compare` / `calibrate` read. The names of the fields a data scientist
 * scripts against are fixed by the issue that asked for them; do not rename.
 */

/** A ground-truth box from an annotation (Pascal VOC, YOLO txt, or a mask's connected component), in source pixels. */
export interface TruthBox {
  readonly label: string;
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

/** One replayed image. */
export interface ReplayRow {
  /** Relative to the replayed folder, forward slashes. */
  readonly file: string;
  /** The class: the sub-folder's name, good classes included (see `ReplayReport.good`). */
  readonly truth: string;
  readonly verdict: 'pass' | 'fail' | 'error';
  /** The defect score the decision used: the image-level `defect` score, else the top defect's. */
  readonly score: number;
  readonly defects: readonly Defect[];
}

export interface ClassStats {
  readonly images: number;
  readonly pass: number;
  readonly fail: number;
  readonly error: number;
  /** Good images passed, or defective images rejected (fail or error: the PLC rejects both). */
  readonly correct: number;
  readonly accuracy: number;
}

/** Average precision of one class (VOC all-point interpolation). */
export interface ClassAP {
  readonly ap50: number;
  /** Mean AP over IoU 0.50, 0.55, ..., 0.95 (COCO's range). */
  readonly ap50_95: number;
  readonly truths: number;
  readonly predictions: number;
}

export interface APStats {
  readonly perClass: Readonly<Record<string, ClassAP>>;
  /** Means over the classes that have truths. */
  readonly mAP50: number;
  readonly mAP50_95: number;
}

/** Box counts at IoU 0.5: a prediction that takes a truth is a tp, one that takes none an fp, a truth nothing took an fn. */
export interface OperatingCounts {
  readonly tp: number;
  readonly fp: number;
  readonly fn: number;
  readonly precision: number | null;
  readonly recall: number | null;
}

export interface DetectionStats {
  /**
   * The headline mAP50: over all detections (`allDetections.mAP50`, the figure papers and training
   * frameworks quote) when replay could ask the decoder for them, else at the operating threshold;
   * `mAP50Over` says which.
   */
  readonly mAP50: number;
  readonly mAP50Over: 'all-detections' | 'operating-threshold';
  /** The IoU of `mAP50` and `perClass`. */
  readonly iou: number;
  /** AP at `iou` per class, on the same detections as `mAP50`. */
  readonly perClass: Readonly<Record<string, { readonly ap: number; readonly truths: number; readonly predictions: number }>>;
  /** True when the model's labels are not the truth classes (an anomaly or one-class model): boxes matched whatever their label, under `any`. */
  readonly classAgnostic: boolean;
  /** How AP is integrated: the area under the precision envelope at every recall step (Pascal VOC 2010+). */
  readonly interpolation: 'voc-all-point';
  /**
   * The standard figures: every detection the decoder gives with its score floor lowered to
   * `scoreFloor` (a second replay pass; the verdicts come from the first). Null when the station's
   * decoder cannot be asked for them (only core/yolo-decode@1 can).
   */
  readonly allDetections: (APStats & { readonly scoreFloor: number }) | null;
  /** What the station judged with: the detections at or above the decision's threshold for their label. */
  readonly operatingThreshold: APStats & OperatingCounts & { readonly perClassCounts: Readonly<Record<string, OperatingCounts>> };
}

/** Where a label's threshold came from, most specific first (core/threshold-rules@1's order); `decision` when none of them gives the value used. */
export type ThresholdSource = 'calibration' | 'rule' | 'model' | 'default' | 'decision';

/** A rate with its exact and bootstrap 95 % intervals. */
export type { RateInterval } from './intervals.js';

export interface ReportModel {
  readonly name: string;
  readonly version: string;
  readonly sha256: string;
  readonly task?: string;
  /** Input size, resize mode, kernel, colour, scale/mean/std: how each image became the model's input. */
  readonly preprocessing?: Readonly<Record<string, unknown>>;
  readonly decode?: Readonly<Record<string, unknown>>;
}

export interface ReportCalibration {
  readonly file: string;
  /** bound: made for this model; unbound: names no model; unchecked: no step says which model it runs; mismatch: made for another, allowed by the station; skipped: made for another, left out. */
  readonly status: 'bound' | 'unbound' | 'unchecked' | 'mismatch' | 'skipped';
  readonly madeFor: { readonly name: string; readonly version: string; readonly sha256: string } | null;
  readonly provenance: Readonly<Record<string, unknown>>;
}

/** One row of the threshold sweep: what the line would do with this threshold on the defect score. */
export interface SweepRow {
  readonly threshold: number;
  readonly tp: number;
  readonly fp: number;
  readonly tn: number;
  readonly fn: number;
  readonly escapeRate: number | null;
  readonly overkillRate: number | null;
}

export interface ReplayReport {
  readonly station: string;
  readonly dir: string;
  /** The class names counted as good parts (matched without regard to case). */
  readonly good: readonly string[];
  readonly createdAt: string;
  readonly images: number;
  /** Images whose verdict was `error` (counted as rejected in the confusion: the PLC rejects them). */
  readonly errors: number;
  /** Positive = defective; predicted positive = rejected (fail or error). */
  readonly confusion: { readonly tp: number; readonly fp: number; readonly tn: number; readonly fn: number };
  /** null where the denominator is 0 (e.g. recall on a set without defective images). */
  readonly accuracy: number | null;
  readonly precision: number | null;
  readonly recall: number | null;
  /** fn / (tp + fn): defective parts passed. */
  readonly escapeRate: number | null;
  /** fp / (fp + tn): good parts rejected. */
  readonly overkillRate: number | null;
  /** From the scores; null without both good and defective images. */
  readonly auroc: number | null;
  readonly perClass: Readonly<Record<string, ClassStats>>;
  /** Present when some image has annotation boxes. */
  readonly detection?: DetectionStats;
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number };
  /** The model package that judged (from the results), with its preprocessing and decoding as the package states them. */
  readonly model: ReportModel | null;
  /** Each label's threshold as the decision used it, and where it came from. */
  readonly thresholds: Readonly<Record<string, { readonly value: number; readonly from: ThresholdSource }>>;
  /** The calibration the station judged with; null without one (or when compare left one made for another model out: see `status`). */
  readonly calibration: ReportCalibration | null;
  /** The escape and overkill rates with their exact (Clopper-Pearson) and bootstrap 95 % intervals. */
  readonly intervals: { readonly escapeRate: RateInterval; readonly overkillRate: RateInterval };
  /** Over the distinct scores: each threshold's confusion, for the HTML table and for calibration. */
  readonly sweep: readonly SweepRow[];
  readonly results: readonly ReplayRow[];
}

/** What the HTML report needs beyond the JSON: the images and their truth boxes. */
export interface ReplayMedia {
  /** The replayed folder (absolute); `row.file` is relative to it. */
  readonly dir: string;
  readonly truths: ReadonlyMap<string, readonly TruthBox[]>;
  /** Source-image size per file, when known (for overlays). */
  readonly sizes: ReadonlyMap<string, { readonly width: number; readonly height: number }>;
}
