import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { draftManifest, inspectModel, nameAndVersion, type Inspection } from '../../plugins/model-onnx/inspect.js';
import { ModelManifest } from '../../plugins/model-onnx/manifest.js';
import { metadataOf, parseModelProto, readOnnxModelInfo } from '../../plugins/model-onnx/onnx-proto.js';
import { parsePyLiteral } from '../../plugins/model-onnx/pyliteral.js';
import { checkGraph } from '../../plugins/model-onnx/session.js';
import { linegate } from '../helpers/cli.js';
import { scratch } from '../helpers/scratch.js';

/** The third-party detector beside the repository (../shared), as every data-set test finds it; absent, its tests skip and say so. */
const NEU = path.resolve(import.meta.dirname, '../../../shared/models/neu-yolov8n-int8/model.onnx');
const NEU_NAMES = ['crazing', 'inclusion', 'patches', 'pitted_surface', 'rolled-in_scale', 'scratches'];

const tmpDirs: string[] = [];
const tempDir = (): string => {
  const d = scratch('lg-inspect-');
  tmpDirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/* ---- a protobuf writer, just enough to build ONNX files byte by byte ---- */

const varint = (n: number | bigint): number[] => {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
};
const tag = (field: number, wire: number): number[] => varint((field << 3) | wire);
const vf = (field: number, n: number | bigint): number[] => [...tag(field, 0), ...varint(n)];
const lf = (field: number, payload: string | number[]): number[] => {
  const b = typeof payload === 'string' ? [...Buffer.from(payload, 'utf8')] : payload;
  return [...tag(field, 2), ...varint(b.length), ...b];
};

type Dims = readonly (number | string)[];
const FLOAT = 1;
/** ValueInfoProto { name, type { tensor_type { elem_type FLOAT, shape { dim* } } } } */
const valueInfo = (name: string, dims: Dims): number[] => [
  ...lf(1, name),
  ...lf(2, lf(1, [...vf(1, FLOAT), ...lf(2, dims.flatMap((d) => lf(1, typeof d === 'number' ? vf(1, d) : lf(2, d))))])),
];
/** NodeProto with INT / INTS attributes. */
const node = (op: string, inputs: string[], outputs: string[], attrs: Record<string, number | number[]> = {}): number[] => [
  ...inputs.flatMap((i) => lf(1, i)),
  ...outputs.flatMap((o) => lf(2, o)),
  ...lf(3, `${op}_${outputs[0]}`),
  ...lf(4, op),
  ...Object.entries(attrs).flatMap(([k, v]) => lf(5, [...lf(1, k), ...(Array.isArray(v) ? [...v.flatMap((x) => vf(8, x)), ...vf(20, 7)] : [...vf(3, v), ...vf(20, 2)])])),
];

interface Graph {
  inputs: [string, Dims][];
  outputs: [string, Dims][];
  nodes: number[][];
  metadata?: Record<string, string>;
}

/** A real ONNX file onnxruntime can load (opset 13). */
function onnxFile(dir: string, name: string, g: Graph): string {
  const graph = [...g.nodes.flatMap((n) => lf(1, n)), ...lf(2, 'g'), ...g.inputs.flatMap(([n, d]) => lf(11, valueInfo(n, d))), ...g.outputs.flatMap(([n, d]) => lf(12, valueInfo(n, d)))];
  const model = [
    ...vf(1, 8),
    ...lf(2, 'linegate-test'),
    ...lf(3, '0.1'),
    ...lf(7, graph),
    ...lf(8, [...lf(1, ''), ...vf(2, 13)]),
    ...Object.entries(g.metadata ?? {}).flatMap(([k, v]) => lf(14, [...lf(1, k), ...lf(2, v)])),
  ];
  const file = path.join(dir, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, Buffer.from(model));
  return file;
}

const anomalibLike = (dims: Dims, withMap = true): Graph => ({
  inputs: [['input', dims]],
  outputs: [['pred_score', [dims[0]!]], ...(withMap ? ([['anomaly_map', [dims[0]!, 1, dims[2]!, dims[3]!]]] as [string, Dims][]) : [])],
  nodes: [node('ReduceMean', ['input'], ['pred_score'], { axes: [1, 2, 3], keepdims: 0 }), ...(withMap ? [node('ReduceMean', ['input'], ['anomaly_map'], { axes: [1], keepdims: 1 })] : [])],
});

const TODAY = '2026-01-02';
const validates = (m: unknown): void => {
  const r = ModelManifest.safeParse(m);
  expect(r.success, r.success ? '' : JSON.stringify(r.error.issues)).toBe(true);
};

describe('pyliteral: Python reprs as Ultralytics writes its metadata', () => {
  it('reads the NEU names dict and imgsz list', () => {
    expect(parsePyLiteral("{0: 'crazing', 1: 'inclusion', 2: 'patches', 3: 'pitted_surface', 4: 'rolled-in_scale', 5: 'scratches'}")).toEqual({
      '0': 'crazing',
      '1': 'inclusion',
      '2': 'patches',
      '3': 'pitted_surface',
      '4': 'rolled-in_scale',
      '5': 'scratches',
    });
    expect(parsePyLiteral('[640, 640]')).toEqual([640, 640]);
    expect(parsePyLiteral('32')).toBe(32);
  });

  it('reads nested values, tuples, floats, bools and None', () => {
    expect(parsePyLiteral("{'batch': 1, 'half': False, 'nms': True, 'x': None, 'sizes': [(640, 480), (1,), ()], 'lr': 1e-05, 'm': -0.5, 'd': {'k': [1.0, 2.5]},}")).toEqual({
      batch: 1,
      half: false,
      nms: true,
      x: null,
      sizes: [[640, 480], [1], []],
      lr: 1e-5,
      m: -0.5,
      d: { k: [1, 2.5] },
    });
    expect(parsePyLiteral('(7)')).toBe(7);
    expect(parsePyLiteral('{}')).toEqual({});
    expect(parsePyLiteral('  [ ]  ')).toEqual([]);
    expect(parsePyLiteral('inf')).toBe(Infinity);
  });

  it('reads both quote styles and backslash escapes', () => {
    expect(parsePyLiteral(`"rolled-in_scale's"`)).toBe("rolled-in_scale's");
    expect(parsePyLiteral(String.raw`'it\'s a \\ "q" \n\t\x41\u00e9\U0001F600\101'`)).toBe('it\'s a \\ "q" \n\tAé😀A');
    expect(parsePyLiteral(String.raw`'C:\dir'`)).toBe('C:\\dir'); // Python keeps unknown escapes
    expect(parsePyLiteral(String.raw`{0: 'a\'b', 1: "c\"d"}`)).toEqual({ '0': "a'b", '1': 'c"d' });
  });

  it('refuses what is not a literal', () => {
    for (const bad of ['', 'detect', "PosixPath('/x')", '{1, 2}', '[1, 2', "'abc", '1 2', '[1,,2]', "b'x'", '0x10', '1j', '{[1]: 2}', '8.3.241', '2025-12-27T01:39:16', 'true', "{'a' 1}"]) {
      expect(() => parsePyLiteral(bad), bad).toThrow(/not a Python literal/);
    }
  });
});

describe('onnx-proto: the ModelProto top level', () => {
  const bytes = (): Uint8Array =>
    Uint8Array.from([
      ...vf(1, 9), // ir_version
      ...lf(2, 'pytorch'),
      ...lf(3, '2.1.0'),
      ...lf(4, 'ai.acme'),
      ...vf(5, 2 ** 40 + 3), // model_version, a 6-byte varint
      ...lf(6, 'doc ✓'),
      ...lf(7, [0x0a, 0x03, 0x01, 0x02, 0x03, 0xff, 0x00]), // a dummy graph: never parsed
      ...lf(8, [...lf(1, ''), ...vf(2, 17)]),
      ...lf(8, [...lf(1, 'com.microsoft'), ...vf(2, 1)]),
      ...[...tag(9, 5), 1, 2, 3, 4], // unknown fixed32
      ...[...tag(10, 1), 1, 2, 3, 4, 5, 6, 7, 8], // unknown fixed64
      ...vf(11, -1), // unknown negative varint (10 bytes)
      ...lf(14, [...lf(1, 'task'), ...lf(2, 'detect')]),
      ...lf(14, [...lf(1, 'names'), ...lf(2, "{0: 'a', 1: 'b'}")]),
      ...lf(20, [1, 2, 3]), // unknown length-delimited
    ]);

  it('reads every field and skips the graph and unknown fields', () => {
    const info = parseModelProto(bytes());
    expect(info).toEqual({
      irVersion: 9,
      producerName: 'pytorch',
      producerVersion: '2.1.0',
      domain: 'ai.acme',
      modelVersion: 2 ** 40 + 3,
      docString: 'doc ✓',
      opsetImports: [
        { domain: '', version: 17 },
        { domain: 'com.microsoft', version: 1 },
      ],
      metadataProps: [
        { key: 'task', value: 'detect' },
        { key: 'names', value: "{0: 'a', 1: 'b'}" },
      ],
      graphBytes: 7,
    });
    expect(metadataOf(info)).toEqual({ task: 'detect', names: "{0: 'a', 1: 'b'}" });
  });

  it('throws on truncated or invalid data', () => {
    const b = bytes();
    for (const cut of [b.length - 1, b.length - 4, 30, 3]) expect(() => parseModelProto(b.subarray(0, cut)), `cut at ${cut}`).toThrow(/truncated/);
    expect(() => parseModelProto(new Uint8Array())).toThrow(/empty/);
    expect(() => parseModelProto(Buffer.from('hello, not a model'))).toThrow(/wire type/);
    expect(() => parseModelProto(Uint8Array.from([...tag(1, 0), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))).toThrow(/varint/);
    expect(() => parseModelProto(Uint8Array.from([...tag(2, 2), 2, 0xc3, 0x28]))).toThrow(/UTF-8/);
  });

  it('reads a file without loading its graph', () => {
    const file = path.join(tempDir(), 'm.onnx');
    writeFileSync(file, bytes());
    expect(readOnnxModelInfo(file)).toEqual(parseModelProto(bytes()));
  });
});

describe('draftManifest on ONNX graphs built byte by byte', () => {
  it('drafts an anomaly manifest for an anomalib-like graph, and needs --size when H and W are dynamic', async () => {
    const dir = tempDir();
    const fixed = await inspectModel(onnxFile(dir, 'models/acme-padim/4/model.onnx', anomalibLike(['batch', 3, 64, 48])));
    expect(fixed.inputs).toEqual([{ name: 'input', type: 'float32', shape: ['batch', 3, 64, 48] }]);
    expect(fixed.outputs.map((o) => o.name)).toEqual(['pred_score', 'anomaly_map']);
    expect(fixed.opsetImports).toEqual([{ domain: '', version: 13 }]);
    const d = draftManifest(fixed, { today: TODAY });
    validates(d.manifest);
    expect(d.manifest).toMatchObject({
      name: 'acme-padim',
      version: '4',
      task: 'anomaly',
      labels: ['anomaly'],
      input: { name: 'input', width: 48, height: 64, channels: 3, color: 'RGB', scale: 1 / 255, mean: [0], std: [1] },
      decode: { kind: 'anomaly', score: 'pred_score', map: 'anomaly_map', threshold: 0.5, minAreaPx: 4 },
      provenance: { date: TODAY, source: 'ONNX producer linegate-test 0.1' },
    });
    expect(d.manifest.decode).not.toHaveProperty('label');
    const parsed = ModelManifest.parse(d.manifest);
    expect(checkGraph(parsed, fixed)).toEqual({ input: [], output: [] });

    const dynamic = await inspectModel(onnxFile(dir, 'dyn.onnx', anomalibLike(['batch', 3, 'height', 'width'])));
    expect(() => draftManifest(dynamic)).toThrow(expect.objectContaining({ code: 'LG_ERR_CLI_USAGE', message: expect.stringContaining('--size WxH') }));
    const sized = draftManifest(dynamic, { size: { width: 256, height: 128 } });
    validates(sized.manifest);
    expect(sized.manifest.input).toMatchObject({ width: 256, height: 128 });
    expect(sized.manifest.name).toBe('dyn');
    expect(sized.review.join('\n')).toMatch(/256x128/);
    expect(() => draftManifest(fixed, { size: { width: 256, height: 128 } })).toThrow(expect.objectContaining({ code: 'LG_ERR_CLI_USAGE' }));
  });

  it('drafts a classifier for one (N, C) output and a segmenter for one (N, C, H, W) output', async () => {
    const dir = tempDir();
    const cls = await inspectModel(
      onnxFile(dir, 'Cls Net v2.onnx', {
        inputs: [['x', [1, 3, 32, 32]]],
        outputs: [['logits', [1, 3]]],
        nodes: [node('ReduceMean', ['x'], ['logits'], { axes: [2, 3], keepdims: 0 })],
      }),
    );
    const c = draftManifest(cls, { today: TODAY });
    validates(c.manifest);
    expect(c.manifest).toMatchObject({ name: 'cls-net-v2', task: 'classification', labels: ['class0', 'class1', 'class2'], decode: { kind: 'classification', output: 'logits', activation: 'softmax', goodLabels: ['class0'] } });
    expect(c.review.some((r) => /placeholders/.test(r))).toBe(true);

    const yoloCls = await inspectModel(
      onnxFile(dir, 'yolo-cls.onnx', {
        inputs: [['images', [1, 3, 32, 32]]],
        outputs: [['output0', [1, 3]]],
        nodes: [node('ReduceMean', ['images'], ['output0'], { axes: [2, 3], keepdims: 0 })],
        metadata: { author: 'Ultralytics', version: '8.3.0', task: 'classify', imgsz: '[32, 32]', names: "{2: 'crack', 0: 'good', 1: 'pit'}" },
      }),
    );
    const y = draftManifest(yoloCls, { today: TODAY });
    validates(y.manifest);
    expect(y.manifest).toMatchObject({
      task: 'classification',
      labels: ['good', 'pit', 'crack'],
      input: { width: 32, height: 32, resize: { mode: 'center-crop' } },
      decode: { kind: 'classification', output: 'output0', activation: 'none', goodLabels: ['good'] },
      provenance: { source: 'Ultralytics 8.3.0; ONNX producer linegate-test 0.1' },
    });

    const seg = await inspectModel(
      onnxFile(dir, 'seg.onnx', { inputs: [['image', [1, 1, 16, 16]]], outputs: [['mask', [1, 1, 16, 16]]], nodes: [node('Identity', ['image'], ['mask'])] }),
    );
    const s = draftManifest(seg, { today: TODAY });
    validates(s.manifest);
    expect(s.manifest).toMatchObject({ task: 'segmentation', labels: ['class0'], input: { channels: 1, color: 'GRAY' }, decode: { kind: 'segmentation', output: 'mask', activation: 'sigmoid' } });
  });

  it('refuses, with LG_ERR_MODEL_UNSUPPORTED listing the outputs, what no decoder reads', async () => {
    const dir = tempDir();
    const twoOut = await inspectModel(
      onnxFile(dir, 'two.onnx', {
        inputs: [['x', [1, 3, 8, 8]]],
        outputs: [
          ['a', [1, 3, 8, 8]],
          ['b', [1, 3, 8, 8]],
        ],
        nodes: [node('Identity', ['x'], ['a']), node('Identity', ['x'], ['b'])],
      }),
    );
    expect(() => draftManifest(twoOut)).toThrow(expect.objectContaining({ code: 'LG_ERR_MODEL_UNSUPPORTED', message: expect.stringContaining('a float32[1,3,8,8], b float32[1,3,8,8]') }));
    const seg = await inspectModel(
      onnxFile(dir, 'yoloseg.onnx', {
        inputs: [['images', [1, 3, 8, 8]]],
        outputs: [['output0', [1, 3, 8, 8]]],
        nodes: [node('Identity', ['images'], ['output0'])],
        metadata: { task: 'segment', names: "{0: 'a'}", imgsz: '[8, 8]' },
      }),
    );
    expect(() => draftManifest(seg)).toThrow(expect.objectContaining({ code: 'LG_ERR_MODEL_UNSUPPORTED', message: expect.stringMatching(/segmentation model .*not .*YOLO-seg/) }));
  });

  it('names packages after models/<name>/<version>/', () => {
    expect(nameAndVersion('/x/models/casting-cls/3/model.onnx')).toEqual({ name: 'casting-cls', version: '3', fromPath: true });
    expect(nameAndVersion('/work/shared/models/neu-yolov8n-int8/model.onnx')).toEqual({ name: 'neu-yolov8n-int8', version: '1', fromPath: false });
    expect(nameAndVersion('/tmp/x/_My Best!.ONNX')).toEqual({ name: 'my-best', version: '1', fromPath: false });
  });
});

describe.skipIf(!existsSync(NEU))('the real NEU YOLOv8n int8 model (needs ../shared/models/neu-yolov8n-int8)', () => {
  let inspection: Inspection;

  it('reads its Ultralytics metadata and graph', async () => {
    inspection = await inspectModel(NEU);
    expect(inspection.metadata.task).toBe('detect');
    expect(inspection.metadata.imgsz).toBe('[640, 640]');
    expect(parsePyLiteral(inspection.metadata.imgsz!)).toEqual([640, 640]);
    const names = parsePyLiteral(inspection.metadata.names!) as Record<string, string>;
    expect(Object.keys(names).sort((a, b) => Number(a) - Number(b)).map((k) => names[k])).toEqual(NEU_NAMES);
    expect(inspection.inputs).toEqual([{ name: 'images', type: 'float32', shape: [1, 3, 640, 640] }]);
    expect(inspection.outputs).toEqual([{ name: 'output0', type: 'float32', shape: [1, 10, 8400] }]);
    expect(inspection.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('drafts a detection manifest that validates and fits the graph', async () => {
    inspection ??= await inspectModel(NEU);
    const d = draftManifest(inspection, { today: TODAY });
    validates(d.manifest);
    expect(d.manifest).toMatchObject({
      name: 'neu-yolov8n-int8',
      task: 'detection',
      sha256: inspection.sha256,
      labels: NEU_NAMES,
      input: { name: 'images', width: 640, height: 640, channels: 3, color: 'RGB', layout: 'NCHW', resize: { mode: 'letterbox', pad: 114 }, scale: 1 / 255, mean: [0], std: [1] },
      decode: { kind: 'yolo', output: 'output0', format: 'xywh-scores', scoreThreshold: 0.25, iouThreshold: 0.45, maxDetections: 300 },
      thresholds: { default: 0.5, perLabel: {} },
    });
    expect(checkGraph(ModelManifest.parse(d.manifest), inspection)).toEqual({ input: [], output: [] });
    expect(d.review.length).toBeGreaterThan(3);
  });

  it('linegate models inspect: report, draft file, no overwrite without --force, and a non-ONNX file', async () => {
    const dir = tempDir();
    const onnx = path.join(dir, 'models', 'neu-det', '2', 'model.onnx');
    mkdirSync(path.dirname(onnx), { recursive: true });
    copyFileSync(NEU, onnx);
    const first = await linegate(['models', 'inspect', onnx]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('output0  float32 [1,10,8400]');
    expect(first.stdout).toContain('task         detect');
    expect(first.stderr).toMatch(/DRAFT/);
    const written = JSON.parse(readFileSync(path.join(path.dirname(onnx), 'model.json'), 'utf8')) as unknown;
    validates(written);
    expect(written).toMatchObject({ name: 'neu-det', version: '2', file: 'model.onnx', labels: NEU_NAMES });

    const again = await linegate(['models', 'inspect', onnx]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('LG_ERR_CLI_USAGE');
    expect(again.stderr).toContain('--force');

    const forced = await linegate(['models', 'inspect', '--force', '--json', onnx]);
    expect(forced.code, forced.stderr).toBe(0);
    const out = JSON.parse(forced.stdout) as { inspection: Inspection; draft: { manifest: unknown; review: string[] } };
    expect(out.inspection.outputs[0]!.shape).toEqual([1, 10, 8400]);
    expect(out.draft.review.length).toBeGreaterThan(0);

    const bad = path.join(dir, 'bad.onnx');
    writeFileSync(bad, 'this is not a model\n');
    const refused = await linegate(['models', 'inspect', bad]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('LG_ERR_MODEL_LOAD');
    expect(existsSync(path.join(dir, 'model.json'))).toBe(false);
  }, 60_000);
});

describe('linegate models inspect: input errors', () => {
  it('exits 2 with LG_ERR_MODEL_FILE for a missing file and LG_ERR_CLI_USAGE when --size is needed', async () => {
    const dir = tempDir();
    const missing = await linegate(['models', 'inspect', path.join(dir, 'nope.onnx')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('LG_ERR_MODEL_FILE');
    const dyn = onnxFile(dir, 'dyn.onnx', anomalibLike(['batch', 3, 'height', 'width']));
    const needSize = await linegate(['models', 'inspect', dyn]);
    expect(needSize.code).toBe(2);
    expect(needSize.stderr).toMatch(/LG_ERR_CLI_USAGE.*--size WxH/);
    expect(needSize.stdout).toContain('pred_score');
    const sized = await linegate(['models', 'inspect', '--size', '96x64', '--out', path.join(dir, 'out.json'), dyn]);
    expect(sized.code, sized.stderr).toBe(0);
    expect(JSON.parse(readFileSync(path.join(dir, 'out.json'), 'utf8'))).toMatchObject({ task: 'anomaly', file: 'dyn.onnx', input: { width: 96, height: 64 } });
  }, 60_000);
});
