import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileStationFile } from '../../runtime/compile/compile.js';
import { LinegateErrors } from '../../runtime/errors.js';
import { builtinRegistry } from '../../runtime/registry/builtins.js';
import { Station } from '../../runtime/station.js';
import { onnxModel } from '../../plugins/model-onnx/index.js';
import { linegate } from '../helpers/cli.js';
import { contextFor, decodedPart } from '../helpers/samples.js';
import { ROOT, silentLog } from '../helpers/station.js';
import { scratch } from '../helpers/scratch.js';

const PACKAGE = path.join(ROOT, 'models/casting-cls/1');

/** A station root in a temp folder holding a copy of the casting package, its model.json edited by `edit`. */
function rootWithPackage(edit: (m: Record<string, unknown>) => void, onnx?: (bytes: Buffer) => Buffer): string {
  const root = scratch('lg-model-');
  const dir = path.join(root, 'models/casting-cls/1');
  mkdirSync(dir, { recursive: true });
  const manifest = JSON.parse(readFileSync(path.join(PACKAGE, 'model.json'), 'utf8')) as Record<string, unknown>;
  edit(manifest);
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(manifest));
  const bytes = readFileSync(path.join(PACKAGE, 'model.onnx'));
  writeFileSync(path.join(dir, 'model.onnx'), onnx === undefined ? bytes : onnx(bytes));
  return root;
}

const init = (root: string) =>
  onnxModel.init(onnxModel.manifest.config.parse({ model: 'models/casting-cls/1', warmup: false }), contextFor(new AbortController().signal, root));

describe('core/onnx-model@1 refuses a package that does not match its graph, at start', () => {
  it('names both shapes when model.json lies about the input size', async () => {
    const root = rootWithPackage((m) => Object.assign(m.input as object, { width: 224, height: 224 }));
    const err = await init(root).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err?.code).toBe('LG_ERR_MODEL_INPUT');
    expect(err?.message).toContain('[N,1,224,224]');
    expect(err?.message).toMatch(/graph's is \[[^\]]*,1,300,300\]/);
  });

  it('makes `linegate run` exit 2 naming the shape, before any frame', async () => {
    const root = rootWithPackage((m) => Object.assign(m.input as object, { width: 320, height: 320 }));
    mkdirSync(path.join(root, 'stations'));
    writeFileSync(
      path.join(root, 'stations/s.yaml'),
      readFileSync(path.join(ROOT, 'stations/casting.yaml'), 'utf8').replace('dir: fixtures/casting', `dir: ${path.join(ROOT, 'fixtures/casting')}`).replace(/sinks:[\s\S]*$/, 'history: false\n'),
    );
    const r = await linegate(['run', path.join(root, 'stations/s.yaml'), '--no-pretty']);
    expect(r.code).toBe(2);
    expect(r.messages()).toEqual([expect.stringMatching(/^LG_ERR_MODEL_INPUT \(step "model"\): .*\[N,1,320,320\]/)]);
    expect(r.stdout).toBe('');
  });

  it('names the input when model.json gives the wrong tensor name', async () => {
    const root = rootWithPackage((m) => Object.assign(m.input as object, { name: 'images' }));
    await expect(init(root)).rejects.toMatchObject({ code: 'LG_ERR_MODEL_INPUT', message: expect.stringContaining('input "images" is not in the graph') });
  });

  it('names the output a decoder needs when the graph lacks it', async () => {
    const root = rootWithPackage((m) => Object.assign(m.decode as object, { output: 'probabilities' }));
    await expect(init(root)).rejects.toMatchObject({ code: 'LG_ERR_MODEL_OUTPUT', message: expect.stringContaining('output "probabilities" is not in the graph') });
  });

  it('refuses a class count that does not fit the output', async () => {
    const root = rootWithPackage((m) => (m.labels = ['ok', 'defect', 'burr']));
    await expect(init(root)).rejects.toMatchObject({ code: 'LG_ERR_MODEL_OUTPUT', message: expect.stringContaining('3 labels') });
  });

  it('refuses a model file that is not the one model.json names by sha256', async () => {
    const root = rootWithPackage(() => undefined, (b) => Buffer.concat([b, Buffer.from([0])]));
    await expect(init(root)).rejects.toMatchObject({ code: 'LG_ERR_MODEL_HASH' });
  });

  it('refuses a manifest that fails its schema, naming the field', async () => {
    const root = rootWithPackage((m) => Object.assign(m.input as object, { resize: { mode: 'squash' } }));
    await expect(init(root)).rejects.toMatchObject({ code: 'LG_ERR_MODEL_MANIFEST', message: expect.stringContaining('input.resize') });
  });

  it('refuses a corrupt model file that the manifest matches, as a load error', async () => {
    const root = rootWithPackage(() => undefined);
    const dir = path.join(root, 'models/casting-cls/1');
    const broken = readFileSync(path.join(dir, 'model.onnx')).subarray(0, 4000);
    writeFileSync(path.join(dir, 'model.onnx'), broken);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as { sha256: string };
    manifest.sha256 = (await import('node:crypto')).createHash('sha256').update(broken).digest('hex');
    writeFileSync(path.join(dir, 'model.json'), JSON.stringify(manifest));
    await expect(init(root)).rejects.toMatchObject({ code: 'LG_ERR_MODEL_LOAD' });
  });

  it('stops a station whose decoder does not fit the model task before the first frame', async () => {
    const dir = scratch('lg-task-');
    const file = path.join(dir, 'station.yaml');
    writeFileSync(
      file,
      readFileSync(path.join(ROOT, 'stations/casting.yaml'), 'utf8')
        .replace('station:\n', `station:\n  root: ${ROOT}\n`)
        .replace('core/classify-decode@1', 'core/yolo-decode@1')
        .replace(/sinks:[\s\S]*$/, 'history: false\n'),
    );
    const station = new Station(await compileStationFile(file, builtinRegistry()), silentLog);
    const err = await station.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LinegateErrors);
    const first = (err as LinegateErrors).errors[0]!;
    expect(first).toMatchObject({ code: 'LG_ERR_STATION_INCOMPATIBLE', step: 'classify' });
    expect(first.message).toContain('model/output(task=classification,decode=classification)');
    expect(first.message).toContain('model/output(task=detection,decode=yolo)');
    await station.close();
  });
});

describe('core/onnx-model@1 at work', () => {
  it('runs the casting model on a real photo and tags the part with the model that judged it', async () => {
    const stage = await onnxModel.init(onnxModel.manifest.config.parse({ model: 'models/casting-cls/1' }), contextFor(new AbortController().signal));
    try {
      const gray = await decodedPart();
      const part = { ...gray, image: { ...gray.image!, data: Uint8Array.from({ length: 300 * 300 }, (_, i) => gray.image!.data[i * 3]!), channels: 1 as const, colorOrder: 'GRAY' as const } };
      const out = await stage.run(part, contextFor(new AbortController().signal));
      expect(out.outputs!.logits!.dims).toEqual([1, 2]);
      expect(out.model).toMatchObject({ name: 'casting-cls', version: '1', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    } finally {
      await stage.close?.();
    }
  });

  it('cuts a large image into tiles, runs them, and gives one output row per tile', async () => {
    const root = rootWithPackage(() => undefined);
    const stage = await onnxModel.init(onnxModel.manifest.config.parse({ model: 'models/casting-cls/1', tiling: { overlap: 20 } }), contextFor(new AbortController().signal, root));
    try {
      const big = { kind: 'raw' as const, data: new Uint8Array(700 * 400).fill(128), width: 700, height: 400, channels: 1 as const, colorOrder: 'GRAY' as const };
      const out = await stage.run({ frame: (await decodedPart()).frame, image: big }, contextFor(new AbortController().signal));
      expect(out.outputs!.logits!.dims).toEqual([6, 2]); // 3 x 2 tiles of 300 px
      expect(out.modelOutput!.transforms.map((t) => [t.region.x, t.region.y])).toEqual([[0, 0], [200, 0], [400, 0], [0, 100], [200, 100], [400, 100]]);
    } finally {
      await stage.close?.();
    }
  });

  it("tiles with model.json's input.tiling when the station says nothing (a model trained on tiles), and with the station's overlap when it does", async () => {
    const root = rootWithPackage((m) => Object.assign(m.input as object, { tiling: { overlap: 20 } }));
    const big = { kind: 'raw' as const, data: new Uint8Array(700 * 400).fill(128), width: 700, height: 400, channels: 1 as const, colorOrder: 'GRAY' as const };
    const origins = async (config: Record<string, unknown>): Promise<number[][]> => {
      const stage = await onnxModel.init(onnxModel.manifest.config.parse({ model: 'models/casting-cls/1', warmup: false, ...config }), contextFor(new AbortController().signal, root));
      try {
        const out = await stage.run({ frame: (await decodedPart()).frame, image: big }, contextFor(new AbortController().signal));
        return out.modelOutput!.transforms.map((t) => [t.region.x, t.region.y]);
      } finally {
        await stage.close?.();
      }
    };
    expect(await origins({})).toEqual([[0, 0], [200, 0], [400, 0], [0, 100], [200, 100], [400, 100]]);
    expect(await origins({ tiling: { overlap: 150 } })).toEqual([[0, 0], [133, 0], [267, 0], [400, 0], [0, 100], [133, 100], [267, 100], [400, 100]]);
  });

  it('refuses before the first part an overlap that leaves no step between tiles, in check and at start (it once failed every part)', async () => {
    const root = rootWithPackage(() => undefined);
    const config = onnxModel.manifest.config.parse({ model: 'models/casting-cls/1', tiling: { overlap: 300 } });
    const want = { code: 'LG_ERR_STATION_STEP_CONFIG', message: expect.stringContaining("300 px leaves no step between the model's 300x300 tiles") };
    await expect(onnxModel.init(config, contextFor(new AbortController().signal, root))).rejects.toMatchObject(want);
    expect(await onnxModel.manifest.verify!(config, contextFor(new AbortController().signal, root))).toEqual([expect.objectContaining(want)]);
    const inManifest = rootWithPackage((m) => Object.assign(m.input as object, { tiling: { overlap: 300 } }));
    await expect(init(inManifest)).rejects.toMatchObject({ code: 'LG_ERR_MODEL_MANIFEST', message: expect.stringContaining('input.tiling.overlap') });
  });
});


describe('core/onnx-model@1 refuses an image too small to judge', () => {
  const grey = (width: number, height: number) => ({ kind: 'raw' as const, data: new Uint8Array(width * height).fill(128), width, height, channels: 1 as const, colorOrder: 'GRAY' as const });
  const runOn = async (config: Record<string, unknown>, width: number, height: number, root?: string) => {
    const stage = await onnxModel.init(onnxModel.manifest.config.parse({ model: 'models/casting-cls/1', warmup: false, ...config }), contextFor(new AbortController().signal, root));
    try {
      return await stage.run({ frame: { ...(await decodedPart()).frame, ref: '/cam/part-7.png' }, image: grey(width, height) }, { ...contextFor(new AbortController().signal), step: 'model' });
    } finally {
      await stage.close?.();
    }
  };

  it('gives a 1x1 image LG_ERR_IMAGE_TOO_SMALL (906) naming the image, its size and the default minimum (an eighth of 300, rounded up)', async () => {
    await expect(runOn({}, 1, 1)).rejects.toMatchObject({
      code: 'LG_ERR_IMAGE_TOO_SMALL',
      rejectCode: 906,
      step: 'model',
      message: 'image /cam/part-7.png is 1x1 pixels, below the 38x38 the model needs to judge a part',
    });
  });

  it('judges an image of exactly the default minimum, and refuses one a pixel short on either side', async () => {
    expect((await runOn({}, 38, 38)).outputs!.logits!.dims).toEqual([1, 2]);
    await expect(runOn({}, 37, 38)).rejects.toMatchObject({ code: 'LG_ERR_IMAGE_TOO_SMALL', message: expect.stringContaining('is 37x38 pixels') });
    await expect(runOn({}, 300, 37)).rejects.toMatchObject({ code: 'LG_ERR_IMAGE_TOO_SMALL', message: expect.stringContaining('is 300x37 pixels') });
  });

  it('checks the ROI it will judge, not the whole image, and says so', async () => {
    await expect(runOn({ roi: { x: 10, y: 20, width: 30, height: 200 } }, 300, 300)).rejects.toMatchObject({
      code: 'LG_ERR_IMAGE_TOO_SMALL',
      message: 'image /cam/part-7.png (ROI 30x200+10+20 of its 300x300) is 30x200 pixels, below the 38x38 the model needs to judge a part',
    });
    // an ROI that fits on paper but is cut short by the image's edge is judged by what is left of it
    await expect(runOn({ roi: { x: 280, y: 0, width: 100, height: 100 } }, 300, 300)).rejects.toMatchObject({ code: 'LG_ERR_IMAGE_TOO_SMALL', message: expect.stringContaining('is 20x100 pixels') });
    expect((await runOn({ roi: { x: 0, y: 0, width: 40, height: 40 } }, 300, 300)).outputs!.logits!.dims).toEqual([1, 2]);
  });

  it('refuses a region too small to tile, since each tile would be that region enlarged', async () => {
    await expect(runOn({ tiling: { overlap: 8 } }, 20, 400)).rejects.toMatchObject({ code: 'LG_ERR_IMAGE_TOO_SMALL', message: expect.stringContaining('is 20x400 pixels') });
  });

  it("takes the minimum from model.json's input.minSourceSize: {1, 1} lets a 1x1 image through, a larger one raises the bar", async () => {
    const loose = rootWithPackage((m) => Object.assign(m.input as object, { minSourceSize: { width: 1, height: 1 } }));
    expect((await runOn({}, 1, 1, loose)).outputs!.logits!.dims).toEqual([1, 2]);
    const strict = rootWithPackage((m) => Object.assign(m.input as object, { minSourceSize: { width: 300, height: 150 } }));
    await expect(runOn({}, 299, 299, strict)).rejects.toMatchObject({ code: 'LG_ERR_IMAGE_TOO_SMALL', message: expect.stringContaining('below the 300x150') });
    expect((await runOn({}, 300, 150, strict)).outputs!.logits!.dims).toEqual([1, 2]);
  });

  it('refuses a minSourceSize of 0 pixels in model.json, naming the field', async () => {
    const root = rootWithPackage((m) => Object.assign(m.input as object, { minSourceSize: { width: 0, height: 10 } }));
    await expect(init(root)).rejects.toMatchObject({ code: 'LG_ERR_MODEL_MANIFEST', message: expect.stringContaining('input.minSourceSize.width') });
  });
});
