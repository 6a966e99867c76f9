import { describe, expect, it } from 'vitest';
import { areaToSource, boxToSource, modelOutputOf, modelOutputPatch, pointToSource, tensorOf, type InputTransform, type ModelOutput } from '../../runtime/contract.js';
import { ModelManifest } from '../../plugins/model-onnx/manifest.js';
import { capsOfModel, modelConstants, modelOutput } from '../../plugins/model-onnx/meta.js';
import { f32, identity, manifests, SHA } from '../helpers/model-parts.js';
import { frameOf } from '../helpers/samples.js';

const INPUT = { name: 'input', width: 100, height: 100, channels: 1, color: 'GRAY', resize: { mode: 'stretch' } };
const PROVENANCE = { data: 'synthetic', script: 'none', date: '2026-11-21' };
/** model.json as a package author writes it, defaults left out. */
const packages = {
  classification: { name: 'c', version: '1', task: 'classification', sha256: SHA, input: INPUT, decode: { kind: 'classification', output: 'logits', goodLabels: ['ok'] }, labels: ['ok', 'crack', 'burr'], thresholds: { default: 0.5 }, provenance: PROVENANCE },
  yolo: { name: 'y', version: '1', task: 'detection', sha256: SHA, input: INPUT, decode: { kind: 'yolo', format: 'end2end' }, labels: ['crack', 'pit'], thresholds: { default: 0.25 }, provenance: PROVENANCE },
  segmentation: { name: 's', version: '1', task: 'segmentation', sha256: SHA, input: INPUT, decode: { kind: 'segmentation', output: 'masks', activation: 'none', backgroundLabel: 'bg', minAreaPx: 2 }, labels: ['bg', 'crack'], thresholds: { default: 0.5 }, provenance: PROVENANCE },
  anomaly: { name: 'a', version: '1', task: 'anomaly', sha256: SHA, input: INPUT, decode: { kind: 'anomaly', map: 'anomaly_map', minAreaPx: 1 }, labels: ['anomaly'], thresholds: { default: 0.5 }, provenance: PROVENANCE },
};

describe('core/onnx-model@1 and the model-output contract', () => {
  it.each([
    ['classification', packages.classification, manifests.classification],
    ['yolo', packages.yolo, manifests.yolo('end2end')],
    ['segmentation', packages.segmentation, manifests.segmentation],
    ['anomaly', packages.anomaly, manifests.anomaly],
  ] as const)('gives a %s package the decode spec, labels, thresholds and identity the decoder tests use', (_kind, pkg, expected) => {
    expect(modelConstants(ModelManifest.parse(pkg))).toEqual(expected);
  });

  it("produces caps naming the package's task and decode kind", () => {
    expect(capsOfModel(ModelManifest.parse(packages.yolo))).toEqual({ type: 'model/output', params: { task: 'detection', decode: 'yolo' } });
  });

  it('fills the decoder slot, the runtime slot and the result identity with the same objects', () => {
    const tensors = { logits: f32([1, 3], [0, 1, 2]) };
    const out = modelOutput(modelConstants(ModelManifest.parse(packages.classification)), tensors, [identity()], { width: 100, height: 100 });
    const patch = modelOutputPatch(out);
    expect(patch.modelOutput).toBe(out);
    expect(patch.outputs).toBe(tensors);
    expect(patch.model).toEqual({ name: 'c', version: '1', sha256: SHA });
    expect(patch.model).toBe(out.model);
  });
});

describe('the model-output contract', () => {
  const output: ModelOutput = { ...manifests.classification, tensors: { logits: f32([1, 3], [0, 1, 2]) }, transforms: [identity()], source: { width: 100, height: 100 } };

  it('is read from the part, and its absence names the missing step', () => {
    expect(modelOutputOf({ frame: frameOf(), modelOutput: output })).toBe(output);
    expect(() => modelOutputOf({ frame: frameOf(), outputs: output.tensors })).toThrow(/no model output on this part: put a model step/);
  });

  it('names the tensors the model gave when a decoder asks for one it did not', () => {
    expect(tensorOf(output, 'logits')).toBe(output.tensors.logits);
    expect(() => tensorOf(output, 'probs')).toThrow('the model gave no output "probs" (it gave: logits)');
  });

  // A 200x100 region at (50, 20) letterboxed into 100x100: scale 0.5, 25 px of padding above and below.
  const letterbox: InputTransform = { originX: 50, originY: 20, scaleX: 0.5, scaleY: 0.5, padX: 0, padY: 25, region: { x: 50, y: 20, width: 200, height: 100 } };

  it('maps model-input points, boxes and areas back to source pixels', () => {
    expect(pointToSource(letterbox, 10, 35)).toEqual({ x: 70, y: 40 });
    expect(boxToSource(letterbox, 10, 35, 20, 45)).toEqual({ x: 70, y: 40, w: 20, h: 20 });
    expect(areaToSource(letterbox, 25)).toBe(100);
  });

  it('clips boxes to the item region and drops those wholly in the padding', () => {
    expect(boxToSource(letterbox, 90, 20, 110, 30)).toEqual({ x: 230, y: 20, w: 20, h: 10 });
    expect(boxToSource(letterbox, 10, 0, 20, 20)).toBeUndefined();
  });
});
