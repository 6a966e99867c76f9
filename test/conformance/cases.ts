/**
 * What the conformance suite needs to exercise each built-in plugin (and each
 * third-party fixture plugin): a valid config, an invalid one, and one unit of
 * work. A new plugin without a case here fails the suite.
 */
import { cpSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Part, PluginModule, SinkInstance } from '../../runtime/contract.js';
import { FIXTURE, decodedPart, frameOf } from '../helpers/samples.js';
import { f32, identity, manifests, partWith } from '../helpers/model-parts.js';
import { scratch } from '../helpers/scratch.js';
import { contextFor } from '../helpers/samples.js';
import { SimulatedPlc } from '../../plugins/opcua-plc/sim.js';
import { TRIGGERS, opcuaPlc } from '../../plugins/opcua-plc/index.js';
import { REDIS_URL, dropPrefix, uniquePrefix } from '../helpers/redis.js';
import { HTTP_ROUTES_SERVICE, type PluginRoute } from '../../runtime/api/plugin-routes.js';
import { ROOT } from '../helpers/station.js';
import { plugin as brightnessModel } from './fixtures/brightness-model.js';

/** Plugins written outside linegate against the contract alone; they must pass the same suite as the built-ins. */
export const THIRD_PARTY_PLUGINS: readonly PluginModule[] = [brightnessModel as PluginModule];

const queuePrefix = uniquePrefix();

export interface ConformanceCase {
  readonly config: () => Record<string, unknown>;
  readonly badConfig: Record<string, unknown>;
  /** Stages only: the part handed to run(). */
  readonly input?: () => Promise<Part>;
  /** Sources only: what makes the next frame happen (a PLC trigger). */
  readonly stimulate?: () => void;
  /** Sources only: the same, for a source whose frames come through its own instance (frames pushed over HTTP). */
  readonly stimulateInstance?: (instance: unknown) => void;
  /** Real peers the plugin needs (a PLC), started once for its cases and stopped after. */
  readonly before?: () => Promise<void>;
  /** The services of the steps it declares it needs (`manifest.requires`), by config field. */
  readonly dependencies?: () => Map<string, unknown>;
  readonly after?: () => Promise<void>;
}

/** One simulated PLC for the PLC plugins' cases, and the sink whose link the trigger source uses. */
const plc: { sim?: SimulatedPlc; sink?: SinkInstance } = {};
const startPlc = async (withSink: boolean): Promise<void> => {
  plc.sim ??= await SimulatedPlc.start({ port: 0, triggerRateHz: 0, resultTimeoutMs: 500, addressSpace: 'minimal' });
  if (withSink && plc.sink === undefined) {
    const ctx = { ...contextFor(new AbortController().signal), stationId: 'conformance', step: 'plc' };
    plc.sink = await opcuaPlc.init(opcuaPlc.manifest.config.parse({ endpoint: plc.sim.endpoint }), ctx);
  }
};
const stopPlc = async (): Promise<void> => {
  await plc.sink?.close?.();
  plc.sink = undefined;
  await plc.sim?.stop();
  plc.sim = undefined;
};

function hotDir(): string {
  const dir = scratch('lg-conf-hot-');
  cpSync(FIXTURE, path.join(dir, 'a.jpeg'));
  return dir;
}

export const CASES: Record<string, ConformanceCase> = {
  'core/folder-source@1': { config: () => ({ dir: 'fixtures/casting' }), badConfig: { dir: 'fixtures/casting', rateHz: 0 } },
  'core/http-source@1': {
    config: () => ({ queueSize: 2 }),
    badConfig: { queueSize: 0 },
    // A frame pushed through the route it offers the API, as a camera's POST would.
    stimulateInstance: (instance) => {
      // After close the runtime's guard answers every call with a rejected promise: nothing to push to then.
      const service: unknown = (instance as { service(n: string): unknown }).service(HTTP_ROUTES_SERVICE);
      if (service instanceof Promise) return void service.catch(() => undefined);
      const routes = (service as { routes(): readonly PluginRoute[] }).routes();
      const jpeg = readFileSync(path.join(ROOT, 'fixtures/casting/ok_front', readdirSync(path.join(ROOT, 'fixtures/casting/ok_front'))[0]!));
      void routes[0]!.handle({ query: { partId: 'conformance-1' }, body: jpeg, contentType: 'image/jpeg', signal: new AbortController().signal }).catch(() => undefined);
    },
  },
  'core/hot-folder@1': { config: () => ({ dir: hotDir(), settleMs: 50, pollMs: 20 }), badConfig: { dir: '' } },
  'core/image-decode@1': { config: () => ({}), badConfig: { color: 'CMYK' }, input: async () => ({ frame: frameOf() }) },
  'core/image-quality@1': { config: () => ({}), badConfig: { minSharpness: -1 }, input: () => decodedPart() },
  'core/threshold-rules@1': {
    config: () => ({ rules: [{ label: 'crack', rejectCode: 3 }] }),
    badConfig: { rules: [{ label: 'crack', rejectCode: 1000 }] },
    input: async () => ({ frame: frameOf(), findings: { defects: [{ label: 'crack', score: 0.9 }], scores: {} } }),
  },
  'acme/brightness-model@1': { config: () => ({ split: true }), badConfig: { split: 'yes' }, input: () => decodedPart() },
  'core/onnx-model@1': { config: () => ({ model: 'models/casting-cls/1', intraOpThreads: 1 }), badConfig: { model: 'models/casting-cls/1', tiling: { overlap: -1 } }, input: () => decodedPart() },
  'core/classify-decode@1': { config: () => ({}), badConfig: { activation: 'softmax' }, input: async () => partWith(manifests.classification, { logits: f32([1, 3], [1, 2, 3]) }) },
  'core/yolo-decode@1': {
    config: () => ({ iouThreshold: 0.5 }),
    badConfig: { iouThreshold: 2 },
    input: async () => partWith(manifests.yolo('end2end'), { output0: f32([1, 1, 6], [10, 10, 20, 20, 0.9, 0]) }),
  },
  'core/segment-decode@1': { config: () => ({}), badConfig: { threshold: 'high' }, input: async () => partWith(manifests.segmentation, { masks: f32([1, 2, 10, 10], new Float32Array(200).fill(0.5)) }) },
  'core/anomaly-decode@1': {
    config: () => ({}),
    badConfig: { minAreaPx: 0 },
    input: async () => partWith(manifests.anomaly, { pred_score: f32([1], [0.9]), anomaly_map: f32([1, 1, 8, 8], new Float32Array(64).fill(0.7)) }, [identity(8, 8)]),
  },
  'core/opcua-plc@1': {
    config: () => ({ endpoint: plc.sim!.endpoint, mode: 'free-run', connectAttempts: 2 }),
    badConfig: { endpoint: 'http://plc' },
    before: () => startPlc(false),
    after: stopPlc,
  },
  'core/opcua-trigger@1': {
    config: () => ({ plc: 'plc', camera: { dir: 'fixtures/casting/ok_front' } }),
    badConfig: { plc: 'plc' },
    // Started once the source has attached (a PLC sink with no trigger source refuses to start), then
    // ready and beating: the PLC raises no trigger for a vision system that is not (its interlock).
    stimulate: () => void plc.sink?.started?.().then(() => plc.sim?.trigger()).catch(() => undefined),
    dependencies: () => new Map([['plc', plc.sink?.service?.(TRIGGERS)]]),
    before: () => startPlc(true),
    after: stopPlc,
  },
  'core/jsonl-sink@1': { config: () => ({ dir: scratch('lg-conf-jsonl-') }), badConfig: { rotate: 'hourly' } },
  'core/history@1': { config: () => ({ dir: scratch('lg-conf-history-') }), badConfig: { maxAgeDays: 0 } },
  'core/bullmq@1': {
    // The real Redis, under a prefix of its own; each instance its own spool (a spool is locked to one user).
    config: () => ({ redis: { url: REDIS_URL, urlEnv: 'LG_TEST_NO_SUCH_VAR' }, prefix: queuePrefix, spool: { dir: scratch('lg-conf-spool-') }, archive: { dir: scratch('lg-conf-archive-') } }),
    badConfig: { redis: { url: 'http://127.0.0.1:6379' } },
    after: () => dropPrefix(queuePrefix),
  },
};
