import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunSummary } from '../../runtime/station.js';
import type { SimReport } from '../../plugins/opcua-plc/sim.js';
import { LinegateProcess } from '../helpers/child.js';
import { runFolder, sharedPki, testRoot } from '../helpers/roots.js';

/**
 * The PLC and linegate as separate processes, as on a line: `linegate
 * plc-sim` plays the PLC, `linegate run` the station; the PLC is killed
 * (SIGKILL, its whole process group) and started again on the same port.
 */


interface RunLine {
  readonly summary: RunSummary;
  readonly health: { readonly status: string; readonly steps: Record<string, { status: string; data?: Record<string, unknown> }> };
}

async function plcSim(args: readonly string[]): Promise<{ sim: LinegateProcess; port: number }> {
  // --pki: one server certificate for the run's simulated PLCs, not one made at each start; the small nodeset: these tests touch only the tags.
  const sim = new LinegateProcess(['plc-sim', '--no-pretty', '--log-level', 'debug', '--pki', runFolder('plc-sim-pki'), '--address-space', 'minimal', ...args]);
  const m = await sim.waitFor(/simulated PLC listening on opc\.tcp:\/\/127\.0\.0\.1:(\d+)\//);
  return { sim, port: Number(m[1]) };
}

/** The casting station against the PLC at `port`, in a root of its own; its camera holds only defective castings. */
function stationFile(port: number, closeTimeoutMs = 4000): string {
  const file = path.join(testRoot('lg-cli-plc-'), 'stations', 'station.yaml');
  writeFileSync(
    file,
    `station: { id: cli-plc, cycleBudgetMs: 500, maxInFlight: 1, queueSize: 0, closeTimeoutMs: ${closeTimeoutMs} }
source: { name: cam, use: core/opcua-trigger@1, config: { plc: plc, camera: { dir: fixtures/casting/def_front } } }
stages:
  - { name: decode, use: core/image-decode@1, config: { color: GRAY } }
  - { name: model, use: core/onnx-model@1, config: { model: models/casting-cls/1 } }
  - { name: classify, use: core/classify-decode@1 }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ label: defect, rejectCode: 1 }] } }
sinks:
  - { name: plc, use: core/opcua-plc@1, config: { endpoint: "opc.tcp://127.0.0.1:${port}/", connectAttempts: 3, connectDelayMs: 200, security: { pki: ${JSON.stringify(sharedPki())} } } }
`,
  );
  return file;
}

const cycles = /"msg":"cycle"/g;

describe('linegate run against a PLC process', () => {
  it('exits 0 within closeTimeoutMs on SIGINT while the PLC is down, and its summary says the PLC is down', async () => {
    const { sim, port } = await plcSim(['--port', '0', '--rate', '0']);
    const run = new LinegateProcess(['run', stationFile(port, 3000), '--no-pretty']);
    await run.waitFor(/"msg":"station started"/);
    sim.killGroup();
    await run.waitFor(/PLC link is down/);
    const t0 = Date.now();
    run.signal('SIGINT');
    const { code } = await run.exited;
    const ms = Date.now() - t0;
    expect(code).toBe(0);
    // The close of every step is bounded by closeTimeoutMs; the old link waited on a dead channel for a minute.
    expect(ms).toBeLessThan(3000 + 5000);
    expect(run.stderr).not.toContain('LG_ERR_PLUGIN_CLOSE_TIMEOUT');
    const line = run.lastJson<RunLine>();
    expect(line.health.steps.plc?.status).toBe('down');
  }, 60_000);

  it('a PLC killed and started again mid-run: no wrong-part verdict, no answer twice, no silent pass once it is back, and the run tells of the outage', async () => {
    const first = await plcSim(['--port', '0', '--rate', '10', '--trigger-low-ms', '20']);
    const run = new LinegateProcess(['run', stationFile(first.port), '--no-pretty']);
    await run.waitFor(/"msg":"station started"/);
    const until = async (p: LinegateProcess, n: number): Promise<void> => {
      const end = Date.now() + 30_000;
      while (p.count(cycles) < n) {
        if (Date.now() > end) throw new Error(`only ${p.count(cycles)} cycles of ${n}:\n${p.stderr.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until(first.sim, 10);
    first.sim.killGroup();
    await run.waitFor(/PLC link is down/);
    const second = await plcSim(['--port', String(first.port), '--rate', '10', '--trigger-low-ms', '20']);
    await run.waitFor(/PLC link back/);
    await until(second.sim, 20);
    run.signal('SIGINT');
    expect((await run.exited).code).toBe(0);
    second.sim.signal('SIGINT');
    expect((await second.sim.exited).code).toBe(0);

    const { plcSim: report } = second.sim.lastJson<{ plcSim: SimReport }>();
    expect(report).toMatchObject({ echoMismatches: 0, duplicateAnswers: 0, strayResults: 0, staleLatches: 0, timeouts: 0, invalidVerdicts: 0 });
    expect(report.verdicts[1]).toBe(0); // every part is defective: a pass would be a silent one
    expect(report.verdicts[2]).toBeGreaterThanOrEqual(20);

    const { summary, health } = run.lastJson<RunLine>();
    expect(summary.pass + summary.fail + summary.error + summary.dropped + summary.undelivered).toBe(summary.frames);
    expect(summary.pass).toBe(0);
    expect(health.steps.plc?.data).toMatchObject({ cycles: { outages: 1 }, lastOutage: { cyclesLost: expect.any(Number) } });
  }, 120_000);
});
