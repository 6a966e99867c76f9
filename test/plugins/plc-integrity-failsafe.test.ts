import { describe, expect, it } from 'vitest';
import type { TriggerRecord } from '../../plugins/opcua-plc/sim.js';
import { integrityBed, expectSound } from '../helpers/plc-integrity.js';
import { capturingLog } from '../helpers/station.js';
import { until } from '../helpers/until.js';

/** PLC integrity (see test/helpers/plc-integrity.ts): acknowledgements and the fail-safe: a PLC that drops Trigger, gives up, a slow link, a hung stage. */
const { bed, proxied } = integrityBed();

describe('acknowledgements and the fail-safe', () => {
  it('a PLC that drops Trigger without acknowledging: ResultValid goes down at once, and its next trigger is taken at once, not after the ack time-out', async () => {
    // Trigger stays low 500 ms between parts, as a line's cycle gives it: time for linegate to see the drop and lower
    // ResultValid on a loaded machine (with the 100 ms default, a loaded CI run once saw K-1's answer still up when
    // K-2 was raised), and still far under the 8 s ack time-out the test tells apart.
    const plc = await bed.sim({ heartbeatMs: 50, triggerLowMs: 500 });
    const { log, entries } = capturingLog();
    const run = await bed.run(bed.station(plc.endpoint, { log, plc: { ackTimeoutMs: 8000 }, station: { sinkTimeoutMs: 10_000, closeTimeoutMs: 10_000 } }));
    await until(() => plc.report().interlockOpen);
    // This PLC waits at most 2 s for K-1's answer and then for its drop, unacknowledged, before it drops Trigger itself
    // (200 ms, as before, was less than a loaded machine sometimes took to answer); K-2 has the usual 3 s.
    const a = await plc.trigger('K-1', { ack: false, resultTimeoutMs: 2000 });
    const b = await plc.trigger('K-2');
    await run.stop();
    expect(a).toMatchObject({ acked: false, answers: 1, echo: { partId: 'K-1', counter: 1 } });
    expectSound(plc, [b]);
    const [ra, rb] = run.results;
    expect(ra?.delivery.plc).toMatchObject({ status: 'failed', error: expect.stringContaining('LG_ERR_PLC_NO_ACK') });
    expect(rb?.delivery.plc?.status).toBe('delivered');
    // K-2 was taken when the PLC raised it, not when K-1's ack time-out (8 s, about 5.5 s after K-2 rose) ran out
    expect(new Date(rb!.trigger!.raisedAt).getTime() - new Date(b.at).getTime()).toBeLessThan(2000);
    expect(entries().some((e) => e.msg?.startsWith('the PLC dropped Trigger without acknowledging'))).toBe(true);
  }, 30_000);

  it('a PLC that gives up on a slow part: the late verdict is never written, so it cannot land on the next part, and no part after it is answered one cycle late', async () => {
    const plc = await bed.sim({ heartbeatMs: 50, resultTimeoutMs: 1000 });
    const { log, entries } = capturingLog();
    const run = await bed.run(bed.station(plc.endpoint, { log, delay: { ms: 1300, on: [0] } }));
    await until(() => plc.report().interlockOpen);
    // The PLC waits 1 s, rejects the part itself and drops Trigger; the verdict comes at 1.3 s, while it asks about G-2.
    const slow = await plc.trigger('G-1');
    const next: TriggerRecord[] = [];
    for (let i = 2; i <= 6; i++) next.push(await plc.trigger(`G-${i}`));
    await run.stop();
    expect(slow).toMatchObject({ outcome: 'timeout', answers: 0 });
    expectSound(plc, next);
    // G-1 was inspected, but its verdict went nowhere: recorded as not delivered, and said so
    expect(run.results[0]).toMatchObject({ partId: 'G-1', delivery: { plc: { status: 'failed', error: expect.stringContaining('LG_ERR_PLC_NOT_PENDING') } } });
    expect(entries().some((e) => e.msg === 'a part got no verdict: the PLC moved on to part G-2 (counter 2)')).toBe(true);
  }, 30_000);

  it('decides the deadline fail-safe in the write queue: on a slow link a part whose verdict comes after the deadline gets it or "not decidable", never both', async () => {
    const plc = await bed.sim({ addressSpace: 'standard', heartbeatMs: 50, resultTimeoutMs: 5000 });
    // 100 ms each way: every OPC UA request takes 200 ms, so the deadline passes while the verdict waits to be written.
    const proxy = await proxied(plc, 100);
    const run = await bed.run(bed.station(proxy.endpoint, { station: { cycleBudgetMs: 100 }, plc: { deadlineMs: 150 } }));
    await until(() => plc.report().interlockOpen, { ms: 15_000 });
    const records: TriggerRecord[] = [];
    for (let i = 1; i <= 3; i++) records.push(await plc.trigger(`D-${i}`));
    await run.stop();
    expectSound(plc, records);
    // Its own verdict (a reject; or 902, the 100 ms budget spent, when a loaded machine inspects slowly: a verdict that
    // meets the same race for the write) or "not decidable" (909) from the deadline: one of them, never both (expectSound).
    for (const r of records) expect([`${r.verdict}/${r.rejectCode}`]).toSatisfy(([v]: string[]) => v === '2/1' || v === '3/902' || v === '3/909');
  }, 60_000);

  it('answers "not decidable" (909) at the deadline when a hung stage keeps the next part from being inspected', async () => {
    const plc = await bed.sim({ heartbeatMs: 50 });
    const station = bed.station(plc.endpoint, { delay: { ms: 2000, on: [0], ignoreSignal: true }, station: { cycleBudgetMs: 300, maxInFlight: 1, queueSize: 0 } });
    const run = await bed.run(station);
    await until(() => plc.report().interlockOpen);
    const hung = await plc.trigger('H-1');
    const starved = await plc.trigger('H-2');
    await run.stop();
    expectSound(plc, [hung, starved]);
    expect([hung, starved].map((r) => [r.verdict, r.rejectCode])).toEqual([
      [3, 902],
      [3, 909],
    ]);
    // the part that got 909 is not inspected after the fact: its answer is out, a late verdict would go nowhere
    expect(run.results.map((r) => [r.partId, r.rejectCode])).toEqual([['H-1', 902]]);
  }, 30_000);
});
