import { identityTransform, type InputTransform, type ModelOutput, type Part, type Tensor } from '../../runtime/contract.js';
import { frameOf } from './samples.js';

/**
 * Parts as a model step leaves them, for testing decoders on outputs whose right answer is known.
 * Written against the model-output contract alone: any model plugin could have produced them.
 */

export const SHA = 'a'.repeat(64);

/** A model's output without this part's tensors and transforms: what a model step knows once loaded. */
export type ModelSpec = Omit<ModelOutput, 'tensors' | 'transforms' | 'source'>;

/** Identity transform: model pixels are source pixels. */
export const identity = (w = 100, h = 100, origin = { x: 0, y: 0 }): InputTransform => identityTransform({ ...origin, width: w, height: h });

export function partWith(model: ModelSpec, tensors: Record<string, Tensor>, transforms: InputTransform[] = [identity()]): Part {
  const output: ModelOutput = { ...model, tensors, transforms, source: { width: 100, height: 100 } };
  return { frame: frameOf(), outputs: tensors, model: model.model, modelOutput: output };
}

export const f32 = (dims: number[], values: number[] | Float32Array): Tensor => ({ type: 'float32', dims, data: Float32Array.from(values) });

const ref = (name: string): ModelSpec['model'] => ({ name, version: '1', sha256: SHA });
const thresholds = (d: number): ModelSpec['thresholds'] => ({ default: d, perLabel: {} });

/** Each decoder's model, with the decode spec model.json's defaults would give (test/plugins/model-output.test.ts checks they do). */
export const manifests = {
  classification: {
    model: ref('c'),
    task: 'classification',
    labels: ['ok', 'crack', 'burr'],
    decode: { kind: 'classification', output: 'logits', activation: 'softmax', goodLabels: ['ok'] },
    thresholds: thresholds(0.5),
  },
  yolo: (format: 'xywh-scores' | 'end2end'): ModelSpec => ({
    model: ref('y'),
    task: 'detection',
    labels: ['crack', 'pit'],
    decode: { kind: 'yolo', output: 'output0', format, scoreThreshold: 0.25, iouThreshold: 0.45, maxDetections: 300 },
    thresholds: thresholds(0.25),
  }),
  segmentation: {
    model: ref('s'),
    task: 'segmentation',
    labels: ['bg', 'crack'],
    decode: { kind: 'segmentation', output: 'masks', activation: 'none', backgroundLabel: 'bg', minAreaPx: 2 },
    thresholds: thresholds(0.5),
  },
  anomaly: {
    model: ref('a'),
    task: 'anomaly',
    labels: ['anomaly'],
    decode: { kind: 'anomaly', score: 'pred_score', map: 'anomaly_map', threshold: 0.5, minAreaPx: 1 },
    thresholds: thresholds(0.5),
  },
} satisfies Record<string, ModelSpec | ((format: 'xywh-scores' | 'end2end') => ModelSpec)>;
