import { describe, expect, it } from 'vitest';
import type { TriggerRecord } from '../../plugins/opcua-plc/sim.js';
import { integrityBed, expectSound } from '../helpers/plc-integrity.js';
import { until } from '../helpers/until.js';

/** PLC integrity (see test/helpers/plc-integrity.ts): a PLC that restarts (keeping its data or fresh) mid-part, and a run that ends with parts still asked for. */
const { bed } = integrityBed();

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
