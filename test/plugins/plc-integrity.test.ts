import { afterEach, describe, expect, it } from 'vitest';
import type { Station } from '../../runtime/station.js';
import type { SimulatedPlc, TriggerRecord } from '../../plugins/opcua-plc/sim.js';
import { PlcTestbed } from '../helpers/plc.js';
import { capturingLog } from '../helpers/station.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { until } from '../helpers/until.js';

/**
 * The worst thing a vision system can do is give the PLC a verdict for the
 * wrong part while it reports itself healthy. Every test here asserts on the
 * PLC's side (a real OPC UA server playing the PLC, counting what it got):
 * each trigger got exactly one answer, echoing its own part id and counter,
 * and no answer ever arrived while the PLC was not asking. The camera folder
 * holds only defective castings, so a pass would be a silent pass.
 */

const bed = new PlcTestbed();
const proxies: TcpProxy[] = [];
afterEach(async () => {
  await bed.closeAll();
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

/** What the PLC counted across the run, and each cycle: one answer, its own echo, never a pass. */
function expectSound(plc: SimulatedPlc, records: readonly TriggerRecord[]): void {
  const r = plc.report();
  expect({ echoMismatches: r.echoMismatches, duplicateAnswers: r.duplicateAnswers, strayResults: r.strayResults, staleLatches: r.staleLatches }).toEqual({
    echoMismatches: 0,
    duplicateAnswers: 0,
    strayResults: 0,
    staleLatches: 0,
  });
  for (const c of records) {
    expect(c, `cycle ${c.partId}/${c.counter}`).toMatchObject({ outcome: 'ok', answers: 1, echo: { partId: c.partId, counter: c.counter } });
    expect(c.verdict, `cycle ${c.partId}/${c.counter} got a pass`).not.toBe(1);
  }
}

const plcHealth = (station: Station): string | undefined => station.health().steps.plc?.status;

/**
 * The PLC behind a relay a test can cut. Its sim serves the standard nodeset: through a relay the
 * endpoint URL the client asks for is not the server's, and the server says so with an audit event
 * whose type the minimal nodeset lacks.
 */
async function proxied(plc: SimulatedPlc): Promise<TcpProxy> {
  const proxy = await TcpProxy.start(plc.port);
  proxies.push(proxy);
  return proxy;
}

describe('a PLC that restarts', () => {
  it('keeping its data, and asking again for the part it was waiting on: that part is answered once, inspected once, and every later part gets its own verdict', async () => {
    const plc = await bed.sim({ heartbeatMs: 50 });
    const station = bed.station(plc.endpoint, { delay: { ms: 1500, on: [0] }, station: { cycleBudgetMs: 4000 } });
    const run = await bed.run(station);
    await until(() => plc.report().interlockOpen);
    const first = plc.trigger('R-1');
    await until(() => plc.read('busy') === true);
    await plc.restart({ mode: 'retentive', downMs: 200 });
    const again = await first;
    const later = [await plc.trigger('R-2'), await plc.trigger('R-3'), await plc.trigger('R-4')];
    await run.stop();
    expect(again).toMatchObject({ partId: 'R-1', counter: 1, retried: true });
    expectSound(plc, [again, ...later]);
    // inspected once each: the repeat was answered from the cycle, not inspected again
    expect(run.results.map((r) => r.partId)).toEqual(['R-1', 'R-2', 'R-3', 'R-4']);
    expect(later.map((r) => r.counter)).toEqual([2, 3, 4]);
  }, 40_000);

  it('keeping its data while it was reading the answer: it gets the same answer again, once, and the next part is not answered one cycle late', async () => {
    const plc = await bed.sim({ heartbeatMs: 50 });
    // The PLC takes 1.5 s to latch; linegate waits 3 s for its ack.
    const run = await bed.run(bed.station(plc.endpoint, { plc: { ackTimeoutMs: 3000 }, station: { sinkTimeoutMs: 4000, closeTimeoutMs: 4000 } }));
    await until(() => plc.report().interlockOpen);
    const first = plc.trigger('A-1', { ackDelayMs: 1500 });
    await until(() => plc.read('resultValid') === true);
    await plc.restart({ mode: 'retentive', downMs: 200 });
    const again = await first;
    const next = [await plc.trigger('A-2'), await plc.trigger('A-3')];
    await run.stop();
    expect(again).toMatchObject({ partId: 'A-1', retried: true, acked: true });
    expectSound(plc, [again, ...next]);
    expect(run.results.map((r) => r.partId)).toEqual(['A-1', 'A-2', 'A-3']);
    // delivery means acknowledged: A-1's ack was lost with the link, whatever the PLC did after
    expect(run.results.map((r) => r.delivery.plc?.status)).toEqual(['failed', 'delivered', 'delivered']);
    expect(run.results[0]!.delivery.plc?.error).toContain('LG_ERR_PLC_DOWN');
  }, 40_000);

  it('under a running line, kept or fresh, twice: no wrong-part verdict, no answer twice, no silent pass, and health tells of each outage', async () => {
    const plc = await bed.sim({ heartbeatMs: 50, triggerRateHz: 10, triggerLowMs: 20 });
    const records: TriggerRecord[] = [];
    plc.on('cycle', (r) => records.push(r));
    const station = bed.station(plc.endpoint);
    const run = await bed.run(station);
    for (const mode of ['retentive', 'fresh'] as const) {
      const before = records.length;
      await until(() => records.length >= before + 8, { ms: 20_000 });
      await plc.restart({ mode, downMs: 300 });
      await until(() => plc.report().interlockOpen, { ms: 20_000 });
    }
    const before = records.length;
    await until(() => records.length >= before + 8, { ms: 20_000 });
    await run.stop();
    await until(() => !plc.report().interlockOpen);
    // cycles the restarts cut short are the PLC's own time-outs; every cycle that got an answer got its own, once
    const answered = records.filter((r) => r.outcome !== 'timeout' && r.outcome !== 'not-ready');
    expect(answered.length).toBeGreaterThanOrEqual(24);
    expectSound(plc, answered);
    const health = station.health().steps.plc;
    expect(health?.data).toMatchObject({ cycles: { outages: 2 }, lastOutage: { cyclesLost: expect.any(Number) } });
  }, 90_000);
});

describe('a link that drops (the network, not the PLC)', () => {
  /** Cuts the link, waits until linegate says so, restores it and waits until linegate is back. */
  async function blip(proxy: TcpProxy, station: Station): Promise<void> {
    proxy.cut();
    await until(() => plcHealth(station) === 'down', { ms: 10_000 });
    proxy.restore();
    await until(() => plcHealth(station) === 'ok', { ms: 20_000 });
  }

  it('between two parts', async () => {
    const plc = await bed.sim({ addressSpace: 'standard', heartbeatMs: 50 });
    const proxy = await proxied(plc);
    const station = bed.station(proxy.endpoint);
    const run = await bed.run(station);
    await until(() => plc.report().interlockOpen);
    const a = await plc.trigger('L-1');
    await blip(proxy, station);
    const b = await plc.trigger('L-2');
    await run.stop();
    expectSound(plc, [a, b]);
    expect(run.results.map((r) => [r.partId, r.delivery.plc?.status])).toEqual([
      ['L-1', 'delivered'],
      ['L-2', 'delivered'],
    ]);
  }, 40_000);

  it('while the part is inspected: its verdict is written once the link is back and the PLC still asks', async () => {
    const plc = await bed.sim({ addressSpace: 'standard', heartbeatMs: 50, resultTimeoutMs: 20_000 });
    const proxy = await proxied(plc);
    const station = bed.station(proxy.endpoint, { delay: { ms: 1000, on: [0] }, station: { cycleBudgetMs: 4000 } });
    const run = await bed.run(station);
    await until(() => plc.report().interlockOpen);
    const pending = plc.trigger('L-1');
    await until(() => plc.read('busy') === true);
    await blip(proxy, station);
    const a = await pending;
    const b = await plc.trigger('L-2');
    await run.stop();
    expectSound(plc, [a, b]);
    expect(run.results.map((r) => r.partId)).toEqual(['L-1', 'L-2']);
  }, 40_000);

  it('while the PLC reads the answer: no second answer, and ResultValid goes down once it acknowledges', async () => {
    const plc = await bed.sim({ addressSpace: 'standard', heartbeatMs: 50, resultTimeoutMs: 20_000 });
    const proxy = await proxied(plc);
    const station = bed.station(proxy.endpoint, { plc: { ackTimeoutMs: 8000 }, station: { sinkTimeoutMs: 9000, closeTimeoutMs: 9000 } });
    const run = await bed.run(station);
    await until(() => plc.report().interlockOpen);
    const pending = plc.trigger('L-1', { ackDelayMs: 1500 });
    await until(() => plc.read('resultValid') === true);
    await blip(proxy, station);
    const a = await pending;
    const b = await plc.trigger('L-2');
    await run.stop();
    expect(a).toMatchObject({ acked: true });
    expectSound(plc, [a, b]);
  }, 40_000);

  it('while the PLC never acknowledges and gives the part up during the outage: ResultValid is dropped at the reconnect, so the next part does not read the last one\'s answer', async () => {
    const plc = await bed.sim({ addressSpace: 'standard', heartbeatMs: 50, resultTimeoutMs: 1500 });
    const proxy = await proxied(plc);
    // linegate would wait 5 s for the ack: the outage, not its time-out, is what leaves ResultValid up
    const station = bed.station(proxy.endpoint, { plc: { ackTimeoutMs: 5000 }, station: { sinkTimeoutMs: 6000, closeTimeoutMs: 6000 } });
    const run = await bed.run(station);
    await until(() => plc.report().interlockOpen);
    const pending = plc.trigger('L-1', { ack: false });
    await until(() => plc.read('resultValid') === true);
    proxy.cut();
    await until(() => plcHealth(station) === 'down', { ms: 10_000 });
    const a = await pending; // the PLC latched, never acked, waited for ResultValid to drop, and gave up
    expect(a).toMatchObject({ acked: false, answers: 1, echo: { partId: 'L-1', counter: 1 } });
    expect(plc.read('resultValid')).toBe(true);
    proxy.restore();
    await until(() => plcHealth(station) === 'ok', { ms: 20_000 });
    await until(() => plc.read('resultValid') === false, { ms: 5000 });
    const b = await plc.trigger('L-2');
    await run.stop();
    expectSound(plc, [b]);
  }, 40_000);

  it('after the acknowledgement, before the next trigger', async () => {
    const plc = await bed.sim({ addressSpace: 'standard', heartbeatMs: 50 });
    const proxy = await proxied(plc);
    const station = bed.station(proxy.endpoint);
    const run = await bed.run(station);
    await until(() => plc.report().interlockOpen);
    const a = await plc.trigger('L-1');
    proxy.cut();
    await until(() => plcHealth(station) === 'down', { ms: 10_000 });
    // health says the outage while it lasts
    expect(station.health().steps.plc?.detail).toMatch(/PLC link down for .* s; 0 cycle\(s\) lost so far/);
    proxy.restore();
    await until(() => plcHealth(station) === 'ok', { ms: 20_000 });
    const b = await plc.trigger('L-2');
    await run.stop();
    expectSound(plc, [a, b]);
  }, 40_000);
});

describe('acknowledgements and the fail-safe', () => {
  it('a PLC that drops Trigger without acknowledging: ResultValid goes down at once, and its next trigger is taken at once, not after the ack time-out', async () => {
    const plc = await bed.sim({ heartbeatMs: 50, resultTimeoutMs: 200 });
    const { log, entries } = capturingLog();
    const run = await bed.run(bed.station(plc.endpoint, { log, plc: { ackTimeoutMs: 4000 }, station: { sinkTimeoutMs: 5000, closeTimeoutMs: 5000 } }));
    await until(() => plc.report().interlockOpen);
    const a = await plc.trigger('K-1', { ack: false });
    const b = await plc.trigger('K-2');
    await run.stop();
    expect(a).toMatchObject({ acked: false, answers: 1, echo: { partId: 'K-1', counter: 1 } });
    expectSound(plc, [b]);
    const [ra, rb] = run.results;
    expect(ra?.delivery.plc).toMatchObject({ status: 'failed', error: expect.stringContaining('LG_ERR_PLC_NO_ACK') });
    expect(rb?.delivery.plc?.status).toBe('delivered');
    // K-2 was taken when the PLC raised it, not when K-1's ack time-out (4 s) ran out
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
    const proxy = await TcpProxy.start(plc.port, '127.0.0.1', 100);
    proxies.push(proxy);
    const run = await bed.run(bed.station(proxy.endpoint, { station: { cycleBudgetMs: 100 }, plc: { deadlineMs: 150 } }));
    await until(() => plc.report().interlockOpen, { ms: 15_000 });
    const records: TriggerRecord[] = [];
    for (let i = 1; i <= 3; i++) records.push(await plc.trigger(`D-${i}`));
    await run.stop();
    expectSound(plc, records);
    for (const r of records) expect([`${r.verdict}/${r.rejectCode}`]).toSatisfy(([v]: string[]) => v === '2/1' || v === '3/909');
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

describe('a run that ends', () => {
  it('with --max-frames: every trigger the PLC raised is answered, and the summary adds up', async () => {
    const plc = await bed.sim({ heartbeatMs: 50, triggerRateHz: 20, triggerLowMs: 10 });
    const records: TriggerRecord[] = [];
    plc.on('cycle', (r) => records.push(r));
    const station = bed.station(plc.endpoint);
    await station.start();
    const summary = await station.run({ maxFrames: 10 });
    await until(() => !plc.report().interlockOpen);
    await station.close();
    expect(summary.frames).toBe(10);
    expect(summary.pass + summary.fail + summary.error + summary.dropped + summary.undelivered).toBe(10);
    // no trigger was left to the PLC's own time-out: the ones after the tenth frame got "not decidable" (905)
    expect(records.filter((r) => r.outcome === 'timeout')).toEqual([]);
    expectSound(plc, records.filter((r) => r.outcome !== 'not-ready'));
    for (const r of records.slice(10)) expect(r).toMatchObject({ verdict: 3, rejectCode: 905 });
  }, 30_000);
});
