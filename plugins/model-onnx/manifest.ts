import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { deepFreeze } from '../../runtime/config/freeze.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';

/**
 * model.json: what a model package promises about its ONNX file. It is the
 * single source of the preprocessing, decoding and default thresholds, so the
 * station cannot disagree with the model about resize or normalisation.
 */

const Resize = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('stretch') }).strict(),
  z
    .object({
      mode: z.literal('letterbox'),
      pad: z.number().int().min(0).max(255).default(114),
      anchor: z
        .enum(['center', 'top-left'])
        .default('center')
        .describe('where the resized image sits: center (Ultralytics; pad split over both sides) or top-left (PaddleOCR; pad right and bottom only)'),
    })
    .strict(),
  z.object({ mode: z.literal('center-crop') }).strict(),
]);

export const InputSpec = z
  .object({
    name: z.string().min(1).describe('input tensor name in the graph'),
    layout: z.enum(['NCHW', 'NHWC']).default('NCHW'),
    width: z.number().int().min(1).max(16_384),
    height: z.number().int().min(1).max(16_384),
    channels: z.union([z.literal(1), z.literal(3)]),
    color: z.enum(['RGB', 'BGR', 'GRAY']),
    resize: Resize,
    kernel: z
      .enum(['nearest', 'linear', 'cubic', 'lanczos3'])
      .default('linear')
      .describe('resampling kernel (sharp/libvips); default linear, the bilinear resize torchvision, PIL, OpenCV and Ultralytics train with. It must be the kernel the training images were resized with'),
    scale: z.number().positive().default(1 / 255).describe('pixel value (0-255) x scale, then (- mean) / std'),
    mean: z.array(z.number()).min(1).max(3).default([0]),
    std: z.array(z.number().positive()).min(1).max(3).default([1]),
    minSourceSize: z
      .object({ width: z.number().int().min(1).max(65_535), height: z.number().int().min(1).max(65_535) })
      .strict()
      .optional()
      .describe('smallest source region (image or ROI) the model can judge; absent: an eighth of width and height, rounded up'),
    tiling: z
      .object({ overlap: z.number().int().min(0).max(4096) })
      .strict()
      .optional()
      .describe("trained on input-size tiles of the source at its own scale: the model step tiles every image with this overlap (as its `tiling` config), unless the station's config sets another overlap"),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.tiling !== undefined && s.tiling.overlap >= Math.min(s.width, s.height)) {
      ctx.addIssue({ code: 'custom', path: ['tiling', 'overlap'], message: `an overlap of ${s.tiling.overlap} px leaves no step between ${s.width}x${s.height} tiles` });
    }
    if ((s.color === 'GRAY') !== (s.channels === 1)) ctx.addIssue({ code: 'custom', path: ['color'], message: `color ${s.color} does not fit ${s.channels} channel(s)` });
    for (const key of ['mean', 'std'] as const) {
      if (s[key].length !== 1 && s[key].length !== s.channels) ctx.addIssue({ code: 'custom', path: [key], message: `give 1 or ${s.channels} values` });
    }
  });
export type InputSpec = z.infer<typeof InputSpec>;

/** How many times a model may enlarge a source region when the package does not say: beyond 8x it invents the part it judges. */
const MAX_UPSCALE = 8;

/**
 * The smallest source region the model can judge: `input.minSourceSize`, or an
 * eighth of the input per side, rounded up. With tiling the tile is the
 * model's input, so the same minimum holds for the region being tiled.
 */
export function minSourceSize(spec: InputSpec): { readonly width: number; readonly height: number } {
  return spec.minSourceSize ?? { width: Math.ceil(spec.width / MAX_UPSCALE), height: Math.ceil(spec.height / MAX_UPSCALE) };
}

const Activation = z.enum(['softmax', 'sigmoid', 'none']).describe('none: the graph already outputs probabilities');

export const DecodeSpec = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('classification'),
      output: z.string().min(1),
      activation: Activation.default('softmax'),
      goodLabels: z.array(z.string()).min(1).describe('labels that mean a good part; the defect score is 1 - their probability'),
    })
    .strict(),
  z
    .object({
      kind: z.literal('yolo'),
      output: z.string().min(1).default('output0'),
      format: z.enum(['xywh-scores', 'end2end']).describe('xywh-scores: (1, 4+nc, N), needs NMS; end2end: (1, N, 6) x1 y1 x2 y2 score class'),
      scoreThreshold: z.number().min(0).max(1).default(0.25),
      iouThreshold: z.number().min(0).max(1).default(0.45),
      maxDetections: z.number().int().min(1).max(10_000).default(300),
    })
    .strict(),
  z
    .object({
      kind: z.literal('segmentation'),
      output: z.string().min(1),
      activation: Activation.default('softmax'),
      backgroundLabel: z.string().optional().describe('label of the background class, never a defect'),
      minAreaPx: z.number().int().min(1).default(4).describe('smaller blobs are noise'),
    })
    .strict(),
  z
    .object({
      kind: z.literal('anomaly'),
      score: z.string().default('pred_score').describe('image score output, normalised so the cut is at `threshold`'),
      map: z.string().optional().describe('anomaly map output (N, 1, H, W); without it, no regions, only the image score'),
      label: z.string().optional(),
      mask: z.string().optional(),
      threshold: z.number().min(0).max(1).default(0.5).describe('anomalib normalises scores so the trained threshold sits at 0.5'),
      minAreaPx: z.number().int().min(1).default(4),
    })
    .strict(),
]);
export type DecodeSpec = z.infer<typeof DecodeSpec>;

export const ModelManifest = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/),
    version: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/),
    task: z.enum(['classification', 'detection', 'segmentation', 'anomaly']),
    description: z.string().optional(),
    file: z.string().default('model.onnx'),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    input: InputSpec,
    decode: DecodeSpec,
    labels: z.array(z.string().min(1)).min(1),
    thresholds: z
      .object({
        default: z.number().min(0).max(1).describe('default minimum score for a defect'),
        perLabel: z.record(z.string(), z.number().min(0).max(1)).default({}),
      })
      .strict(),
    provenance: z
      .object({
        data: z.string().min(1).describe('what it was trained and validated on'),
        script: z.string().min(1).describe('the script that made it, relative to the package'),
        date: z.string().min(1),
        metrics: z.record(z.string(), z.union([z.number(), z.string()])).default({}),
        license: z.string().optional(),
        source: z.string().optional(),
      })
      .strict(),
  })
  .strict()
  .superRefine((m, ctx) => {
    const taskOf = { classification: 'classification', yolo: 'detection', segmentation: 'segmentation', anomaly: 'anomaly' } as const;
    if (taskOf[m.decode.kind] !== m.task) ctx.addIssue({ code: 'custom', path: ['decode', 'kind'], message: `decoder ${m.decode.kind} does not fit task ${m.task}` });
    if (m.decode.kind === 'classification') {
      for (const g of m.decode.goodLabels) if (!m.labels.includes(g)) ctx.addIssue({ code: 'custom', path: ['decode', 'goodLabels'], message: `"${g}" is not one of the labels` });
    }
  });
export type ModelManifest = z.infer<typeof ModelManifest>;

export interface ModelPackage {
  readonly dir: string;
  readonly onnxFile: string;
  readonly manifest: ModelManifest;
}

/** Reads and validates `<dir>/model.json`; the result is frozen. */
export async function loadModelPackage(dir: string): Promise<ModelPackage> {
  const file = path.join(dir, 'model.json');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new LinegateError('LG_ERR_MODEL_MANIFEST', [file, messageOf(e)], { cause: e });
  }
  const parsed = ModelManifest.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new LinegateError('LG_ERR_MODEL_MANIFEST', [file, `${issue.path.join('.') || '(top level)'}: ${issue.message}`], { path: issue.path.join('.') });
  }
  return deepFreeze({ dir, onnxFile: path.join(dir, parsed.data.file), manifest: parsed.data });
}
