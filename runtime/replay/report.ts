import type { Defect } from '../result.js';

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
  /** `good`, or the defect class (the sub-folder name). */
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

export interface DetectionStats {
  readonly iou: number;
  /** Average precision at `iou` per class (VOC all-point interpolation). */
  readonly perClass: Readonly<Record<string, { readonly ap: number; readonly truths: number; readonly predictions: number }>>;
  readonly mAP50: number;
  /** True when the model's labels are not the truth classes (an anomaly or one-class model): boxes matched whatever their label, under `any`. */
  readonly classAgnostic: boolean;
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
  /** The classes counted as good parts. */
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
  readonly model: { readonly name: string; readonly version: string; readonly sha256: string } | null;
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
