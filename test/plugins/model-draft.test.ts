import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { draftManifest, inspectModel, probabilityEvidence } from '../../plugins/model-onnx/inspect.js';
import { ModelManifest } from '../../plugins/model-onnx/manifest.js';
import { outputOps, parseGraphNodes, readGraphNodes } from '../../plugins/model-onnx/onnx-proto.js';
import { linegate } from '../helpers/cli.js';
import { node, onnxFile } from '../helpers/onnx-build.js';
import { scratch } from '../helpers/scratch.js';
import { textureClassifier } from '../helpers/texture-model.js';

/** The third-party detector beside the repository (../shared), as every data-set test finds it; absent, its tests skip and say so. */
const NEU = path.resolve(import.meta.dirname, '../../../shared/models/neu-yolov8n-int8/model.onnx');
const TODAY = '2026-01-02';

const tmpDirs: string[] = [];
const tempDir = (): string => {
  const d = scratch('lg-draft-');
  tmpDirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/** Every preprocessing field a draft must state, so that no schema default decides silently. */
const INPUT_FIELDS = ['name', 'layout', 'width', 'height', 'channels', 'color', 'resize', 'kernel', 'scale', 'mean', 'std'];
/** The choices a person must confirm against the training code, for a classifier with a plain resize. */
const CLASSIFIER_CHOICES = ['input.kernel', 'input.resize', 'input.color', 'input.scale/mean/std', 'decode.activation', 'labels', 'decode.goodLabels'];

const oneOutput = (dir: string, file: string, output: string, dims: number[], ops: number[][]): string =>
  onnxFile(dir, file, { inputs: [['x', [1, 3, 8, 8]]], outputs: [[output, dims]], nodes: ops });

describe('onnx-proto: the graph nodes behind each output', () => {
  it('reads the op computing each output, looking through reshapes, and skips the weights', () => {
    const dir = tempDir();
    const file = textureClassifier(dir, 'texture.onnx');
    const nodes = readGraphNodes(file);
    expect(nodes.map((n) => n.opType)).toEqual(['Conv', 'Abs', 'ReduceMean', 'MatMul', 'Add', 'Softmax']);
    expect(nodes[0]).toEqual({ opType: 'Conv', domain: '', inputs: ['image', 'laplacian'], outputs: ['edges'] });
    expect(parseGraphNodes(readFileSync(file))).toEqual(nodes);
    expect(outputOps(nodes, ['probs', 'nowhere'])).toEqual({ probs: 'Softmax' });
    const through = [...nodes, { opType: 'Flatten', domain: '', inputs: ['probs'], outputs: ['flat'] }, { opType: 'Identity', domain: '', inputs: ['flat'], outputs: ['out'] }];
    expect(outputOps(through, ['out'])).toEqual({ out: 'Softmax' });
    // A malformed graph whose reshapes form a cycle must not hang inspect.
    const cycle = [
      { opType: 'Identity', domain: '', inputs: ['b'], outputs: ['a'] },
      { opType: 'Identity', domain: '', inputs: ['a'], outputs: ['b'] },
    ];
    expect(() => outputOps(cycle, ['a'])).not.toThrow();
  });
});

describe('models inspect drafts: outputs that already are probabilities', () => {
  it('sets activation none for an output a Softmax computes, and says why', async () => {
    const dir = tempDir();
    const i = await inspectModel(textureClassifier(dir, 'texture.onnx'));
    expect(i.outputOps).toEqual({ probs: 'Softmax' });
    const d = draftManifest(i, { today: TODAY });
    expect(d.manifest.decode).toEqual({ kind: 'classification', output: 'probs', activation: 'none', goodLabels: ['class0'] });
    const note = d.assumptions.find((a) => a.field === 'decode.activation');
    expect(note).toMatchObject({ value: 'none', why: expect.stringContaining('with a Softmax') });
  });

  it.each([
    ['probs', 'ReduceMean'],
    ['prob', 'ReduceMean'],
    ['output_probs', 'ReduceMean'],
    ['softmax_1', 'ReduceMean'],
    ['sigmoid_out', 'ReduceMean'],
    ['class_probs', 'ReduceMean'],
  ])('sets activation none for an output named %s (computed by %s)', async (name, op) => {
    const dir = tempDir();
    const i = await inspectModel(oneOutput(dir, `${name}.onnx`, name, [1, 3], [node(op, ['x'], [name], { axes: [2, 3], keepdims: 0 })]));
    const d = draftManifest(i, { today: TODAY });
    expect(d.manifest.decode).toMatchObject({ activation: 'none' });
    expect(d.assumptions.find((a) => a.field === 'decode.activation')?.why).toContain(`named ${name}`);
  });

  it('keeps softmax for logits, and flags a probability name on a linear op', async () => {
    const dir = tempDir();
    const logits = draftManifest(await inspectModel(oneOutput(dir, 'logits.onnx', 'logits', [1, 3], [node('ReduceMean', ['x'], ['logits'], { axes: [2, 3], keepdims: 0 })])));
    expect(logits.manifest.decode).toMatchObject({ activation: 'softmax' });
    expect(logits.assumptions.find((a) => a.field === 'decode.activation')?.why).toMatch(/treats it as logits.*use none/);
    expect(probabilityEvidence({ outputOps: { probs: 'Gemm' } }, 'probs')).toMatch(/Gemm, which gives logits/);
    expect(probabilityEvidence({ outputOps: { logits: 'Gemm' } }, 'logits')).toBeUndefined();
    expect(probabilityEvidence({ outputOps: { y: 'Sigmoid' } }, 'y')).toMatch(/Sigmoid/);
  });

  it('sets activation none for a segmentation map a Sigmoid computes', async () => {
    const dir = tempDir();
    const i = await inspectModel(
      onnxFile(dir, 'seg.onnx', { inputs: [['image', [1, 1, 16, 16]]], outputs: [['mask', [1, 1, 16, 16]]], nodes: [node('Sigmoid', ['image'], ['mask'])] }),
    );
    expect(draftManifest(i).manifest.decode).toMatchObject({ kind: 'segmentation', activation: 'none' });
  });
});

describe('models inspect drafts: every preprocessing field explicit, every choice listed', () => {
  it('writes kernel linear and every input field, so no schema default decides', async () => {
    const dir = tempDir();
    const d = draftManifest(await inspectModel(textureClassifier(dir, 'texture.onnx')), { today: TODAY });
    expect(Object.keys(d.manifest.input).sort()).toEqual([...INPUT_FIELDS].sort());
    expect(d.manifest.input).toMatchObject({ layout: 'NCHW', kernel: 'linear', color: 'GRAY', resize: { mode: 'stretch' }, scale: 1 / 255, mean: [0], std: [1] });
    // The draft as written is what the schema would give it: nothing is left to a default.
    expect(ModelManifest.parse(d.manifest).input).toEqual(d.manifest.input);
  });

  it('lists each choice to confirm against the training code, with what was assumed and why', async () => {
    const dir = tempDir();
    const d = draftManifest(await inspectModel(textureClassifier(dir, 'texture.onnx')), { today: TODAY });
    expect(d.assumptions.map((a) => a.field)).toEqual(CLASSIFIER_CHOICES);
    const byField = Object.fromEntries(d.assumptions.map((a) => [a.field, a]));
    expect(byField['input.kernel']).toMatchObject({ value: 'linear', why: expect.stringMatching(/bilinear.*torchvision.*PIL.*OpenCV.*Ultralytics/) });
    expect(byField['input.resize']).toMatchObject({ value: 'stretch', why: expect.stringContaining('center-crop') });
    expect(byField['input.scale/mean/std']).toMatchObject({ value: 'scale 1/255, mean [0], std [1]', why: expect.stringContaining('ImageNet') });
    expect(byField.labels).toMatchObject({ value: '[class0, class1]', why: expect.stringContaining('placeholders') });
    expect(byField['decode.goodLabels']).toMatchObject({ value: '[class0]' });
    for (const a of d.assumptions) expect(d.review).toContain(`${a.field} ${a.value}: ${a.why}; confirm against the training code`);
  });

  // The only real letterbox model lives in ../shared.
  it.skipIf(!existsSync(NEU))('states the anchor of a letterboxed draft and why (needs ../shared/models/neu-yolov8n-int8)', async () => {
    const d = draftManifest(await inspectModel(NEU), { today: TODAY });
    expect(d.manifest.input.resize).toEqual({ mode: 'letterbox', pad: 114, anchor: 'center' });
    expect(d.manifest.input.kernel).toBe('linear');
    expect(d.assumptions.map((a) => a.field)).toEqual(['input.kernel', 'input.resize', 'input.resize.anchor', 'input.color', 'input.scale/mean/std', 'labels']);
    expect(d.assumptions.find((a) => a.field === 'input.resize.anchor')?.why).toMatch(/top-left/);
  });

  it('linegate models inspect writes them to model.json and prints them', async () => {
    const dir = tempDir();
    const onnx = textureClassifier(path.join(dir, 'models', 'texture-cls', '1'), 'model.onnx');
    const run = await linegate(['models', 'inspect', onnx]);
    expect(run.code, run.stderr).toBe(0);
    const written = JSON.parse(readFileSync(path.join(path.dirname(onnx), 'model.json'), 'utf8')) as { input: Record<string, unknown>; decode: Record<string, unknown> };
    expect(written.input).toMatchObject({ kernel: 'linear', layout: 'NCHW', scale: 1 / 255, mean: [0], std: [1] });
    expect(written.decode).toMatchObject({ output: 'probs', activation: 'none' });
    expect(run.stdout).toContain('confirm each against the training code');
    for (const field of CLASSIFIER_CHOICES) expect(run.stdout).toContain(field);
    expect(run.messages().join('\n')).toContain('input.kernel linear');

    const json = await linegate(['models', 'inspect', '--force', '--json', onnx]);
    expect(json.code, json.stderr).toBe(0);
    const out = JSON.parse(json.stdout) as { inspection: { outputOps: Record<string, string> }; draft: { assumptions: { field: string; value: string; why: string }[] } };
    expect(out.inspection.outputOps).toEqual({ probs: 'Softmax' });
    expect(out.draft.assumptions.map((a) => a.field)).toEqual(CLASSIFIER_CHOICES);
  }, 60_000);
});

describe('model.json without a kernel', () => {
  it('still loads, and resizes with linear, the documented default', () => {
    const m = ModelManifest.parse({
      name: 'old',
      version: '1',
      task: 'classification',
      sha256: 'a'.repeat(64),
      input: { name: 'x', width: 8, height: 8, channels: 1, color: 'GRAY', resize: { mode: 'stretch' } },
      decode: { kind: 'classification', output: 'y', goodLabels: ['ok'] },
      labels: ['ok', 'ng'],
      thresholds: { default: 0.5 },
      provenance: { data: 'd', script: 's', date: TODAY },
    });
    expect(m.input.kernel).toBe('linear');
  });

  it('is not how any shipped package relies on it: each states its kernel', () => {
    const root = path.resolve(import.meta.dirname, '../..');
    for (const pkg of ['casting-cls/1', 'casting-cls/2', 'magnetic-tile-anomaly/1', 'neu-yolov8n-int8/1']) {
      const m = JSON.parse(readFileSync(path.join(root, 'models', pkg, 'model.json'), 'utf8')) as { input: { kernel?: string } };
      expect(m.input.kernel, pkg).toBeDefined();
    }
  });
});
