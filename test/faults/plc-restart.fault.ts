import { existsSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SimReport } from '../../plugins/opcua-plc/sim.js';
import { LINEGATE_PKI, LinegateProcess, ROOT, RssSampler, cleanUp, note, logLines, pidOf, plcSim, simCycles, sleep, tempRoot, waitLog, waitUntil, writeSlowPlugin, writeStation } from './harness.js';
import { RSS_MAX_MIB, brief, expectAccounted, expectCyclesAnsweredByOwnResult, expectOnceEach, expectPlcBooks, expectRssBounded, expectUndecidableRejected, lastJsonLine, readJsonl, type RunLine } from './invariants.js';

/**
 * Fault 1: the PLC (a `linegate plc-sim` process, triggering at --rate) is
 * SIGKILLed while linegate is inspecting a part, and started again, fresh, on
 * the same port. The part in inspection is the PLC's first (P000001, counter
 * 1), and the new PLC's first trigger has the very same part id and counter:
 * the late verdict must not be written to it. A third-party stage holds the
 * part until the new PLC is up and asking.
 */

afterEach(cleanUp);

interface Held {
  readonly partId: string;
  readonly sequence: number;
  readonly trigger: { readonly id: string; readonly counter: number; readonly raisedAt: string } | null;
}

describe('fault: the PLC killed and restarted while a part is in inspection', () => {
  it('writes no late verdict to the restarted PLC (not even to its trigger with the same part id and counter), answers every new trigger once with its own result, and tells of the outage', async () => {
    const root = tempRoot('plc');
    const hold = path.join(root, 'hold');
    writeFileSync(hold, '');
    const first = await plcSim(['--port', '0', '--rate', '5', '--trigger-low-ms', '20', '--result-timeout-ms', '30000']);
    const plugin = writeSlowPlugin(root);
    const file = writeStation(
      root,
      // The budget outlasts the hold: the held part gets a real verdict, late, after the PLC restarted.
      `station: { id: fault-plc, root: ${ROOT}, cycleBudgetMs: 20000, maxInFlight: 1, queueSize: 0, closeTimeoutMs: 4000 }
plugins: [${plugin}]
source: { name: cam, use: core/opcua-trigger@1, config: { plc: plc, camera: { dir: fixtures/casting/def_front } } }
stages:
  - { name: decode, use: core/image-decode@1, config: { color: GRAY } }
  - { name: model, use: core/onnx-model@1, config: { model: models/casting-cls/1 } }
  - { name: classify, use: core/classify-decode@1 }
  - { name: slow, use: faults/slow@1, config: { holdWhile: ${hold} } }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ label: defect, rejectCode: 1 }] } }
sinks:
  - { name: plc, use: core/opcua-plc@1, config: { endpoint: "opc.tcp://127.0.0.1:${first.port}/", connectAttempts: 3, connectDelayMs: 200, security: { pki: ${LINEGATE_PKI} } } }
  - { name: results, use: core/jsonl-sink@1, config: { dir: ${path.join(root, 'results')} } }
`,
    );
    const run = new LinegateProcess(['run', file, '--no-pretty']);
    const rss = new RssSampler(await pidOf(run));

    // The PLC's first part is in the slow stage: pull the plug.
    const m = await waitLog(run, /^.*faults\/slow: holding part.*$/m, 60_000);
    const held = JSON.parse(m[0]) as Held;
    expect(held.trigger?.counter, `the held part is the first PLC's first trigger: ${m[0]}`).toBe(1);
    const killedAt = Date.now();
    first.sim.killGroup();
    await first.sim.exited;
    await waitLog(run, /PLC link is down/, 20_000);

    // The PLC comes back, fresh (its data lost), on the same port, and asks for P000001 / 1 again.
    const second = await plcSim(['--port', String(first.port), '--rate', '5', '--trigger-low-ms', '20']);
    await waitLog(run, /PLC link back/, 30_000);
    await waitLog(second.sim, /"msg":"vision ready"/, 20_000);
    await sleep(600); // three trigger ticks at 5 Hz: its first trigger is up, waiting behind the held part
    rmSync(hold);
    await waitLog(run, /faults\/slow: released part/, 10_000);

    await waitUntil(() => simCycles(second.sim) >= 20, 30_000, '20 cycles of the restarted PLC', run);
    run.signal('SIGINT');
    const exit = await run.exited;
    rss.stop();
    second.sim.signal('SIGINT');
    expect((await second.sim.exited).code).toBe(0);
    expect(exit.code, `linegate run exited ${exit.code}:\n${run.stderr.slice(-3000)}`).toBe(0);
    note('plc-restart', { heldPart: held.partId, heldCounter: held.trigger?.counter, rssMaxMiB: Math.round(rss.maxMiB) });
    expect(existsSync(hold)).toBe(false);

    const { plcSim: report } = lastJsonLine<{ plcSim: SimReport }>(second.sim.stdout, 'plc-sim');
    expectPlcBooks(report);
    expect(report.triggers).toBeGreaterThanOrEqual(20);
    expect(report.lastCycles.filter((c) => c.outcome !== 'not-ready').length, 'every triggered cycle of the restarted PLC is in its report (at most 50 are kept)').toBe(report.triggers);
    expect(report.verdicts[1], 'every part is a defective casting: a pass is a silent one').toBe(0);

    const { summary, health } = lastJsonLine<RunLine>(run.stdout, 'linegate run');
    expectAccounted(summary);
    expect(summary.pass).toBe(0);
    expect(summary.undelivered, 'the held part\'s verdict reached no PLC: counted undelivered').toBeGreaterThanOrEqual(1);
    expect(health.steps.plc?.data, 'health keeps the outage').toMatchObject({ cycles: { outages: 1 }, lastOutage: expect.anything() });

    const { results, broken } = readJsonl(path.join(root, 'results'));
    expect(broken).toEqual([]);
    expect(results.length, 'every frame is in the JSONL').toBe(summary.frames);
    expectOnceEach('results by result id', results, (r) => r.resultId);
    expectOnceEach('results by trigger id', results.filter((r) => r.trigger !== undefined), (r) => r.trigger!.id);
    expectUndecidableRejected(results);

    // The held part: inspected (a real verdict came late), not delivered to any PLC.
    const late = results.filter((r) => r.trigger?.id === held.trigger!.id);
    expect(late.length, 'the held part has one result').toBe(1);
    expect(late[0]!.delivery.plc?.status, `the late verdict was not written: ${JSON.stringify(brief(late[0]!))}`).toBe('failed');
    expect(late[0]!.delivery.plc?.error).toMatch(/LG_ERR_PLC_(DOWN|NOT_PENDING)/);
    expect(Date.parse(late[0]!.time.decidedAt), 'its verdict came after the restarted PLC was up').toBeGreaterThan(second.startedAt);
    // The collision this case is about: the new PLC was already asking for P000001 / 1 when the old P000001 / 1's verdict came.
    const firstNew = report.lastCycles.find((c) => c.outcome !== 'not-ready')!;
    expect({ partId: firstNew.partId, counter: firstNew.counter }).toEqual({ partId: held.partId, counter: 1 });
    expect(Date.parse(firstNew.at), 'the restarted PLC raised its first trigger before the late verdict').toBeLessThan(Date.parse(late[0]!.time.decidedAt));

    // Each cycle of the restarted PLC was answered by the result of its own trigger, with its own verdict and score.
    expectCyclesAnsweredByOwnResult(report.lastCycles, results, second.startedAt);

    const log = logLines(run.stderr);
    const down = log.filter((l) => /PLC link is down/.test(l.msg));
    expect(down.length, 'one "down" line for one outage').toBe(1);
    expect(down[0]!.time).toBeGreaterThanOrEqual(killedAt - 50);
    expectRssBounded(rss.samples, { maxMiB: RSS_MAX_MIB });
  });
});
