import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { definePlugin, type FrameInput, type Logger, type PluginContext } from '../contract.js';
import { compileStationData, type Plan } from '../compile/compile.js';
import { calibrationPath } from '../config/calibration.js';
import { loadDataFile } from '../config/load.js';
import { calibrationSetting } from '../config/station-schema.js';
import { LinegateError } from '../errors.js';
import { builtinRegistry } from '../registry/builtins.js';
import { defectScore, type InspectionResult } from '../result.js';
import { Station } from '../station.js';
import { readTruth } from './annotations.js';
import { listLabelled, yoloNames, type LabelledImage } from './dataset.js';
import { rateInterval } from './intervals.js';
import { reportCalibration, reportModel, reportThresholds } from './judged.js';
import { GOOD_NAMES, apStats, auroc, confusionOf, detectionCounts, goodBy, perClass, percentile, rates, sweep, type Prediction } from './metrics.js';
import type { DetectionStats, ReplayMedia, ReplayReport, ReplayRow, TruthBox } from './report.js';

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
  /** station (default): the calibration as the station applies it; own-model: one made for another model is left out (compare). */
  readonly calibration?: 'station' | 'own-model';
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

/** The decoder score floor of the all-detections pass: the COCO/VOC convention (Ultralytics' val uses 0.001 too). */
export const ALL_DETECTIONS_FLOOR = 0.001;

/** The decoders whose score floor replay can lower through their public config, by plugin id and field. */
const FLOOR_FIELDS: Readonly<Record<string, string>> = { 'core/yolo-decode@1': 'scoreThreshold' };

interface StepData {
  name?: string;
  use?: string;
  config?: Record<string, unknown>;
}

interface StationData {
  station: Record<string, unknown>;
  source: StepData;
  stages: StepData[];
  sinks?: unknown[];
  history?: unknown;
}

/**
 * Replays a labelled folder through the station's own steps (same plugins,
 * same config, same calibration, same code path) with the source replaced by
 * the folder and every sink switched off: nothing reaches a PLC or a queue.
 * With annotation boxes and a decoder whose floor can be lowered, a second
 * pass collects every detection for the standard mAP; the verdicts are the
 * first pass's, untouched.
 */
export async function replay(stationFile: string, dir: string, o: ReplayOptions): Promise<Replay> {
  const loaded = await loadDataFile(stationFile);
  // The station's own good classes (station.goodLabels) with the command's --good: a data set whose good folder is not
  // called good, ok or pass (magnetic tiles: MT_Free) replays right without a flag. Checked by the compile below.
  const own = (loaded.data as { station?: { goodLabels?: unknown } } | null)?.station?.goodLabels;
  o = { ...o, good: [...(Array.isArray(own) ? own.filter((g): g is string => typeof g === 'string') : []), ...(o.good ?? [])] };
  const images = await listLabelled(dir, o.good ?? []);
  const data = structuredClone(loaded.data) as Partial<StationData>;
  if (data.source === undefined || data.stages === undefined || data.station === undefined) {
    throw new LinegateError('LG_ERR_REPLAY_STATION', [loaded.file, 'it has no station, source or stages']);
  }
  const station: StationData = { ...data, station: data.station, source: data.source, stages: data.stages };
  station.source = { name: data.source.name ?? 'source', use: 'replay/labelled-files@1', config: { files: images.map(({ file, abs, truth }) => ({ file, abs, truth })) } };
  station.sinks = [];
  // Replayed parts are not the line's: they stay out of its traceability history too.
  station.history = false;
  Object.assign(station.station, { cycleBudgetMs: REPLAY_BUDGET_MS, dropPolicy: 'block', queueSize: 2 });
  if (o.model !== undefined) swapModel(station.stages, o.model, loaded.file);
  const compile = (d: StationData): Promise<Plan> => {
    const registry = builtinRegistry();
    registry.register(labelledFiles, 'replay');
    return compileStationData(d, loaded.file, registry, { calibration: o.calibration ?? 'station' });
  };
  const plan = await compile(station);
  const results = await runAll(plan, images, o.log);
  const { truths, sizes } = await truthsOf(images, results, o.log);
  const boxes = [...truths.values()].some((b) => b.length > 0);
  const floors = station.stages.filter((s) => s.use !== undefined && FLOOR_FIELDS[s.use] !== undefined);
  let all: Prediction[] | undefined;
  if (boxes && floors.length > 0) {
    const low = structuredClone(station);
    for (const s of low.stages) {
      const field = s.use === undefined ? undefined : FLOOR_FIELDS[s.use];
      if (field === undefined) continue;
      const own = s.config?.[field];
      s.config = { ...s.config, [field]: typeof own === 'number' ? Math.min(own, ALL_DETECTIONS_FLOOR) : ALL_DETECTIONS_FLOOR };
    }
    // Its warnings (a calibration allowed for another model) were logged by the first pass already.
    all = predictionsOf(await runAll(await compile(low), images, errorsOnly(o.log)));
  }
  const media: ReplayMedia = { dir: path.resolve(dir), truths, sizes };
  const good = [...new Set([...GOOD_NAMES, ...(o.good ?? [])])];
  const judged = { model: reportModel(plan, results), thresholds: reportThresholds(plan, results), calibration: reportCalibration(plan) };
  const report = buildReport({ station: plan.settings.id, dir, good, images, results, truths, judged, ...(all === undefined ? {} : { allDetections: all }) });
  const calibrationFile = calibrationPath(plan.root, plan.settings.id, calibrationSetting(plan.settings).file);
  return { report, media, results, stationId: plan.settings.id, calibrationFile };
}

/** Runs a compiled replay station over the images; the results in the images' order. */
async function runAll(plan: Plan, images: readonly LabelledImage[], log: Logger): Promise<InspectionResult[]> {
  const station = new Station(plan, log);
  const byPart = new Map<string, InspectionResult>();
  station.on('result', (r) => byPart.set(r.partId, r));
  try {
    await station.run();
  } finally {
    await station.close();
  }
  return images.map((img) => byPart.get(img.file)).filter((r): r is InspectionResult => r !== undefined);
}

/** A logger that passes on errors only. */
function errorsOnly(log: Logger): Logger {
  const none = (): void => undefined;
  return { trace: none, debug: none, info: none, warn: none, error: (o, m) => log.error(o, m), fatal: (o, m) => log.fatal(o, m), child: (b) => errorsOnly(log.child(b)) };
}

const predictionsOf = (results: readonly InspectionResult[]): Prediction[] =>
  results.flatMap((r) => r.defects.filter((d) => d.box !== undefined).map((d) => ({ file: r.partId, label: d.label, score: d.score, box: d.box! })));

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

/** Labels as the truths name them, or all under `any` when none of the model's labels is a truth class (an anomaly model's `anomaly` against a mask's `crack`). */
function agnostic(truths: ReadonlyMap<string, readonly TruthBox[]>, predictions: readonly Prediction[]): boolean {
  const truthLabels = new Set([...truths.values()].flat().map((t) => t.label));
  return predictions.length > 0 && !predictions.some((p) => truthLabels.has(p.label));
}

const asAny = <T extends { label: string }>(xs: readonly T[]): T[] => xs.map((x) => ({ ...x, label: 'any' }));

/**
 * The detection figures: AP50 and AP50-95 over all detections (when the
 * second pass ran) and at the operating threshold (the detections at or
 * above their label's decision threshold), each labelled.
 */
function detectionOf(
  truthsIn: ReadonlyMap<string, readonly TruthBox[]>,
  operatingIn: readonly Prediction[],
  allIn: readonly Prediction[] | undefined,
): DetectionStats {
  const classAgnostic = agnostic(truthsIn, [...operatingIn, ...(allIn ?? [])]);
  const truths = classAgnostic ? new Map([...truthsIn].map(([f, b]) => [f, asAny(b)])) : truthsIn;
  const operating = classAgnostic ? asAny(operatingIn) : operatingIn;
  const all = allIn === undefined ? undefined : classAgnostic ? asAny(allIn) : allIn;
  const op = apStats(truths, operating);
  const { perClass: perClassCounts, ...opCounts } = detectionCounts(truths, operating);
  const allStats = all === undefined ? null : { scoreFloor: ALL_DETECTIONS_FLOOR, ...apStats(truths, all) };
  const headline = allStats ?? op;
  return {
    mAP50: headline.mAP50,
    mAP50Over: allStats === null ? 'operating-threshold' : 'all-detections',
    iou: 0.5,
    perClass: Object.fromEntries(Object.entries(headline.perClass).map(([l, c]) => [l, { ap: c.ap50, truths: c.truths, predictions: c.predictions }])),
    classAgnostic,
    interpolation: 'voc-all-point',
    allDetections: allStats,
    operatingThreshold: { ...op, ...opCounts, perClassCounts },
  };
}

export interface ReportInput {
  readonly station: string;
  readonly dir: string;
  /** The class names that hold good parts. */
  readonly good: readonly string[];
  readonly images: readonly LabelledImage[];
  readonly results: readonly InspectionResult[];
  readonly truths: ReadonlyMap<string, readonly TruthBox[]>;
  readonly judged: Pick<ReplayReport, 'model' | 'thresholds' | 'calibration'>;
  /** Every detection from the low-floor pass, when it ran. */
  readonly allDetections?: readonly Prediction[];
}

export function buildReport(i: ReportInput): ReplayReport {
  const isGood = goodBy(i.good);
  const truthOf = new Map(i.images.map((img) => [img.file, img.truth]));
  const rows: ReplayRow[] = i.results.map((r) => ({ file: r.partId, truth: truthOf.get(r.partId) ?? 'good', verdict: r.verdict, score: defectScore(r), defects: r.defects }));
  const c = confusionOf(rows, isGood);
  // At the operating point: the boxes the decision counted, i.e. at or above their label's threshold.
  const operating: Prediction[] = i.results.flatMap((r) =>
    r.defects
      .filter((d) => d.box !== undefined && d.score >= (r.thresholds?.[d.label] ?? r.thresholds?.['*'] ?? -Infinity))
      .map((d) => ({ file: r.partId, label: d.label, score: d.score, box: d.box! })),
  );
  const boxes = [...i.truths.values()].some((b) => b.length > 0);
  const latencies = i.results.map((r) => r.timings.totalMs);
  const rated = rates(c);
  return {
    station: i.station,
    dir: path.resolve(i.dir),
    good: i.good,
    createdAt: new Date().toISOString(),
    images: rows.length,
    errors: rows.filter((r) => r.verdict === 'error').length,
    confusion: c,
    ...rated,
    intervals: { escapeRate: rateInterval(c.fn, c.tp + c.fn), overkillRate: rateInterval(c.fp, c.fp + c.tn) },
    auroc: auroc(rows, isGood),
    perClass: perClass(rows, isGood),
    ...(boxes ? { detection: detectionOf(i.truths, operating, i.allDetections) } : {}),
    latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99) },
    model: i.judged.model,
    thresholds: i.judged.thresholds,
    calibration: i.judged.calibration,
    sweep: sweep(rows, isGood),
    results: rows,
  };
}
