import { pino } from 'pino';
import { compileStation } from '../runtime/compile/compile.js';
import type { Part, StageInstance } from '../runtime/contract.js';
import { Station } from '../runtime/station.js';
import { imageDecode } from '../plugins/preprocess-image-decode/index.js';
import { imageQuality } from '../plugins/postprocess-image-quality/index.js';
import { thresholdRules } from '../plugins/decision-threshold-rules/index.js';
import { testRegistry } from '../test/helpers/probe-plugins.js';
import { ROOT } from '../test/helpers/station.js';
import { contextFor, frameOf } from '../test/helpers/samples.js';
import { Histogram } from '../runtime/observability/histogram.js';
import path from 'node:path';
import { benchModel } from './models.js';
import { benchPlcLatency } from './plc.js';
import { benchQueue } from './queue.js';
import { benchReplay } from './replay.js';

const log = pino({ level: 'silent' });
const r2 = (v: number): number => Math.round(v * 100) / 100;

async function runStation(data: unknown, frames: number): Promise<{ fps: number; p50: number; p99: number }> {
  const station = new Station(compileStation(data, path.join(ROOT, 'stations/bench.yaml'), testRegistry()), log);
  const s = await station.run({ maxFrames: frames });
  await station.close();
  return { fps: s.fps, p50: s.latencyMs.p50, p99: s.latencyMs.p99 };
}

/** The same stage instances called in a bare for-loop: what the work costs without the runtime. */
async function bare(stages: StageInstance[], parts: () => Part, n: number): Promise<{ fps: number; p50: number; p99: number }> {
  const h = new Histogram();
  const ctx = contextFor(new AbortController().signal);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    let part = parts();
    for (const s of stages) part = { ...part, ...(await s.run(part, ctx)) };
    h.record(performance.now() - t);
  }
  return { fps: r2(n / ((performance.now() - t0) / 1000)), p50: r2(h.quantile(0.5)), p99: r2(h.quantile(0.99)) };
}

export const SCENARIOS: Record<string, () => Promise<Record<string, unknown>>> = {
  /** PLC trigger -> ResultValid over loopback for 1000 parts through the casting station; also bench/results/plc-latency.json. */
  'plc-latency': () => benchPlcLatency(1000),
  /** core/bullmq@1: delivered vs spooled writes, the drain after Redis returns, and the critical path with Redis away. */
  'queue-sink': () => benchQueue(2000),
  /** linegate replay on the casting fixtures (20 images, 5 rounds) vs the live station on the same images. */
  'replay-casting': () => benchReplay('stations/casting.yaml', 'fixtures/casting', ['ok_front'], 5),
  /** The casting classifier: preprocessing and inference per image (300x300 grey). */
  'model-casting-cls': () => benchModel('models/casting-cls/1', 'fixtures/casting', 200),
  /** The third-party NEU YOLOv8n (640x640, int8); skipped where ../shared is absent. */
  'model-neu-yolov8n': () => benchModel('models/neu-yolov8n-int8/1', 'fixtures/neu-det', 40),
  /** The magnetic-tile anomaly model. */
  'model-magnetic-tile-anomaly': () => benchModel('models/magnetic-tile-anomaly/1', 'fixtures/magnetic-tile', 100),
  /** CLI start-up from the compiled build: `linegate --help`, `check` on the demo, the demo until ready and until its first verdict (5 runs each; --help through tsx for comparison). */
  startup: async () => (await import('./startup.js')).benchStartup(5),
  /** casting-cls on its fixtures: bare sharp + onnxruntime loop vs the station (JSONL and queue sinks, 2 in flight), 5 alternating rounds; also bench/results/pipeline-vs-raw.json. */
  'pipeline-vs-raw': async () => (await import('./pipeline.js')).benchPipelineVsRaw({ model: 'models/casting-cls/1', fixtures: 'fixtures/casting', frames: 1000, rounds: 5, maxInFlight: 2 }),
  /** stations/casting.yaml with the queue sink added, 5000 warm-up + 30 000 frames; RSS after a full GC every 1000; also bench/results/soak.json. */
  soak: async () => (await import('./soak.js')).benchSoak({ warmup: 5000, frames: 30_000, every: 1000 }),

  /** What the frame loop itself costs per part: no-op stages through the runtime vs the same work in a bare loop. */
  async 'loop-overhead'() {
    const frames = 20_000;
    const station = {
      station: { id: 'bench', maxInFlight: 1, queueSize: 2 },
      source: { name: 'cam', use: 'test/source@1', config: { count: 0 } },
      stages: [
        { name: 'work', use: 'test/stage@1', config: {} },
        { name: 'verdict', use: 'test/decide@1', config: {} },
      ],
      sinks: [{ name: 'plc', use: 'test/sink@1', critical: true, config: {} }],
    };
    await runStation(station, 500); // warm-up
    const runtime = await runStation(station, frames);
    return { frames, runtime, overheadUsPerPart: r2(1e6 / runtime.fps) };
  },

  /** The demo pipeline (decode, image quality, rules) through the runtime vs the same stages in a bare loop. */
  async 'demo-pipeline'() {
    const frames = 400;
    const ctx = contextFor(new AbortController().signal);
    const stages = [
      await imageDecode.init(imageDecode.manifest.config.parse({}), ctx),
      await imageQuality.init(imageQuality.manifest.config.parse({}), ctx),
      await thresholdRules.init(thresholdRules.manifest.config.parse({ rules: [{ label: 'blurred', rejectCode: 11 }] }), ctx),
    ];
    const frame = frameOf();
    await bare(stages, () => ({ frame }), 50); // warm-up
    const direct = await bare(stages, () => ({ frame }), frames);
    const station = (maxInFlight: number): unknown => ({
      station: { id: 'bench', maxInFlight, queueSize: 2, cycleBudgetMs: 5000 },
      source: { name: 'cam', use: 'core/folder-source@1', config: { dir: 'fixtures/casting', loop: true } },
      stages: [
        { name: 'decode', use: 'core/image-decode@1' },
        { name: 'quality', use: 'core/image-quality@1' },
        { name: 'verdict', use: 'core/threshold-rules@1', config: { rules: [{ label: 'blurred', rejectCode: 11 }] } },
      ],
    });
    const serial = await runStation(station(1), frames);
    const parallel = await runStation(station(2), frames);
    return {
      frames,
      direct,
      runtime1InFlight: serial,
      runtime2InFlight: parallel,
      ratios: { runtime1VsDirectFps: r2(serial.fps / direct.fps), runtime2VsRuntime1Fps: r2(parallel.fps / serial.fps) },
    };
  },
};
