import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { InspectionResult } from '../runtime/result.js';
import type { SimReport } from '../plugins/opcua-plc/sim.js';
import { Histogram } from '../runtime/observability/histogram.js';
import { ROOT, stationFrom } from '../test/helpers/station.js';

const r2 = (v: number): number => Math.round(v * 100) / 100;

/** `linegate plc-sim --cycles N` in its own process: a real PLC is not inside linegate's event loop. */
function startPlc(parts: number): { port: Promise<number>; report: Promise<SimReport>; kill(): void } {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/linegate.mjs'), 'plc-sim', '--port', '0', '--cycles', String(parts), '--trigger-low-ms', '20', '--trigger-jitter-ms', '10', '--no-pretty'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const port = new Promise<number>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /simulated PLC listening on opc\.tcp:\/\/127\.0\.0\.1:(\d+)\//.exec(stderr);
      if (m !== null) resolve(Number(m[1]));
    });
    child.on('close', () => reject(new Error(`plc-sim ended before it listened:\n${stderr.slice(-2000)}`)));
  });
  const report = new Promise<SimReport>((resolve, reject) =>
    child.on('close', (code) => {
      try {
        resolve((JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as { plcSim: SimReport }).plcSim);
      } catch {
        reject(new Error(`plc-sim exited ${code} without its report:\n${stderr.slice(-2000)}`));
      }
    }),
  );
  return { port, report, kill: () => void (child.exitCode === null && process.kill(-child.pid!, 'SIGKILL')) };
}

/**
 * Trigger -> ResultValid over loopback, on the PLC's clock, for `parts`
 * PLC-triggered parts through the casting station (decode, model, decoder,
 * rules, PLC handshake), against the same run's own inspection time (the sum
 * of its stage timings: decode, model, decoder, rules). What the PLC link adds
 * is the difference. Writes bench/results/plc-latency.json.
 */
export async function benchPlcLatency(parts: number): Promise<Record<string, unknown>> {
  const plc = startPlc(parts);
  const station = stationFrom({
    station: { id: 'bench-plc', cycleBudgetMs: 2000, maxInFlight: 1, queueSize: 0 },
    history: false,
    source: { name: 'cam', use: 'core/opcua-trigger@1', config: { plc: 'plc', camera: { dir: path.join(ROOT, 'fixtures/casting') } } },
    stages: [
      { name: 'decode', use: 'core/image-decode@1', config: { color: 'GRAY' } },
      { name: 'model', use: 'core/onnx-model@1', config: { model: 'models/casting-cls/1', intraOpThreads: Number(process.env.BT ?? 0) } },
      { name: 'classify', use: 'core/classify-decode@1' },
      { name: 'verdict', use: 'core/threshold-rules@1', config: { rules: [{ label: 'defect', rejectCode: 1 }] } },
    ],
    sinks: [{ name: 'plc', use: 'core/opcua-plc@1', config: { endpoint: `opc.tcp://127.0.0.1:${await plc.port}/` } }],
  });
  const inspection = new Histogram();
  const modelOnly = new Histogram();
  station.on('result', (r: InspectionResult) => {
    inspection.record(Object.values(r.timings.stages).reduce((a, b) => a + b, 0));
    modelOnly.record(r.timings.stages.model ?? 0);
  });
  try {
    await station.start();
    const done = station.run();
    const report = await plc.report;
    const granted = (station.health().steps.plc?.data as { granted?: { publishingIntervalMs: number; samplingIntervalMs: number } } | undefined)?.granted;
    station.stop();
    await done;
    const ok = report.verdicts[1] + report.verdicts[2];
    const result = {
      parts,
      lost: parts - ok,
      p50Ms: report.latencyMs?.p50 ?? null,
      p99Ms: report.latencyMs?.p99 ?? null,
      modelP50Ms: r2(inspection.quantile(0.5)),
      modelP99Ms: r2(inspection.quantile(0.99)),
      publishingIntervalMs: granted?.publishingIntervalMs ?? null,
    };
    mkdirSync(path.join(import.meta.dirname, 'results'), { recursive: true });
    writeFileSync(path.join(import.meta.dirname, 'results', 'plc-latency.json'), `${JSON.stringify(result)}\n`);
    const p50 = result.p50Ms ?? Infinity;
    const p99 = result.p99Ms ?? Infinity;
    return {
      ...result,
      samplingIntervalMs: granted?.samplingIntervalMs ?? null,
      modelStageOnly: { p50Ms: r2(modelOnly.quantile(0.5)), p99Ms: r2(modelOnly.quantile(0.99)) },
      linkAddsMs: { p50: r2(p50 - result.modelP50Ms), p99: r2(p99 - result.modelP99Ms) },
      target: { p50: p50 <= result.modelP50Ms + 10, p99: p99 <= result.modelP99Ms + 20, lost: result.lost === 0 },
      plc: { triggers: report.triggers, timeouts: report.timeouts, echoMismatches: report.echoMismatches, duplicateAnswers: report.duplicateAnswers, strayResults: report.strayResults, notReady: report.notReady },
    };
  } finally {
    plc.kill();
    await station.close();
  }
}
