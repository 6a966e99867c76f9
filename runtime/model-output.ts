/**
 * The model-output contract: what a model step hands its decoder, and what the
 * decision rules read the model's thresholds from. Any model plugin that fills
 * it (onnxruntime, another runtime, a remote inference server, a pure-JS
 * heuristic) can feed any built-in decoder; no decoder knows which one ran.
 *
 * Plain types and pure math only (no zod, sharp or onnxruntime), so a plugin
 * author needs nothing but this file and `contract.ts`, which re-exports it.
 * Kept apart from contract.ts for size; it imports only types from there.
 */
import type { Caps, Part, PartPatch, Tensor } from './contract.js';
import type { ModelRef } from './result.js';

/** What the model judges; the `task` param of the `model/output` caps. */
export type ModelTask = 'classification' | 'detection' | 'segmentation' | 'anomaly';

/** How raw class values become probabilities; `none`: the graph already outputs probabilities. */
export type Activation = 'softmax' | 'sigmoid' | 'none';

/** Class values, one row of `labels.length` per batch item (`core/classify-decode@1`). */
export interface ClassificationDecode {
  readonly kind: 'classification';
  /** The tensor holding the class values. */
  readonly output: string;
  readonly activation: Activation;
  /** Labels that mean a good part; the part's defect score is 1 - their probability. */
  readonly goodLabels: readonly string[];
}

/** Ultralytics YOLO v8/v11 detections (`core/yolo-decode@1`), in model-input pixels. */
export interface YoloDecode {
  readonly kind: 'yolo';
  readonly output: string;
  /** `xywh-scores`: (N, 4+nc, A), needs NMS; `end2end`: (N, K, 6) x1 y1 x2 y2 score class. */
  readonly format: 'xywh-scores' | 'end2end';
  readonly scoreThreshold: number;
  readonly iouThreshold: number;
  readonly maxDetections: number;
}

/** Per-pixel class maps (N, classes, H, W) (`core/segment-decode@1`). */
export interface SegmentationDecode {
  readonly kind: 'segmentation';
  readonly output: string;
  readonly activation: Activation;
  /** The label that is never a defect. */
  readonly backgroundLabel?: string;
  /** Smaller blobs (model-input pixels) are noise. */
  readonly minAreaPx: number;
}

/** anomalib's export contract (`core/anomaly-decode@1`): scores normalised so the cut sits at `threshold`. */
export interface AnomalyDecode {
  readonly kind: 'anomaly';
  /** Image score tensor (N). */
  readonly score: string;
  /** Anomaly map tensor (N, 1, H, W); without it, no regions, only the image score. */
  readonly map?: string;
  readonly label?: string;
  /** The model's own binary mask (N, 1, H, W), used instead of thresholding the map. */
  readonly mask?: string;
  readonly threshold: number;
  readonly minAreaPx: number;
}

/** Everything a decoder needs to read the tensors, every default already applied. */
export type DecodeSpec = ClassificationDecode | YoloDecode | SegmentationDecode | AnomalyDecode;
export type DecodeKind = DecodeSpec['kind'];

/** The task each decode kind serves: a model whose task and decode kind disagree is malformed. */
export const TASK_OF_DECODE: Readonly<Record<DecodeKind, ModelTask>> = Object.freeze({
  classification: 'classification',
  yolo: 'detection',
  segmentation: 'segmentation',
  anomaly: 'anomaly',
});

/** A rectangle in source-image pixels. */
export interface SourceRect {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/**
 * Maps model-input pixels of one batch item back to source-image pixels:
 * `src = origin + (input - pad) / scale`, per axis. A stretch has no pad, a
 * letterbox a positive one, a centre crop a negative one.
 */
export interface InputTransform {
  readonly originX: number;
  readonly originY: number;
  readonly scaleX: number;
  readonly scaleY: number;
  readonly padX: number;
  readonly padY: number;
  /** The source region this item covers (the whole image, the ROI or a tile), for clipping. */
  readonly region: SourceRect;
}

/** The model's default score thresholds; a station's rules and calibration may override them. */
export interface ModelThresholds {
  readonly default: number;
  readonly perLabel: Readonly<Record<string, number>>;
}

/**
 * One part's model output. A model step returns it with `modelOutputPatch()`;
 * a decoder reads it with `modelOutputOf()`.
 */
export interface ModelOutput {
  /** Which model judged the part; it also goes into the result record. */
  readonly model: ModelRef;
  readonly task: ModelTask;
  /** Output tensors by name; axis 0 is the batch item (one per tile). */
  readonly tensors: Readonly<Record<string, Tensor>>;
  /** One per batch item, in batch order. */
  readonly transforms: readonly InputTransform[];
  /** The source image the transforms map into. */
  readonly source: { readonly width: number; readonly height: number };
  /** Class labels in the model's class order. */
  readonly labels: readonly string[];
  readonly decode: DecodeSpec;
  readonly thresholds: ModelThresholds;
}

/**
 * The patch a model step returns. The decoders read `modelOutput`; `outputs`
 * and `model` carry the same objects for the runtime (the `model/output` slot
 * check, the result record's model), so the three never disagree.
 */
export function modelOutputPatch(output: ModelOutput): PartPatch {
  return { outputs: output.tensors, model: output.model, modelOutput: output };
}

/** The model output on `part`, or an error that says which step is missing. */
export function modelOutputOf(part: Part): ModelOutput {
  const out = part.modelOutput;
  if (out === undefined) throw new Error('no model output on this part: put a model step (e.g. core/onnx-model@1) before the decoder');
  return out;
}

/** The tensor `name`, or an error naming what the model gave instead. */
export function tensorOf(output: ModelOutput, name: string): Tensor {
  const t = output.tensors[name];
  if (t === undefined) throw new Error(`the model gave no output "${name}" (it gave: ${Object.keys(output.tensors).join(', ')})`);
  return t;
}

/**
 * The `model/output` caps for a task and decode kind. Both are params because
 * a decoder needs both: two detection models with different output layouts
 * must not be linked to the same decoder. `*` when known only after init.
 */
export function modelOutputCaps(task: ModelTask | '*', decode: DecodeKind | '*'): Caps {
  return { type: 'model/output', params: { task, decode } };
}

export const toSourceX = (t: InputTransform, x: number): number => t.originX + (x - t.padX) / t.scaleX;
export const toSourceY = (t: InputTransform, y: number): number => t.originY + (y - t.padY) / t.scaleY;

/** A point in model-input pixels of one item, in source pixels (not clipped). */
export const pointToSource = (t: InputTransform, x: number, y: number): { x: number; y: number } => ({ x: toSourceX(t, x), y: toSourceY(t, y) });

/** A box in model-input pixels of one item, as a box in source pixels clipped to the item's region (undefined when nothing is left). */
export function boxToSource(t: InputTransform, x1: number, y1: number, x2: number, y2: number): { x: number; y: number; w: number; h: number } | undefined {
  const r = t.region;
  const sx1 = Math.max(r.x, Math.min(r.x + r.width, toSourceX(t, x1)));
  const sy1 = Math.max(r.y, Math.min(r.y + r.height, toSourceY(t, y1)));
  const sx2 = Math.max(r.x, Math.min(r.x + r.width, toSourceX(t, x2)));
  const sy2 = Math.max(r.y, Math.min(r.y + r.height, toSourceY(t, y2)));
  if (sx2 - sx1 <= 0 || sy2 - sy1 <= 0) return undefined;
  return { x: sx1, y: sy1, w: sx2 - sx1, h: sy2 - sy1 };
}

/** An area in model-input pixels of one item, in source pixels (the resize factor undone). */
export const areaToSource = (t: InputTransform, areaPx: number): number => areaPx / (t.scaleX * t.scaleY);

/** The transform of a model whose input is the source region as it stands (no resize, no pad). */
export const identityTransform = (region: SourceRect): InputTransform => ({ originX: region.x, originY: region.y, scaleX: 1, scaleY: 1, padX: 0, padY: 0, region });
