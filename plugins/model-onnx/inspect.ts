import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import { ModelManifest } from './manifest.js';
import { isProtoError, metadataOf, outputOps, readGraphNodes, readOnnxModelInfo, type GraphNode, type OnnxModelInfo } from './onnx-proto.js';
import { tryPyLiteral, type PyValue } from './pyliteral.js';
import { readGraph, sha256File, type GraphTensor } from './session.js';

/**
 * `linegate models inspect`: what an ONNX file says about itself (graph
 * inputs and outputs as onnxruntime reports them, opsets, producer, metadata)
 * and a DRAFT model.json for it, with the list of things a person must
 * confirm before the draft is trusted on a line.
 */

export interface Inspection extends Pick<OnnxModelInfo, 'irVersion' | 'producerName' | 'producerVersion' | 'domain' | 'modelVersion' | 'docString' | 'opsetImports'> {
  /** Absolute path of the .onnx file. */
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
  /** ONNX metadata_props, as stored (text; Ultralytics writes Python reprs). */
  readonly metadata: Readonly<Record<string, string>>;
  readonly inputs: readonly GraphTensor[];
  readonly outputs: readonly GraphTensor[];
  /** Per output, the op that computes its values (through reshapes and identities): how a Softmax ending the graph is found. */
  readonly outputOps: Readonly<Record<string, string>>;
}

/** The size of a model file; LG_ERR_MODEL_FILE when it is missing, unreadable or not a file. */
export async function modelFileSize(file: string): Promise<number> {
  const abs = path.resolve(file);
  try {
    const s = await stat(abs);
    if (!s.isFile()) throw new Error('not a regular file');
    return s.size;
  } catch (e) {
    throw new LinegateError('LG_ERR_MODEL_FILE', [abs, messageOf(e)], { cause: e });
  }
}

/** Reads an ONNX file: its top-level protobuf fields, then the graph's inputs and outputs through onnxruntime. */
export async function inspectModel(file: string): Promise<Inspection> {
  const abs = path.resolve(file);
  const bytes = await modelFileSize(abs);
  let info: OnnxModelInfo;
  let nodes: GraphNode[];
  try {
    info = readOnnxModelInfo(abs);
    nodes = info.graphBytes === 0 ? [] : readGraphNodes(abs);
  } catch (e) {
    if (isProtoError(e)) throw new LinegateError('LG_ERR_MODEL_LOAD', [abs, `not an ONNX model (${messageOf(e)})`], { cause: e });
    throw new LinegateError('LG_ERR_MODEL_FILE', [abs, messageOf(e)], { cause: e });
  }
  if (info.graphBytes === 0) throw new LinegateError('LG_ERR_MODEL_LOAD', [abs, 'not an ONNX model (the protobuf holds no graph)']);
  const graph = await readGraph(abs);
  let sha256: string;
  try {
    sha256 = await sha256File(abs);
  } catch (e) {
    throw new LinegateError('LG_ERR_MODEL_FILE', [abs, messageOf(e)], { cause: e });
  }
  const { metadataProps: _props, graphBytes: _graph, ...top } = info;
  return { file: abs, bytes, sha256, ...top, metadata: metadataOf(info), inputs: graph.inputs, outputs: graph.outputs, outputOps: outputOps(nodes, graph.outputs.map((o) => o.name)) };
}

/** What model.json looks like before zod fills in defaults. */
export type ManifestDraft = z.input<typeof ModelManifest>;

export interface DraftOptions {
  /** Input width and height, for graphs whose spatial axes are dynamic (`--size WxH`). */
  readonly size?: { readonly width: number; readonly height: number };
  /** Path of the .onnx file relative to the folder model.json goes in (default `model.onnx`). */
  readonly file?: string;
  /** ISO date for provenance.date (default today, UTC). */
  readonly today?: string;
}

export interface Draft {
  /** Which contract the model was recognised by, in words (`Ultralytics YOLO detect`). */
  readonly recognisedAs: string;
  readonly manifest: ManifestDraft;
  /** Each value only the training code can settle, what the draft assumed and why; also the first lines of `review`. */
  readonly assumptions: readonly Assumption[];
  /** What a person must confirm before the draft is used on a line. */
  readonly review: readonly string[];
}

export interface Assumption {
  /** The model.json field (`input.kernel`), or fields (`input.scale/mean/std`). */
  readonly field: string;
  /** What the draft wrote there, in words. */
  readonly value: string;
  readonly why: string;
}

const fmt = (shape: readonly (number | string)[]): string => `[${shape.join(',')}]`;
const tensorList = (ts: readonly GraphTensor[]): string => ts.map((t) => `${t.name} ${t.type}${fmt(t.shape)}`).join(', ');
const staticDim = (d: number | string | undefined): number | undefined => (typeof d === 'number' && d > 0 ? d : undefined);

const unsupported = (i: Inspection, why: string): LinegateError => new LinegateError('LG_ERR_MODEL_UNSUPPORTED', [i.file, why]);
const usage = (message: string): LinegateError => new LinegateError('LG_ERR_CLI_USAGE', [message]);

/** `{0: 'a', 1: 'b'}` (or `['a', 'b']`) -> labels in class-index order; undefined when it is not that. */
function namesOf(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const v = tryPyLiteral(text);
  if (Array.isArray(v)) return v.every((x) => typeof x === 'string' && x !== '') ? (v as string[]) : undefined;
  if (v === null || typeof v !== 'object') return undefined;
  const entries = Object.entries(v);
  if (!entries.every(([k, x]) => /^(0|[1-9]\d*)$/.test(k) && typeof x === 'string' && x !== '')) return undefined;
  const sorted = entries.map(([k, x]) => [Number(k), x as string] as const).sort((a, b) => a[0] - b[0]);
  // Class indices must be 0..n-1: a gap would shift every later label.
  return sorted.every(([k], idx) => k === idx) ? sorted.map(([, x]) => x) : undefined;
}

/** Ultralytics imgsz: `[h, w]` or one int. */
function imgszOf(text: string | undefined): { width: number; height: number } | undefined {
  if (text === undefined) return undefined;
  const v: PyValue | undefined = tryPyLiteral(text);
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n > 0;
  if (ok(v)) return { width: v, height: v };
  if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1])) return { height: v[0], width: v[1] };
  return undefined;
}

interface InputPlan {
  readonly name: string;
  readonly layout: 'NCHW' | 'NHWC';
  readonly channels: 1 | 3;
  readonly width: number;
  readonly height: number;
}

/**
 * The graph's one image input: layout, channels and size. Spatial size comes
 * from the graph when it is fixed there, else from --size, else from the
 * model's own metadata (Ultralytics imgsz).
 */
function planInput(i: Inspection, opts: DraftOptions, review: string[], hint?: { size?: { width: number; height: number }; channels?: number; layout?: 'NCHW' }): InputPlan {
  if (i.inputs.length !== 1) throw unsupported(i, `linegate feeds one image tensor; the graph has ${i.inputs.length} inputs: ${tensorList(i.inputs)}`);
  const t = i.inputs[0]!;
  if (t.type !== 'float32') throw unsupported(i, `input ${t.name} is ${t.type}; linegate feeds float32`);
  if (t.shape.length !== 4) throw unsupported(i, `input ${t.name}${fmt(t.shape)} is not an image batch (N, C, H, W) or (N, H, W, C)`);
  const is13 = (d: number | string | undefined): boolean => d === 1 || d === 3;
  const layout: 'NCHW' | 'NHWC' = hint?.layout ?? (!is13(t.shape[1]) && is13(t.shape[3]) ? 'NHWC' : 'NCHW');
  const [cAxis, hAxis, wAxis] = layout === 'NCHW' ? [1, 2, 3] : [3, 1, 2];
  const c = staticDim(t.shape[cAxis]) ?? hint?.channels ?? 3;
  if (c !== 1 && c !== 3) throw unsupported(i, `input ${t.name}${fmt(t.shape)} has ${c} channels; linegate feeds 1 (grey) or 3 (colour)`);
  if (layout === 'NHWC') review.push(`input.layout: the graph's input ${t.name}${fmt(t.shape)} looks channels-last, so the draft says NHWC: confirm`);
  const gh = staticDim(t.shape[hAxis]);
  const gw = staticDim(t.shape[wAxis]);
  const pick = (axis: 'width' | 'height', fromGraph: number | undefined): number => {
    const given = opts.size?.[axis];
    if (fromGraph !== undefined) {
      if (given !== undefined && given !== fromGraph) throw usage(`--size gives ${axis} ${given} but the graph's input ${t.name}${fmt(t.shape)} is fixed at ${fromGraph}`);
      return fromGraph;
    }
    const v = given ?? hint?.size?.[axis];
    if (v === undefined) {
      throw usage(`the graph's input ${t.name}${fmt(t.shape)} has a dynamic ${axis} and the model does not say its size: give the size it was trained at with --size WxH`);
    }
    return v;
  };
  const width = pick('width', gw);
  const height = pick('height', gh);
  if (hint?.size !== undefined && gw !== undefined && gh !== undefined && (hint.size.width !== gw || hint.size.height !== gh)) {
    review.push(`input size: the metadata says ${hint.size.width}x${hint.size.height} but the graph is fixed at ${gw}x${gh}; the draft follows the graph`);
  }
  if (gw === undefined || gh === undefined) {
    review.push(`input size ${width}x${height}: the graph accepts other sizes; confirm this is the size the model was trained and validated at`);
  }
  return { name: t.name, layout, channels: c, width, height };
}

/** `models/<name>/<version>/x.onnx` -> name and version; `models/<name>/x.onnx` -> name; else the file stem. */
export function nameAndVersion(file: string): { name: string; version: string; fromPath: boolean } {
  const parts = path.resolve(file).split(path.sep);
  const n = parts.length;
  const versionOk = (v: string | undefined): v is string => v !== undefined && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v);
  const sanitise = (s: string): string =>
    s
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^[^a-z0-9]+/, '')
      .replace(/-+$/, '') || 'model';
  if (parts[n - 4] === 'models' && parts[n - 3] !== undefined && versionOk(parts[n - 2])) return { name: sanitise(parts[n - 3]!), version: parts[n - 2]!, fromPath: true };
  if (parts[n - 3] === 'models' && parts[n - 2] !== undefined) return { name: sanitise(parts[n - 2]!), version: '1', fromPath: false };
  return { name: sanitise(path.basename(file).replace(/\.onnx$/i, '')), version: '1', fromPath: false };
}

const LETTERBOX_NOTE =
  'letterbox with pad 114 is what Ultralytics predict does; if the line images were prepared differently for validation (a plain resize, a crop), change it. For square images letterbox and stretch are the same';

/**
 * The choices a draft makes that only the training code can settle, each with
 * why the draft made it. Every drafted model.json gets one review note per
 * choice that applies, in this order, so none is silently trusted.
 */
const CHOICES = ['input.kernel', 'input.resize', 'input.resize.anchor', 'input.color', 'input.scale/mean/std', 'decode.activation', 'labels', 'decode.goodLabels'] as const;
type Choice = (typeof CHOICES)[number];
type Assumed = Partial<Record<Choice, string>>;

interface Family {
  readonly recognisedAs: string;
  readonly task: ManifestDraft['task'];
  readonly input: ManifestDraft['input'];
  readonly decode: ManifestDraft['decode'];
  readonly labels: string[];
  readonly assumed: Assumed;
}

/** torchvision, PIL, OpenCV and Ultralytics resize training images bilinearly; lanczos3 (libvips' own default) was the trap of issue 12. */
const KERNEL = 'linear' as const;
const BILINEAR_WHY = 'bilinear is how torchvision (transforms.Resize), PIL, OpenCV (INTER_LINEAR) and Ultralytics resize training images';
const CENTER_ANCHOR_WHY = 'letterboxed images are centred (Ultralytics LetterBox, pad split over both sides); a PaddleOCR-style model pads right and bottom only: anchor top-left';

/** Output names that say the values are already probabilities. */
const PROBABILITY_NAME = /^(probs?|probabilit(y|ies)|output_probs?|softmax.*|sigmoid.*)$|[_.-]probs?$/i;
/** Ops after which values are not probabilities: a name saying otherwise deserves a second look. */
const LINEAR_OPS = new Set(['Gemm', 'MatMul', 'Add', 'Conv', 'ConvTranspose', 'Sub', 'LogSoftmax']);

/** Why output `name` already holds probabilities (a Softmax or Sigmoid computes it, or its name says so), or undefined. */
export function probabilityEvidence(i: Pick<Inspection, 'outputOps'>, name: string): string | undefined {
  const op = i.outputOps[name];
  if (op === 'Softmax' || op === 'Sigmoid') return `the graph computes output ${name} with a ${op}`;
  if (!PROBABILITY_NAME.test(name)) return undefined;
  const doubt = op !== undefined && LINEAR_OPS.has(op) ? `, although the graph's last op on it is ${op}, which gives logits: check which is right` : op === undefined ? '' : ` (the graph's last op on it is ${op})`;
  return `the output is named ${name}${doubt}`;
}

function ultralytics(i: Inspection, opts: DraftOptions, review: string[]): Family {
  const md = i.metadata;
  const task = md.task!;
  const what = `Ultralytics YOLO ${task}`;
  if (task === 'segment') {
    throw unsupported(i, `it is an Ultralytics YOLO segmentation model (outputs ${tensorList(i.outputs)}); linegate's decoders do not read YOLO-seg mask prototypes yet. Export the detection variant, or wait for a YOLO-seg decoder`);
  }
  if (task !== 'detect' && task !== 'classify') {
    throw unsupported(i, `it is an Ultralytics YOLO ${task} model; linegate decodes Ultralytics detect and classify models only (outputs ${tensorList(i.outputs)})`);
  }
  const out = i.outputs[0];
  if (out === undefined) throw unsupported(i, 'the graph has no outputs');
  if (i.outputs.length > 1) review.push(`decode.output: the graph has ${i.outputs.length} outputs (${tensorList(i.outputs)}); the draft decodes the first`);
  const ch = tryPyLiteral(md.channels ?? '');
  const channels = typeof ch === 'number' ? ch : undefined;
  const input = planInput(i, opts, review, { ...(imgszOf(md.imgsz) === undefined ? {} : { size: imgszOf(md.imgsz)! }), ...(channels === undefined ? {} : { channels }), layout: 'NCHW' });
  const color = input.channels === 1 ? 'GRAY' : 'RGB';
  let labels = namesOf(md.names);
  const placeholders = labels === undefined;
  const classAxis = task === 'detect' ? staticDim(out.shape[1]) : staticDim(out.shape.at(-1));
  const end2end = task === 'detect' && (out.shape[2] === 6 || tryPyLiteral(md.end2end ?? '') === true);
  if (labels === undefined) {
    const nc = task === 'detect' ? (end2end || classAxis === undefined ? undefined : classAxis - 4) : classAxis;
    if (nc === undefined || nc < 1) throw unsupported(i, `its metadata has no readable class names (names = ${JSON.stringify(md.names ?? null)}) and the output ${out.name}${fmt(out.shape)} does not give the class count`);
    labels = Array.from({ length: nc }, (_, k) => `class${k}`);
  }
  const assumed: Assumed = {
    labels: placeholders
      ? `the metadata has no readable names; class0..class${labels.length - 1} are placeholders: give the real names in class-index order`
      : `${labels.length} from the model's names metadata, in class-index order; the station's rules must use these names`,
    'input.kernel': `${BILINEAR_WHY} (Ultralytics: cv2.resize INTER_LINEAR)`,
    'input.color': input.channels === 1 ? 'the graph takes one channel' : 'Ultralytics converts OpenCV\'s BGR to RGB before the model',
    'input.scale/mean/std': 'Ultralytics divides by 255 and normalises no further',
  };
  if (task === 'detect') {
    const format = end2end ? 'end2end' : 'xywh-scores';
    if (out.shape.length !== 3) throw unsupported(i, `the detect output ${out.name}${fmt(out.shape)} should have 3 axes`);
    if (format === 'xywh-scores' && classAxis !== undefined && classAxis !== 4 + labels.length) {
      throw unsupported(i, `the detect output ${out.name}${fmt(out.shape)} has ${classAxis} values per candidate, not 4 + ${labels.length} classes (a segmentation or pose head?)`);
    }
    review.push(`decode: ${format === 'end2end' ? 'end2end output (N, 300, 6): NMS is in the graph' : 'raw (1, 4+nc, N) output: the decoder runs class-wise NMS'}; scoreThreshold 0.25, iouThreshold 0.45 and maxDetections 300 are Ultralytics' predict defaults: set them from validation`);
    return {
      recognisedAs: `${what} (${format}, ${labels.length} classes)`,
      task: 'detection',
      input: { ...input, color, resize: { mode: 'letterbox', pad: 114, anchor: 'center' }, kernel: KERNEL, scale: 1 / 255, mean: [0], std: [1] },
      decode: { kind: 'yolo', output: out.name, format, scoreThreshold: 0.25, iouThreshold: 0.45, maxDetections: 300 },
      labels,
      assumed: { ...assumed, 'input.resize': LETTERBOX_NOTE, 'input.resize.anchor': CENTER_ANCHOR_WHY },
    };
  }
  const named = labels.find((l) => /^(good|ok|pass|normal|no[-_ ]?defects?|non[-_ ]?defective)$/i.test(l));
  const good = named ?? labels[0]!;
  return {
    recognisedAs: `${what} (${labels.length} classes)`,
    task: 'classification',
    input: { ...input, color, resize: { mode: 'center-crop' }, kernel: KERNEL, scale: 1 / 255, mean: [0], std: [1] },
    decode: { kind: 'classification', output: out.name, activation: 'none', goodLabels: [good] },
    labels,
    assumed: {
      ...assumed,
      'input.kernel': `${BILINEAR_WHY} (Ultralytics classify_transforms: torchvision Resize, bilinear)`,
      'input.resize': 'Ultralytics classify resizes the short side and centre-crops (classify_transforms): confirm it matches how the model was validated',
      'decode.activation': 'Ultralytics classify exports probabilities (a Softmax ends the graph): confirm the output rows sum to 1',
      'decode.goodLabels': `a guess (${named === undefined ? 'the first label' : 'the label whose name means good'}): list every label that means a good part`,
    },
  };
}

function anomalib(i: Inspection, opts: DraftOptions, review: string[]): Family {
  const names = new Set(i.outputs.map((o) => o.name));
  if (!names.has('pred_score')) {
    throw unsupported(i, `it looks like an anomalib model but has no pred_score output (outputs ${tensorList(i.outputs)}); core/anomaly-decode@1 decides on the image score`);
  }
  const input = planInput(i, opts, review);
  const decode: ManifestDraft['decode'] = {
    kind: 'anomaly',
    score: 'pred_score',
    ...(names.has('anomaly_map') ? { map: 'anomaly_map' } : {}),
    ...(names.has('pred_label') ? { label: 'pred_label' } : {}),
    ...(names.has('pred_mask') ? { mask: 'pred_mask' } : {}),
    threshold: 0.5,
    minAreaPx: 4,
  };
  if (!names.has('anomaly_map')) {
    review.push('decode.map: the graph has no anomaly_map, so parts get an image score but no defect regions');
  }
  review.push("decode.threshold 0.5: anomalib normalises scores so the validation threshold sits at 0.5; lower it for fewer escapes (the threshold was chosen by F1, not for zero escapes)");
  return {
    recognisedAs: `anomalib anomaly model (outputs ${[...names].join(', ')})`,
    task: 'anomaly',
    input: { ...input, color: input.channels === 1 ? 'GRAY' : 'RGB', resize: { mode: 'stretch' }, kernel: KERNEL, scale: 1 / 255, mean: [0], std: [1] },
    decode,
    labels: ['anomaly'],
    assumed: {
      'input.kernel': `${BILINEAR_WHY} (anomalib: torchvision Resize)`,
      'input.resize': 'anomalib resizes the whole image to its input size (no crop) unless the export says otherwise: confirm against the export',
      'input.color': input.channels === 1 ? 'the graph takes one channel' : 'anomalib reads images as RGB',
      'input.scale/mean/std': 'anomalib bakes its ImageNet normalisation into the graph, so the draft feeds 0-1 values: confirm against the export',
    },
  };
}

function generic(i: Inspection, opts: DraftOptions, review: string[]): Family {
  const refuse = (why: string): LinegateError =>
    unsupported(i, `${why}. linegate drafts a manifest for Ultralytics detect/classify, anomalib, or a graph with one output shaped (N, C) (classification) or (N, C, H, W) (segmentation); its outputs: ${tensorList(i.outputs)}`);
  if (i.outputs.length !== 1) throw refuse(`the graph has ${i.outputs.length} outputs and no metadata saying what they are`);
  const out = i.outputs[0]!;
  const classes = staticDim(out.shape[1]);
  if (out.shape.length !== 2 && out.shape.length !== 4) throw refuse(`its output ${out.name}${fmt(out.shape)} is neither (N, C) nor (N, C, H, W)`);
  if (classes === undefined) throw refuse(`its output ${out.name}${fmt(out.shape)} has a dynamic class axis`);
  const input = planInput(i, opts, review);
  const labels = Array.from({ length: classes }, (_, k) => `class${k}`);
  const base = { ...input, color: input.channels === 1 ? ('GRAY' as const) : ('RGB' as const), resize: { mode: 'stretch' as const }, kernel: KERNEL, scale: 1 / 255, mean: [0], std: [1] };
  const probabilities = probabilityEvidence(i, out.name);
  const lastOp = i.outputOps[out.name];
  const logitsWhy = `nothing says output ${out.name} holds probabilities (${lastOp === undefined ? 'no node computes it' : `the graph's last op on it is ${lastOp}`}, and its name is not probs/softmax/sigmoid), so the draft treats it as logits; use none if the values are already probabilities`;
  const assumed: Assumed = {
    labels: `class0..class${classes - 1} are placeholders: give the real names in class-index order`,
    'input.kernel': `${BILINEAR_WHY}; a model trained on images resized another way (lanczos, area, nearest) wants that kernel`,
    'input.resize': 'a guess: stretch the whole image to the input size; if training resized the short side and centre-cropped (torchvision Resize + CenterCrop), use center-crop; if it padded, letterbox',
    'input.color': input.channels === 1 ? 'the graph takes one channel' : 'a guess: PIL and torchvision load RGB; a model trained on cv2.imread images wants BGR',
    'input.scale/mean/std': 'a guess: 0-1 values (scale 1/255, mean 0, std 1); a torchvision-trained model usually wants ImageNet mean [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225]: use what the training script used',
  };
  if (out.shape.length === 2) {
    return {
      recognisedAs: `a classifier (one output ${out.name}${fmt(out.shape)})`,
      task: 'classification',
      input: base,
      decode: { kind: 'classification', output: out.name, activation: probabilities === undefined ? 'softmax' : 'none', goodLabels: ['class0'] },
      labels,
      assumed: {
        ...assumed,
        'decode.activation': probabilities === undefined ? logitsWhy : `${probabilities}, so the scores are used as they are (a softmax over probabilities would squash them towards 1/${classes})`,
        // torchvision's ImageFolder numbers classes by sorted folder name: "def_front" comes before "ok_front",
        // so the first class is as often the defect as the good one, and a wrong guess inverts every verdict.
        'decode.goodLabels':
          "a guess (the first class): list every label that means a good part; with torchvision's ImageFolder the classes are the training folders in sorted order (class0 is the first folder name), so check which one is good",
      },
    };
  }
  const activation = probabilities !== undefined ? 'none' : classes === 1 ? 'sigmoid' : 'softmax';
  if (classes > 1) review.push('decode.backgroundLabel class0: a guess: name the class that means background (never a defect)');
  return {
    recognisedAs: `a segmentation model (one output ${out.name}${fmt(out.shape)})`,
    task: 'segmentation',
    input: base,
    decode: { kind: 'segmentation', output: out.name, activation, ...(classes > 1 ? { backgroundLabel: 'class0' } : {}), minAreaPx: 4 },
    labels,
    assumed: { ...assumed, 'decode.activation': probabilities === undefined ? logitsWhy : `${probabilities}, so the map is used as it is` },
  };
}

/**
 * A DRAFT model.json for an inspected model, recognised as Ultralytics
 * (metadata `task`), anomalib (outputs pred_score / anomaly_map), or a plain
 * one-output classifier or segmenter. Throws LG_ERR_MODEL_UNSUPPORTED for
 * anything linegate cannot decode and LG_ERR_CLI_USAGE when the input size
 * is needed (`--size`). The draft always passes ModelManifest.
 */
export function draftManifest(i: Inspection, opts: DraftOptions = {}): Draft {
  const review: string[] = [];
  const md = i.metadata;
  const outNames = new Set(i.outputs.map((o) => o.name));
  const family = md.task !== undefined ? ultralytics(i, opts, review) : outNames.has('pred_score') || outNames.has('anomaly_map') ? anomalib(i, opts, review) : generic(i, opts, review);
  const { name, version, fromPath } = nameAndVersion(i.file);
  const producer = `${i.producerName} ${i.producerVersion}`.trim();
  const isUltralytics = md.author === 'Ultralytics' || md.task !== undefined;
  const source = [isUltralytics && md.version !== undefined ? `Ultralytics ${md.version}` : '', producer === '' ? '' : `ONNX producer ${producer}`].filter(Boolean).join('; ') || 'unknown producer';
  const description = (md.description ?? i.docString).trim();
  const license = md.license?.trim();
  review.push('thresholds: default 0.5 and no per-label thresholds are placeholders: choose them on held-out validation data');
  review.push('provenance.data and provenance.script are TODO: say what the model was trained and validated on, and the script that made it');
  if (md.date !== undefined) review.push(`provenance.date is today; the metadata says the model was exported ${md.date}`);
  if (!fromPath) review.push(`name "${name}" and version "${version}" are guessed from the file's path: set them, and keep the package in models/<name>/<version>/`);
  const file = opts.file ?? 'model.onnx';
  if (file !== 'model.onnx') review.push(`file "${file}": model packages keep model.onnx beside model.json; station paths may not leave models/`);
  const manifest: ManifestDraft = {
    name,
    version,
    task: family.task,
    ...(description === '' ? {} : { description }),
    file,
    sha256: i.sha256,
    input: family.input,
    decode: family.decode,
    labels: family.labels,
    thresholds: { default: 0.5, perLabel: {} },
    provenance: {
      data: 'TODO: what the model was trained and validated on',
      script: 'TODO',
      date: opts.today ?? new Date().toISOString().slice(0, 10),
      metrics: {},
      ...(license === undefined || license === '' ? {} : { license }),
      source,
    },
  };
  const parsed = ModelManifest.safeParse(manifest);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw unsupported(i, `the drafted model.json does not validate (${issue.path.join('.') || '(top level)'}: ${issue.message})`);
  }
  const assumptions = assumptionsOf(family);
  return { recognisedAs: family.recognisedAs, manifest, assumptions, review: [...assumptions.map((a) => `${a.field} ${a.value}: ${a.why}; confirm against the training code`), ...review] };
}

const list = (xs: readonly (string | number)[]): string => `[${xs.join(', ')}]`;

/** The family's assumptions in CHOICES order, each with the value the draft wrote. */
function assumptionsOf(f: Family): Assumption[] {
  const input = f.input;
  const decode = f.decode;
  const valueOf = (c: Choice): string | undefined => {
    switch (c) {
      case 'input.kernel':
        return input.kernel;
      case 'input.resize':
        return input.resize.mode === 'letterbox' ? `letterbox (pad ${input.resize.pad ?? 114})` : input.resize.mode;
      case 'input.resize.anchor':
        return input.resize.mode === 'letterbox' ? (input.resize.anchor ?? 'center') : undefined;
      case 'input.color':
        return input.color;
      case 'input.scale/mean/std':
        return `scale ${input.scale === 1 / 255 ? '1/255' : String(input.scale)}, mean ${list(input.mean ?? [0])}, std ${list(input.std ?? [1])}`;
      case 'decode.activation':
        return decode.kind === 'classification' || decode.kind === 'segmentation' ? (decode.activation ?? 'softmax') : undefined;
      case 'labels':
        return list(f.labels);
      case 'decode.goodLabels':
        return decode.kind === 'classification' ? list(decode.goodLabels) : undefined;
    }
  };
  return CHOICES.flatMap((field) => {
    const why = f.assumed[field];
    const value = valueOf(field);
    return why === undefined || value === undefined ? [] : [{ field, value, why }];
  });
}

const mb = (n: number): string => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MB` : `${(n / 1024).toFixed(1)} kB`);

/** The human-readable report `linegate models inspect` prints. */
export function formatInspection(i: Inspection, draft?: { draft: Draft; out: string }): string {
  const lines: string[] = [];
  const pad = (rows: readonly (readonly [string, string])[], indent = '  '): void => {
    const w = Math.max(0, ...rows.map(([k]) => k.length));
    for (const [k, v] of rows) lines.push(`${indent}${k.padEnd(w)}  ${v}`);
  };
  lines.push(`model     ${i.file}`);
  lines.push(`size      ${mb(i.bytes)}, sha256 ${i.sha256}`);
  lines.push(`onnx      ir_version ${i.irVersion}, opsets ${i.opsetImports.map((o) => `${o.domain === '' ? 'ai.onnx' : o.domain} ${o.version}`).join(', ') || '(none)'}`);
  lines.push(`producer  ${`${i.producerName} ${i.producerVersion}`.trim() || '(not set)'}`);
  if (i.domain !== '') lines.push(`domain    ${i.domain}`);
  if (i.modelVersion !== 0) lines.push(`model_version ${i.modelVersion}`);
  if (i.docString !== '') lines.push(`doc       ${i.docString.split('\n')[0]}`);
  lines.push('inputs');
  pad(i.inputs.map((t) => [t.name, `${t.type} ${fmt(t.shape)}`]));
  lines.push('outputs');
  pad(i.outputs.map((t) => [t.name, `${t.type} ${fmt(t.shape)}`]));
  const md = Object.entries(i.metadata);
  lines.push(md.length === 0 ? 'metadata  (none)' : 'metadata');
  pad(md.map(([k, v]) => [k, v.replace(/\n/g, '\\n')]));
  if (draft !== undefined) {
    const m = draft.draft.manifest;
    lines.push(`recognised as ${draft.draft.recognisedAs}`);
    lines.push(`draft     ${draft.out}: ${m.name}@${m.version}, task ${m.task}, decode ${m.decode.kind}${m.decode.kind === 'yolo' ? ` ${m.decode.format}` : ''}, input ${m.input.width}x${m.input.height} ${m.input.color} ${m.input.resize.mode} ${m.input.kernel ?? ''}, ${m.labels.length} label(s)`);
    // On stdout too, not only in the log: these are the values that silently cost accuracy when wrong.
    lines.push('assumed   (confirm each against the training code)');
    pad(draft.draft.assumptions.map((a) => [a.field, `${a.value}: ${a.why}`]));
  }
  return `${lines.join('\n')}\n`;
}
