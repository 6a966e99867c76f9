import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { definePlugin, type FrameInput, type Logger, type PluginContext } from '../contract.js';
import { compileStationData } from '../compile/compile.js';
import { loadDataFile } from '../config/load.js';
import { LinegateError } from '../errors.js';
import { builtinRegistry } from '../registry/builtins.js';
import { defectScore, type InspectionResult } from '../result.js';
import { Station } from '../station.js';
import { readTruth } from './annotations.js';
import { listLabelled, yoloNames, type LabelledImage } from './dataset.js';
import { auroc, confusionOf, detection, perClass, percentile, rates, sweep, type Prediction } from './metrics.js';
import type { ReplayMedia, ReplayReport, ReplayRow, TruthBox } from './report.js';

/** Replay's own source: the listed files, in order, each tagged with its path as part id and its class as label. */
const labelledFiles = definePlugin({
  manifest: {
    id: 'replay/labelled-files@1',
    kind: 'source',
    description: 'The images of a labelled folder, in a fixed order (replay only).',
    config: z.object({ files: z.array(z.object({ file: z.string(), abs: z.string(), truth: z.string() }).strict()) }).strict(),
    produces: [{ type: 'image/encoded' }],
  },
  async init(config) {
    return {
      async *frames(run: PluginContext): AsyncGenerator<FrameInput> {
        for (const f of config.files) {
          if (run.signal.aborted) return;
          const format = path.extname(f.abs).slice(1).toLowerCase();
          yield { partId: f.file, ref: f.abs, label: f.truth, image: { kind: 'encoded', data: await readFile(f.abs), format } };
        }
      },
    };
  },
});

export interface ReplayOptions {
  readonly good?: readonly string[];
  /** A model package in place of the station's (compare): the one core/onnx-model@1 step's `model`. */
  readonly model?: string;
  readonly log: Logger;
}

export interface Replay {
  readonly report: ReplayReport;
  readonly media: ReplayMedia;
  /** The full records, in the report's order. */
  readonly results: readonly InspectionResult[];
  readonly stationId: string;
  readonly calibrationFile: string;
}

/** Time limits are for a line, not for a replay on a laptop: a slow machine must not turn parts into errors. */
const REPLAY_BUDGET_MS = 600_000;

interface StepData {
  name?: string;
  use?: string;
  config?: Record<string, unknown>;
}

/**
 * Replays a labelled folder through the station's own steps (same plugins,
 * same config, same calibration, same code path) with the source replaced by
 * the folder and every sink switched off: nothing reaches a PLC or a queue.
 */
export async function replay(stationFile: string, dir: string, o: ReplayOptions): Promise<Replay> {
  const images = await listLabelled(dir, o.good ?? []);
  const loaded = await loadDataFile(stationFile);
  const data = structuredClone(loaded.data) as { station?: Record<string, unknown>; source?: StepData; stages?: StepData[]; sinks?: unknown[] };
  if (data.source === undefined || data.stages === undefined || data.station === undefined) {
    throw new LinegateError('LG_ERR_REPLAY_STATION', [loaded.file, 'it has no station, source or stages']);
  }
  data.source = { name: data.source.name ?? 'source', use: 'replay/labelled-files@1', config: { files: images.map(({ file, abs, truth }) => ({ file, abs, truth })) } };
  data.sinks = [];
  Object.assign(data.station, { cycleBudgetMs: REPLAY_BUDGET_MS, dropPolicy: 'block', queueSize: 2 });
  if (o.model !== undefined) swapModel(data.stages, o.model, loaded.file);
  const registry = builtinRegistry();
  registry.register(labelledFiles, 'replay');
  const plan = await compileStationData(data, loaded.file, registry);
  const station = new Station(plan, o.log);
  const byPart = new Map<string, InspectionResult>();
  station.on('result', (r) => byPart.set(r.partId, r));
  try {
    await station.run();
  } finally {
    await station.close();
  }
  const results = images.map((img) => byPart.get(img.file)).filter((r): r is InspectionResult => r !== undefined);
  const { truths, sizes } = await truthsOf(images, results, o.log);
  const media: ReplayMedia = { dir: path.resolve(dir), truths, sizes };
  const calibrationFile = path.resolve(plan.root, plan.settings.calibration ?? path.join('calibration', `${plan.settings.id}.json`));
  return { report: buildReport(plan.settings.id, dir, o.good ?? [], images, results, truths), media, results, stationId: plan.settings.id, calibrationFile };
}

function swapModel(stages: StepData[], model: string, file: string): void {
  const models = stages.filter((s) => s.use === 'core/onnx-model@1');
  if (models.length !== 1) {
    throw new LinegateError('LG_ERR_REPLAY_STATION', [file, `--model needs exactly one core/onnx-model@1 step; it has ${models.length}${models.length > 1 ? ` (${models.map((m) => m.name).join(', ')})` : ''}`]);
  }
  // Relative to where the command runs, as a path typed on the command line is.
  models[0]!.config = { ...models[0]!.config, model: path.resolve(model) };
}

async function truthsOf(images: readonly LabelledImage[], results: readonly InspectionResult[], log: Logger) {
  const truths = new Map<string, readonly TruthBox[]>();
  const sizes = new Map<string, { width: number; height: number }>();
  const byFile = new Map(results.map((r) => [r.partId, r]));
  const namesCache = new Map<string, string[]>();
  for (const img of images) {
    const r = byFile.get(img.file);
    const size = r?.frame.width !== undefined && r.frame.height !== undefined ? { width: r.frame.width, height: r.frame.height } : undefined;
    if (size !== undefined) sizes.set(img.file, size);
    if (img.annotation === undefined) continue;
    let names = namesCache.get(path.dirname(img.annotation.file));
    if (names === undefined && img.annotation.kind === 'yolo') {
      names = (await yoloNames(path.dirname(img.abs))) ?? (await yoloNames(path.dirname(path.dirname(img.abs)))) ?? [];
      namesCache.set(path.dirname(img.annotation.file), names);
      if (names.length === 0) log.warn({ file: img.annotation.file }, 'YOLO labels without classes.txt or data.yaml: classes are named class<N>');
    }
    truths.set(img.file, await readTruth(img.annotation, { truth: img.truth, ...(size === undefined ? {} : { size }), yoloNames: names ?? [] }));
  }
  return { truths, sizes };
}

/**
 * Per class when the model names the truth classes (a detector trained on
 * them); class-agnostic, under `any`, when none of its labels is a truth
 * class (an anomaly model's `anomaly` against a mask's `crack`).
 */
function detectionOf(truths: ReadonlyMap<string, readonly TruthBox[]>, predictions: readonly Prediction[]) {
  const truthLabels = new Set([...truths.values()].flat().map((t) => t.label));
  if (predictions.some((p) => truthLabels.has(p.label))) return detection(truths, predictions);
  const any = new Map([...truths].map(([f, boxes]) => [f, boxes.map((b) => ({ ...b, label: 'any' }))]));
  return { ...detection(any, predictions.map((p) => ({ ...p, label: 'any' }))), classAgnostic: true };
}

export function buildReport(
  station: string,
  dir: string,
  good: readonly string[],
  images: readonly LabelledImage[],
  results: readonly InspectionResult[],
  truths: ReadonlyMap<string, readonly TruthBox[]>,
): ReplayReport {
  const truthOf = new Map(images.map((i) => [i.file, i.truth]));
  const rows: ReplayRow[] = results.map((r) => ({ file: r.partId, truth: truthOf.get(r.partId) ?? 'good', verdict: r.verdict, score: defectScore(r), defects: r.defects }));
  const c = confusionOf(rows);
  const predictions: Prediction[] = results.flatMap((r) => r.defects.filter((d) => d.box !== undefined).map((d) => ({ file: r.partId, label: d.label, score: d.score, box: d.box! })));
  const boxes = [...truths.values()].some((b) => b.length > 0);
  const model = results.find((r) => r.model !== null)?.model ?? null;
  const latencies = results.map((r) => r.timings.totalMs);
  return {
    station,
    dir: path.resolve(dir),
    good: [...new Set(['good', 'ok', 'pass', ...good])],
    createdAt: new Date().toISOString(),
    images: rows.length,
    errors: rows.filter((r) => r.verdict === 'error').length,
    confusion: c,
    ...rates(c),
    auroc: auroc(rows),
    perClass: perClass(rows),
    ...(boxes ? { detection: detectionOf(truths, predictions) } : {}),
    latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99) },
    model: model === null ? null : { name: model.name, version: model.version, sha256: model.sha256 },
    sweep: sweep(rows),
    results: rows,
  };
}
