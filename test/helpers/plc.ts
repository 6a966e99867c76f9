import path from 'node:path';
import type { Logger } from '../../runtime/contract.js';
import type { InspectionResult } from '../../runtime/result.js';
import type { RunSummary, Station } from '../../runtime/station.js';
import { SimulatedPlc, type SimOptionsInput } from '../../plugins/opcua-plc/sim.js';
import { ROOT, stationFrom } from './station.js';

/** What a PLC test station looks like beyond the defaults. */
export interface PlcStationOptions {
  /** core/opcua-plc@1 config over the defaults here. */
  readonly plc?: Record<string, unknown>;
  /** A probe stage in place of the casting model (the verdict then comes from test/decide@1). */
  readonly stage?: Record<string, unknown>;
  /** A delay after the casting classifier (its findings kept): an inspection the test can catch in progress. */
  readonly delay?: { readonly ms: number; readonly on?: readonly number[]; readonly ignoreSignal?: boolean };
  readonly station?: Record<string, unknown>;
  /** The fixture camera's folder: every image in def_front is a defective casting (never a pass). */
  readonly camera?: string;
  readonly log?: Logger;
}

export interface Running {
  readonly results: InspectionResult[];
  readonly done: Promise<RunSummary>;
  stop(): Promise<RunSummary>;
}

/**
 * Simulated PLCs and stations of one test file, closed after each test: a
 * real OPC UA server plays the PLC, linegate talks to it as a real client.
 */
export class PlcTestbed {
  readonly #sims: SimulatedPlc[] = [];
  readonly #stations: Station[] = [];

  async sim(options: SimOptionsInput = {}): Promise<SimulatedPlc> {
    // The small base nodeset: these tests start dozens of PLCs and touch only the tags (`linegate plc-sim` and the demo serve the standard one).
    const s = await SimulatedPlc.start({ port: 0, triggerRateHz: 0, resultTimeoutMs: 3000, addressSpace: 'minimal', ...options });
    this.#sims.push(s);
    return s;
  }

  /** The casting pipeline (or a probe stage), triggered by the PLC, answering it. */
  station(endpoint: string, o: PlcStationOptions = {}): Station {
    const station = stationFrom(
      {
        station: { id: 'plc-test', cycleBudgetMs: 2000, ...o.station },
        source: { name: 'cam', use: 'core/opcua-trigger@1', config: { plc: 'plc', camera: { dir: path.join(ROOT, o.camera ?? 'fixtures/casting/def_front') } } },
        stages:
          o.stage === undefined
            ? [
                { name: 'decode', use: 'core/image-decode@1', config: { color: 'GRAY' } },
                { name: 'model', use: 'core/onnx-model@1', config: { model: 'models/casting-cls/1' } },
                { name: 'classify', use: 'core/classify-decode@1' },
                ...(o.delay === undefined
                  ? []
                  : [{ name: 'slow', use: 'test/stage@1', config: { delayMs: o.delay.ms, skipOutput: true, ignoreSignal: o.delay.ignoreSignal ?? false, ...(o.delay.on === undefined ? {} : { delayOn: o.delay.on }) } }]),
                { name: 'verdict', use: 'core/threshold-rules@1', config: { rules: [{ label: 'defect', rejectCode: 1 }] } },
              ]
            : [o.stage, { name: 'verdict', use: 'test/decide@1' }],
        sinks: [{ name: 'plc', use: 'core/opcua-plc@1', config: { endpoint, connectAttempts: 3, connectDelayMs: 200, ...o.plc } }],
      },
      o.log,
    );
    this.#stations.push(station);
    return station;
  }

  /** Starts the station and runs it in the background until stop(). */
  async run(station: Station, opts: { maxFrames?: number } = {}): Promise<Running> {
    const results: InspectionResult[] = [];
    station.on('result', (r) => results.push(r));
    await station.start();
    const done = station.run(opts);
    return {
      results,
      done,
      stop: async () => {
        station.stop();
        return done;
      },
    };
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.#stations.splice(0).map((s) => s.close()));
    await Promise.all(this.#sims.splice(0).map((s) => s.stop()));
  }
}
