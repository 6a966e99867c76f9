import type { Part, Tensor } from '../../runtime/contract.js';
import { ModelManifest } from '../../plugins/model-onnx/manifest.js';
import { MODEL_META_KEY, type ModelMeta } from '../../plugins/model-onnx/meta.js';
import type { Transform } from '../../plugins/model-onnx/preprocess.js';
import { frameOf } from './samples.js';

/** Parts as a model step leaves them, for testing decoders on outputs whose right answer is known. */

export const SHA = 'a'.repeat(64);
export const INPUT = { name: 'input', width: 100, height: 100, channels: 1, color: 'GRAY', resize: { mode: 'stretch' } };
export const PROVENANCE = { data: 'synthetic', script: 'none', date: '2026-11-21' };

/** Identity transform: model pixels are source pixels. */
export const identity = (w = 100, h = 100, origin = { x: 0, y: 0 }): Transform => ({
  originX: origin.x,
  originY: origin.y,
  scaleX: 1,
  scaleY: 1,
  padX: 0,
  padY: 0,
  region: { ...origin, width: w, height: h },
});

export function partWith(manifest: unknown, outputs: Record<string, Tensor>, transforms: Transform[] = [identity()]): Part {
  const meta: ModelMeta = { manifest: ModelManifest.parse(manifest), transforms, source: { width: 100, height: 100 } };
  return { frame: frameOf(), outputs, meta: { [MODEL_META_KEY]: meta } };
}

export const f32 = (dims: number[], values: number[] | Float32Array): Tensor => ({ type: 'float32', dims, data: Float32Array.from(values) });

export const manifests = {
  classification: { name: 'c', version: '1', task: 'classification', sha256: SHA, input: INPUT, decode: { kind: 'classification', output: 'logits', goodLabels: ['ok'] }, labels: ['ok', 'crack', 'burr'], thresholds: { default: 0.5 }, provenance: PROVENANCE },
  yolo: (format: string) => ({ name: 'y', version: '1', task: 'detection', sha256: SHA, input: INPUT, decode: { kind: 'yolo', format }, labels: ['crack', 'pit'], thresholds: { default: 0.25 }, provenance: PROVENANCE }),
  segmentation: { name: 's', version: '1', task: 'segmentation', sha256: SHA, input: { ...INPUT, width: 10, height: 10 }, decode: { kind: 'segmentation', output: 'masks', activation: 'none', backgroundLabel: 'bg', minAreaPx: 2 }, labels: ['bg', 'crack'], thresholds: { default: 0.5 }, provenance: PROVENANCE },
  anomaly: { name: 'a', version: '1', task: 'anomaly', sha256: SHA, input: { ...INPUT, width: 8, height: 8 }, decode: { kind: 'anomaly', map: 'anomaly_map', minAreaPx: 1 }, labels: ['anomaly'], thresholds: { default: 0.5 }, provenance: PROVENANCE },
};
