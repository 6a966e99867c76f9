import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SimulatedPlc } from '../plugins/opcua-plc/sim.js';
import { ROOT, stationFrom } from '../test/helpers/station.js';

/**
 * Trigger -> ResultValid over loopback, as the simulated PLC measures it, for
 * `parts` PLC-triggered parts through the casting station (decode, model,
 * decoder, rules, PLC handshake). Writes bench/results/plc-latency.json.
 */
export async function benchPlcLatency(parts: number): Promise<Record<string, unknown>> {
  const plc = await SimulatedPlc.start({ port: 0, triggerRateHz: 0, resultTimeoutMs: 3000, triggerLowMs: 20 });
  const station = stationFrom({
    station: { id: 'bench-plc', cycleBudgetMs: 2000, queueSize: 0 },
    source: { name: 'cam', use: 'core/opcua-trigger@1', config: { plc: 'plc', camera: { dir: path.join(ROOT, 'fixtures/casting') } } },
    stages: [
      { name: 'decode', use: 'core/image-decode@1', config: { color: 'GRAY' } },
      { name: 'model', use: 'core/onnx-model@1', config: { model: 'models/casting-cls/1' } },
      { name: 'classify', use: 'core/classify-decode@1' },
      { name: 'verdict', use: 'core/threshold-rules@1', config: { rules: [{ label: 'defect', rejectCode: 1 }] } },
    ],
    sinks: [{ name: 'plc', use: 'core/opcua-plc@1', config: { endpoint: plc.endpoint, deadlineMs: 2500 } }],
  });
  try {
    await station.start();
    const done = station.run();
    const latencies: number[] = [];
    let lost = 0;
    for (let i = 0; i < parts; i++) {
      const r = await plc.trigger(`B${i}`);
      if (r.outcome === 'ok' && r.verdict !== 0) latencies.push(r.latencyMs);
      else lost++;
    }
    station.stop();
    await done;
    latencies.sort((a, b) => a - b);
    const q = (p: number): number => Math.round((latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)] ?? 0) * 100) / 100;
    const result = { parts, p50Ms: q(0.5), p99Ms: q(0.99), lost };
    mkdirSync(path.join(import.meta.dirname, 'results'), { recursive: true });
    writeFileSync(path.join(import.meta.dirname, 'results', 'plc-latency.json'), `${JSON.stringify(result)}\n`);
    return { ...result, report: { verdicts: plc.report().verdicts, timeouts: plc.report().timeouts, echoMismatches: plc.report().echoMismatches } };
  } finally {
    await station.close();
    await plc.stop();
  }
}
