import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import type { InspectionResult } from '../runtime/result.js';
import { Histogram } from '../runtime/observability/histogram.js';
import { loadModelPackage, type ModelPackage } from '../plugins/model-onnx/manifest.js';
import { dropPrefix } from '../test/helpers/redis.js';
import { ROOT, stationFrom } from '../test/helpers/station.js';
import { castingStages } from '../test/helpers/casting.js';

const r2 = (v: number): number => Math.round(v * 100) / 100;
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** The Redis the queue sink uses (LINEGATE_REDIS_URL, as core/bullmq@1 reads it), and what a bench leaves there. */
export const benchRedis = {
  url: (): string => process.env.LINEGATE_REDIS_URL ?? 'redis://127.0.0.1:6379',
  /** A prefix of this run's own: its queues are found and removed by it, whatever else uses the Redis. */
  prefix: (): string => `lgbench-${randomUUID().slice(0, 8)}`,
  /** Jobs waiting on `<prefix>:<queue>` (no worker runs during a bench). */
  async waiting(prefix: string, queue: string): Promise<number> {
    const redis = new Redis(benchRedis.url(), { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      return await redis.llen(`${prefix}:${queue}:wait`);
    } finally {
      redis.disconnect();
    }
  },
  /** Removes every key under the prefix. */
  drop: (prefix: string): Promise<void> => dropPrefix(prefix, benchRedis.url()),
};

export interface PipelineOptions {
  /** Model package folder, relative to the repository. */
  readonly model: string;
  /** Its images, relative to the repository (sub-folders are labels). */
  readonly fixtures: string;
  /** Frames per round through each of the two. */
  readonly frames: number;
  /** Rounds, raw and pipeline alternating, so that both see the same machine (other processes, clocks, caches). */
  readonly rounds: number;
  readonly maxInFlight: number;
}

/** Throughput, latency, and CPU per frame (every thread of the process: main, libuv, libvips, onnxruntime). */
interface Figures {
  fps: number;
  p50: number;
  p99: number;
  cpuMs: number;
}

function imageFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((n) => {
      const p = path.join(dir, n);
      return statSync(p).isDirectory() ? imageFiles(p) : /\.(jpe?g|png|bmp)$/i.test(n) ? [p] : [];
    });
}

const cpuMsSince = (c0: NodeJS.CpuUsage): number => {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};

interface RawLoop {
  run(n: number): Promise<Figures>;
  /** p(defect) per file, for the parity check against the station. */
  scores(): Promise<Map<string, number>>;
  close(): Promise<void>;
}

/**
 * The floor: sharp and onnxruntime called directly, one image after another,
 * the images already in memory. Decode, colour and resize (as model.json
 * says) in one sharp pipeline, normalise, run, softmax. The same onnxruntime
 * options as the station's defaults (intra-op 0, inter-op 1, no spinning).
 * What it does not do: read files, keep a cycle budget, build a result record,
 * write JSONL, spool (fsync) or queue anything, archive images, sample.
 */
async function rawLoop(pkg: ModelPackage, files: readonly string[]): Promise<RawLoop> {
  const { manifest } = pkg;
  const spec = manifest.input;
  const decode = manifest.decode;
  if (decode.kind !== 'classification' || spec.resize.mode !== 'stretch' || spec.layout !== 'NCHW') {
    throw new Error(`the raw loop does classification models with stretch resize and NCHW only; ${manifest.name} is not one`);
  }
  // As core/image-decode@1 sets it: one libvips thread per image.
  sharp.concurrency(1);
  const session = await ort.InferenceSession.create(pkg.onnxFile, {
    intraOpNumThreads: 0,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
  const bytes = files.map((f) => readFileSync(f));
  const { width: W, height: H, channels: C } = spec;
  const tables = Array.from({ length: C }, (_, c) => {
    const mean = spec.mean[spec.mean.length === 1 ? 0 : c]!;
    const std = spec.std[spec.std.length === 1 ? 0 : c]!;
    return Float32Array.from({ length: 256 }, (_, v) => (v * spec.scale - mean) / std);
  });
  const input = new Float32Array(W * H * C);
  const good = decode.goodLabels.map((l) => manifest.labels.indexOf(l));

  const one = async (data: Buffer): Promise<number> => {
    const img = sharp(data, { failOn: 'error' }).rotate();
    const px = await (C === 1 ? img.toColourspace('b-w') : img.removeAlpha().toColourspace('srgb'))
      .resize({ width: W, height: H, fit: 'fill', kernel: spec.kernel })
      .raw()
      .toBuffer();
    for (let c = 0; c < C; c++) {
      const t = tables[c]!;
      const src = C === 3 && spec.color === 'BGR' ? 2 - c : c;
      for (let i = 0, p = src; i < W * H; i++, p += C) input[c * W * H + i] = t[px[p]!]!;
    }
    const out = await session.run({ [spec.name]: new ort.Tensor('float32', input, [1, C, H, W]) });
    const logits = out[decode.output]!.data as Float32Array;
    const max = Math.max(...logits);
    const e = Array.from(logits, (v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    return 1 - good.reduce((a, g) => a + e[g]! / sum, 0);
  };

  return {
    async run(n) {
      const h = new Histogram();
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await one(bytes[i % bytes.length]!);
        h.record(performance.now() - t);
      }
      const seconds = (performance.now() - t0) / 1000;
      return { fps: n / seconds, p50: h.quantile(0.5), p99: h.quantile(0.99), cpuMs: cpuMsSince(c0) / n };
    },
    async scores() {
      const m = new Map<string, number>();
      for (let i = 0; i < files.length; i++) m.set(files[i]!, await one(bytes[i]!));
      return m;
    },
    close: () => session.release(),
  };
}

interface PipelineRound extends Figures {
  /** The run summary's own figure: first frame to the end of the drain, the background sinks' last writes not included. */
  loopFps: number;
  /** Sum of the stage timings per part: the inspection, without the wait for a slot. */
  inspectP50: number;
  /** Parts that did not end as a pass or fail delivered everywhere. */
  errors: number;
  jsonlLines: number;
  deliveries: Record<string, number>;
  scores: Map<string, number>;
}

/**
 * The whole station: folder source (each frame read from disk), decode, model,
 * decoder, rules, and the JSONL and queue sinks as a station file has them by
 * default (fsync'd spool, archive of the sampled images, sampling). `fps` runs
 * from the first frame to run()'s end, which includes the drain and the sinks'
 * flush: a station cannot go faster than its slowest sink for long (the lane
 * and the durable-sink back-pressure are bounded).
 */
async function pipelineRound(o: PipelineOptions, maxInFlight: number, dir: string, prefix: string, thread: 'worker' | 'main' = 'worker'): Promise<PipelineRound> {
  const station = stationFrom({
    station: { id: 'bench-pipeline', maxInFlight, cycleBudgetMs: 5000 },
    // The comparison is with the JSONL and queue sinks; the history (on by default) is measured apart.
    history: false,
    source: { name: 'cam', use: 'core/folder-source@1', config: { dir: o.fixtures, loop: true } },
    stages: castingStages(o.model, { thread }),
    sinks: [
      { name: 'results', use: 'core/jsonl-sink@1', config: { dir: path.join(dir, 'results') } },
      {
        name: 'queue',
        use: 'core/bullmq@1',
        config: { prefix, spool: { dir: path.join(dir, 'spool') }, archive: { dir: path.join(dir, 'archive') }, sampling: { goodLabels: ['ok_front'] } },
      },
    ],
  });
  const inspect = new Histogram();
  const scores = new Map<string, number>();
  const deliveries: Record<string, number> = {};
  station.on('result', (r: InspectionResult) => {
    inspect.record(Object.values(r.timings.stages).reduce((a, b) => a + b, 0));
    if (!scores.has(r.source.ref) && r.scores.defect !== undefined) scores.set(r.source.ref, r.scores.defect);
  });
  station.on('delivery', (e) => {
    const k = `${e.sink}:${e.delivery.status}`;
    deliveries[k] = (deliveries[k] ?? 0) + 1;
  });
  try {
    await station.start();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const s = await station.run({ maxFrames: o.frames });
    const seconds = (performance.now() - t0) / 1000;
    const cpuMs = cpuMsSince(c0) / o.frames;
    const out = path.join(dir, 'results');
    const jsonlLines = readdirSync(out).reduce((n, f) => n + readFileSync(path.join(out, f), 'utf8').split('\n').filter(Boolean).length, 0);
    return {
      fps: o.frames / seconds,
      loopFps: s.fps,
      p50: s.latencyMs.p50,
      p99: s.latencyMs.p99,
      cpuMs,
      inspectP50: inspect.quantile(0.5),
      errors: s.error + s.undelivered + s.dropped,
      jsonlLines,
      deliveries,
      scores,
    };
  } finally {
    await station.close();
  }
}

/**
 * The same model on the same images, bare (sharp + onnxruntime in a loop) and
 * through the whole station with its sinks on, in one process, alternating
 * round by round; also the station with one part in flight, to show what the
 * second slot buys, and with the model on the event loop (thread: main), to show
 * what its own thread buys. Writes bench/results/pipeline-vs-raw.json with the medians
 * over the rounds; the line printed adds every round, CPU per frame and checks.
 */
export async function benchPipelineVsRaw(o: PipelineOptions): Promise<Record<string, unknown>> {
  const pkg = await loadModelPackage(path.join(ROOT, o.model));
  const files = imageFiles(path.join(ROOT, o.fixtures));
  const raw = await rawLoop(pkg, files);
  const root = mkdtempSync(path.join(os.tmpdir(), 'lg-bench-pipeline-'));
  const prefix = benchRedis.prefix();
  const warm = Math.min(100, o.frames);
  const rounds: { raw: Figures; pipeline: PipelineRound; oneInFlight: PipelineRound; mainThread: PipelineRound }[] = [];
  const loadBefore = os.loadavg()[0]!;
  let parity = Infinity;
  let queued = 0;
  try {
    await raw.run(warm); // warm-up: onnxruntime's first runs, sharp's first decodes, the JIT
    await pipelineRound({ ...o, frames: warm }, o.maxInFlight, path.join(root, 'warm'), prefix);
    for (let i = 0; i < o.rounds; i++) {
      // Which goes first alternates: a drift in the machine's load then lands on both.
      const first = i % 2 === 0 ? await raw.run(o.frames) : undefined;
      const pipeline = await pipelineRound(o, o.maxInFlight, path.join(root, `round-${i}`), prefix);
      const oneInFlight = await pipelineRound(o, 1, path.join(root, `round-${i}-1`), prefix);
      // The model on the event loop, as onnxruntime-node runs it by itself: what running it on its own thread buys.
      const mainThread = await pipelineRound(o, o.maxInFlight, path.join(root, `round-${i}-main`), prefix, 'main');
      rounds.push({ raw: first ?? (await raw.run(o.frames)), pipeline, oneInFlight, mainThread });
    }
    const rawScores = await raw.scores();
    const seen = rounds.at(-1)!.pipeline.scores;
    parity = Math.max(...files.map((f) => Math.abs((seen.get(f) ?? NaN) - rawScores.get(f)!)));
    queued = await benchRedis.waiting(prefix, 'results');
  } finally {
    await raw.close();
    await benchRedis.drop(prefix);
    rmSync(root, { recursive: true, force: true });
  }
  const ratios = rounds.map((r) => r.pipeline.fps / r.raw.fps);
  const result = {
    model: `${pkg.manifest.name}@${pkg.manifest.version}`,
    frames: o.frames,
    rawFps: r2(median(rounds.map((r) => r.raw.fps))),
    pipelineFps: r2(median(rounds.map((r) => r.pipeline.fps))),
    ratio: r2(median(ratios)),
    rawP50Ms: r2(median(rounds.map((r) => r.raw.p50))),
    pipelineP50Ms: r2(median(rounds.map((r) => r.pipeline.p50))),
    pipelineP99Ms: r2(median(rounds.map((r) => r.pipeline.p99))),
  };
  mkdirSync(path.join(import.meta.dirname, 'results'), { recursive: true });
  writeFileSync(path.join(import.meta.dirname, 'results', 'pipeline-vs-raw.json'), `${JSON.stringify(result)}\n`);
  const cpuRaw = median(rounds.map((r) => r.raw.cpuMs));
  const cpuPipeline = median(rounds.map((r) => r.pipeline.cpuMs));
  return {
    ...result,
    rounds: o.rounds,
    maxInFlight: o.maxInFlight,
    spread: { ratioMin: r2(Math.min(...ratios)), ratioMax: r2(Math.max(...ratios)), ratios: ratios.map(r2) },
    // CPU per frame does not depend much on what else the machine runs: the budget the ratio has to fit in.
    cpuMsPerFrame: { raw: r2(cpuRaw), pipeline: r2(cpuPipeline), pipelineOneInFlight: r2(median(rounds.map((r) => r.oneInFlight.cpuMs))) },
    ratios: {
      pipelineVsRawCpuPerFrame: r2(cpuPipeline / cpuRaw),
      twoVsOneInFlightFps: r2(median(rounds.map((r) => r.pipeline.fps / r.oneInFlight.fps))),
      modelThreadVsEventLoopFps: r2(median(rounds.map((r) => r.pipeline.fps / r.mainThread.fps))),
      loopVsRawFps: r2(median(rounds.map((r) => r.pipeline.loopFps / r.raw.fps))),
    },
    perRound: rounds.map((r) => ({
      raw: { fps: r2(r.raw.fps), p50Ms: r2(r.raw.p50), cpuMs: r2(r.raw.cpuMs) },
      pipeline: { fps: r2(r.pipeline.fps), loopFps: r2(r.pipeline.loopFps), p50Ms: r2(r.pipeline.p50), p99Ms: r2(r.pipeline.p99), inspectP50Ms: r2(r.pipeline.inspectP50), cpuMs: r2(r.pipeline.cpuMs) },
      oneInFlight: { fps: r2(r.oneInFlight.fps), loopFps: r2(r.oneInFlight.loopFps), p50Ms: r2(r.oneInFlight.p50) },
      modelOnEventLoop: { fps: r2(r.mainThread.fps), p50Ms: r2(r.mainThread.p50), p99Ms: r2(r.mainThread.p99), cpuMs: r2(r.mainThread.cpuMs) },
    })),
    checks: {
      // Same model, same images, same answer: the largest difference in p(defect) between the two.
      maxScoreDiff: Number(parity.toExponential(2)),
      errors: rounds.reduce((n, r) => n + r.pipeline.errors + r.oneInFlight.errors + r.mainThread.errors, 0),
      jsonlLinesPerRound: median(rounds.map((r) => r.pipeline.jsonlLines)),
      queuedResults: { expected: warm + 3 * o.rounds * o.frames, found: queued },
      deliveries: rounds.at(-1)!.pipeline.deliveries,
    },
    machine: { cpus: os.availableParallelism(), loadAvg1m: { before: r2(loadBefore), after: r2(os.loadavg()[0]!) } },
    target: { ratio: 1.4, met: result.ratio >= 1.4 },
  };
}
