import { z } from 'zod';
import { definePlugin, modelOutputCaps, modelOutputPatch, type Caps, type PluginContext, type RawImage, type StageInstance, type Tensor } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import { loadModelPackage, minSourceSize, type InputSpec, type ModelPackage } from './manifest.js';
import { capsOfModel, modelConstants, modelOutput, type ModelConstants } from './meta.js';
import { normaliseTables, tileRects, toInputPixels, writeTensor, type Rect, type Transform } from './preprocess.js';
import { checkGraph, dynamicBatch, openSession, type ModelSession } from './session.js';
import { describePackage, packageProblems } from './verify.js';

const RectConfig = z.object({ x: z.number().int().min(0), y: z.number().int().min(0), width: z.number().int().min(1), height: z.number().int().min(1) }).strict();

const Config = z
  .object({
    model: z.string().min(1).describe('model package folder, e.g. models/casting-cls/1'),
    intraOpThreads: z.number().int().min(0).max(64).default(0).describe('threads inside one operator; 0 lets onnxruntime choose'),
    interOpThreads: z.number().int().min(0).max(64).default(1),
    threadSpinning: z
      .boolean()
      .default(false)
      .describe("let onnxruntime's threads spin after each run, waiting for the next (faster back-to-back runs, but a core kept busy between parts)"),
    roi: z.union([z.literal('calibration'), RectConfig]).optional().describe("inspect only this rectangle; 'calibration' takes it from calibration/<station>.json"),
    tiling: z
      .object({ overlap: z.number().int().min(0).max(4096).default(32) })
      .strict()
      .optional()
      .describe("cut the image into model-size tiles at full resolution (small defects on large images); a package whose model.json sets input.tiling is tiled with that overlap unless this sets another"),
    warmup: z.boolean().default(true).describe('run once at start so the first part is not slow'),
    thread: z
      .enum(['worker', 'main'])
      .default('worker')
      .describe("'worker': the model runs on threads of its own, so the PLC link and the sinks are served while it runs and one part's decode overlaps another's inference; 'main': on the event loop"),
    sessions: z
      .number()
      .int()
      .min(1)
      .max(16)
      .default(1)
      .describe("sessions side by side, each on its own thread (thread 'worker'); with maxInFlight >= 2 on a small model, 2 sessions of intraOpThreads 1 each use 2 cores better than one session of 2 threads; each holds its own copy of the model in memory"),
  })
  .strict()
  .refine((c) => c.sessions === 1 || c.thread === 'worker', { path: ['sessions'], message: "more than one session needs thread: 'worker'" });

type Config = z.infer<typeof Config>;

/** Clips `r` to the image; an ROI wholly outside it is a configuration error, not something to guess about. */
function clip(r: Rect, image: RawImage, ref: string): Rect {
  const x = Math.max(0, Math.min(r.x, image.width));
  const y = Math.max(0, Math.min(r.y, image.height));
  const w = Math.min(r.x + r.width, image.width) - x;
  const h = Math.min(r.y + r.height, image.height) - y;
  if (w <= 0 || h <= 0) throw new LinegateError('LG_ERR_IMAGE_FORMAT', [ref, `ROI ${r.width}x${r.height}+${r.x}+${r.y} lies outside the ${image.width}x${image.height} image`]);
  return { x, y, width: w, height: h };
}

/**
 * Refuses a region too small to judge: enlarged to the model's input, a few
 * pixels become a smooth blob the model scores as anything at all (a 1x1
 * image was a confident defect), so the part is "not decidable", never judged.
 */
function requireJudgeable(region: Rect, image: RawImage, spec: InputSpec, ref: string, step: string): void {
  const min = minSourceSize(spec);
  if (region.width >= min.width && region.height >= min.height) return;
  const whole = region.width === image.width && region.height === image.height;
  const what = whole ? ref : `${ref} (ROI ${region.width}x${region.height}+${region.x}+${region.y} of its ${image.width}x${image.height})`;
  throw new LinegateError('LG_ERR_IMAGE_TOO_SMALL', [what, region.width, region.height, min.width, min.height], { step });
}

/** Exported for tests that hand it a session of their own (a thread they can make fail). */
export class OnnxModelStage implements StageInstance {
  readonly caps: { produces: readonly Caps[] };
  readonly #pkg: ModelPackage;
  readonly #constants: ModelConstants;
  readonly #session: ModelSession;
  readonly #roi: Rect | undefined;
  readonly #overlap: number | undefined;
  readonly #batch: boolean;
  readonly #tables: Float32Array[];
  readonly #itemSize: number;
  readonly #itemDims: readonly number[];
  /** Single-item input buffers, reused across parts (several may be in flight). */
  readonly #pool: Float32Array[] = [];

  constructor(pkg: ModelPackage, session: ModelSession, roi: Rect | undefined, overlap: number | undefined) {
    this.#pkg = pkg;
    this.#session = session;
    this.#roi = roi;
    this.#overlap = overlap;
    const spec = pkg.manifest.input;
    this.#batch = dynamicBatch(pkg.manifest, session.graph);
    this.#tables = normaliseTables(spec);
    this.#itemSize = spec.width * spec.height * spec.channels;
    this.#itemDims = spec.layout === 'NCHW' ? [spec.channels, spec.height, spec.width] : [spec.height, spec.width, spec.channels];
    this.#constants = modelConstants(pkg.manifest);
    this.caps = { produces: [capsOfModel(pkg.manifest)] };
  }

  async warmup(signal: AbortSignal): Promise<void> {
    await this.#session.run(new Float32Array(this.#itemSize), [1, ...this.#itemDims], signal);
  }

  async run(part: Parameters<StageInstance['run']>[0], ctx: PluginContext): ReturnType<StageInstance['run']> {
    ctx.signal.throwIfAborted();
    const image = part.image;
    if (image === undefined) throw new Error('no decoded image: put core/image-decode@1 before the model');
    const { manifest } = this.#pkg;
    const spec = manifest.input;
    const region = clip(this.#roi ?? { x: 0, y: 0, width: image.width, height: image.height }, image, part.frame.ref);
    requireJudgeable(region, image, spec, part.frame.ref, ctx.step);
    const rects = this.#overlap === undefined ? [region] : tileRects(region, spec.width, spec.height, this.#overlap);
    const transforms: Transform[] = [];
    const n = rects.length;
    const input = n === 1 ? (this.#pool.pop() ?? new Float32Array(this.#itemSize)) : new Float32Array(this.#itemSize * n);
    try {
      for (let i = 0; i < n; i++) {
        const px = await toInputPixels(image, spec, rects[i]);
        writeTensor(px.data, spec, this.#tables, input, i * this.#itemSize);
        transforms.push(px.transform);
      }
      ctx.signal.throwIfAborted();
      const outputs = await this.#infer(input, n, ctx.signal).catch((e: unknown) => {
        throw new LinegateError('LG_ERR_MODEL_RUN', [`${manifest.name}@${manifest.version}`, part.frame.partId, messageOf(e)], { step: ctx.step, cause: e });
      });
      return modelOutputPatch(modelOutput(this.#constants, outputs, transforms, { width: image.width, height: image.height }));
    } finally {
      if (n === 1) this.#pool.push(input);
    }
  }

  /** One run for the whole batch when the graph allows it; else one run per tile, outputs stacked on axis 0. */
  async #infer(input: Float32Array, n: number, signal: AbortSignal): Promise<Record<string, Tensor>> {
    if (n === 1 || this.#batch) return this.#session.run(input, [n, ...this.#itemDims], signal);
    const parts: Record<string, Tensor>[] = [];
    for (let i = 0; i < n; i++) parts.push(await this.#session.run(input.subarray(i * this.#itemSize, (i + 1) * this.#itemSize), [1, ...this.#itemDims], signal));
    return stack(parts);
  }

  async close(): Promise<void> {
    await this.#session.close();
  }
}

function stack(parts: readonly Record<string, Tensor>[]): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const name of Object.keys(parts[0]!)) {
    const items = parts.map((p) => p[name]!);
    const total = items.reduce((s, t) => s + t.data.length, 0);
    const first = items[0]!;
    const data = new (first.data.constructor as new (n: number) => Tensor['data'])(total);
    let offset = 0;
    for (const t of items) {
      (data as Float32Array).set(t.data as Float32Array, offset);
      offset += t.data.length;
    }
    out[name] = { type: first.type, dims: [items.length, ...first.dims.slice(1)], data };
  }
  return out;
}

/** A station's overlap must leave a step between tiles of the model's input size (else no tiles can be laid out). */
function overlapProblem(config: Config, spec: InputSpec, step: string): LinegateError | undefined {
  const overlap = config.tiling?.overlap;
  if (overlap === undefined || overlap < Math.min(spec.width, spec.height)) return undefined;
  return new LinegateError('LG_ERR_STATION_STEP_CONFIG', [step, 'core/onnx-model@1', 'tiling.overlap', `${overlap} px leaves no step between the model's ${spec.width}x${spec.height} tiles`], { step });
}

const noCalibratedRoi = (step: string, stationId: string): LinegateError =>
  new LinegateError('LG_ERR_STATION_STEP_CONFIG', [step, 'core/onnx-model@1', 'roi', `"calibration" but calibration/${stationId}.json gives no roi`], { step });

export const onnxModel = definePlugin({
  manifest: {
    id: 'core/onnx-model@1',
    kind: 'model',
    description: "Runs an ONNX model package: checks its sha256 and its graph against model.json, then preprocesses each image exactly as model.json says (ROI, resize, colour, normalisation, tiling) and runs onnxruntime.",
    config: Config,
    accepts: [{ type: 'image/raw' }],
    // The task and decode kind are the loaded package's: the instance narrows these after init.
    produces: [modelOutputCaps('*', '*')],
    // What init would refuse, found without a session: `linegate check` lists every problem, and `run` refuses before anything connects.
    async verify(config, ctx) {
      const problems = await packageProblems(ctx.resolveAsset(config.model), config.model, ctx.step);
      if (config.roi === 'calibration' && ctx.calibration?.roi === undefined) problems.push(noCalibratedRoi(ctx.step, ctx.stationId));
      if (problems.length === 0) {
        const bad = overlapProblem(config, (await loadModelPackage(ctx.resolveAsset(config.model))).manifest.input, ctx.step);
        if (bad !== undefined) problems.push(bad);
      }
      return problems;
    },
    describeModel: (config, ctx) => describePackage(ctx.resolveAsset(config.model)),
  },
  async init(config: Config, ctx) {
    const dir = ctx.resolveAsset(config.model);
    const pkg = await loadModelPackage(dir);
    const session = await openSession(pkg, { intraOpThreads: config.intraOpThreads, interOpThreads: config.interOpThreads, threadSpinning: config.threadSpinning, thread: config.thread, sessions: config.sessions });
    try {
      const problems = checkGraph(pkg.manifest, session.graph);
      if (problems.input.length > 0) throw new LinegateError('LG_ERR_MODEL_INPUT', [config.model, problems.input.join('; ')], { step: ctx.step });
      if (problems.output.length > 0) throw new LinegateError('LG_ERR_MODEL_OUTPUT', [config.model, problems.output.join('; ')], { step: ctx.step });
      const roi = config.roi === 'calibration' ? ctx.calibration?.roi : config.roi;
      if (config.roi === 'calibration' && roi === undefined) throw noCalibratedRoi(ctx.step, ctx.stationId);
      const bad = overlapProblem(config, pkg.manifest.input, ctx.step);
      if (bad !== undefined) throw bad;
      // A package trained on tiles is tiled whatever the station says: whole, the image would be shrunk to one tile.
      const stage = new OnnxModelStage(pkg, session, roi, config.tiling?.overlap ?? pkg.manifest.input.tiling?.overlap);
      if (config.warmup) await stage.warmup(ctx.signal);
      const m = pkg.manifest;
      ctx.log.info({ model: m.name, version: m.version, task: m.task, input: `${m.input.width}x${m.input.height}x${m.input.channels}`, batch: dynamicBatch(m, session.graph) ? 'dynamic' : 'fixed' }, 'model ready');
      return stage;
    } catch (e) {
      await session.close();
      throw e;
    }
  },
});
