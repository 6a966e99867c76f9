import type { Part, Tensor } from '../../runtime/contract.js';
import type { ModelManifest } from './manifest.js';
import { toSourceX, toSourceY, type Transform } from './preprocess.js';

/** The meta key under which the model step tells its decoders what they decode. */
export const MODEL_META_KEY = 'core/onnx-model';

/** Side data from the model step to its decoder: which model ran, and where each batch item came from. */
export interface ModelMeta {
  readonly manifest: ModelManifest;
  /** One per batch item (tile), mapping model-input pixels to source pixels. */
  readonly transforms: readonly Transform[];
  readonly source: { readonly width: number; readonly height: number };
}

export function modelMetaOf(part: Part): ModelMeta {
  const meta = part.meta?.[MODEL_META_KEY] as ModelMeta | undefined;
  if (meta === undefined || part.outputs === undefined) throw new Error('no model output on this part: put core/onnx-model@1 before the decoder');
  return meta;
}

/** A box in model-input pixels of batch item `t`, as a clipped box in source pixels (undefined when nothing is left). */
export function boxToSource(t: Transform, x1: number, y1: number, x2: number, y2: number): { x: number; y: number; w: number; h: number } | undefined {
  const r = t.region;
  const sx1 = Math.max(r.x, Math.min(r.x + r.width, toSourceX(t, x1)));
  const sy1 = Math.max(r.y, Math.min(r.y + r.height, toSourceY(t, y1)));
  const sx2 = Math.max(r.x, Math.min(r.x + r.width, toSourceX(t, x2)));
  const sy2 = Math.max(r.y, Math.min(r.y + r.height, toSourceY(t, y2)));
  if (sx2 - sx1 <= 0 || sy2 - sy1 <= 0) return undefined;
  return { x: sx1, y: sy1, w: sx2 - sx1, h: sy2 - sy1 };
}

/** The output tensor `name`, or a decode error naming what the graph gave instead. */
export function outputOf(part: Part, name: string): Tensor {
  const t = part.outputs?.[name];
  if (t === undefined) throw new Error(`the model gave no output "${name}" (it gave: ${Object.keys(part.outputs ?? {}).join(', ')})`);
  return t;
}
