import { describe, expect, it } from 'vitest';
import type { Station } from '../../runtime/station.js';
import { integrityBed, expectSound, plcHealth } from '../helpers/plc-integrity.js';
import type { TcpProxy } from '../helpers/tcp-proxy.js';
import { until } from '../helpers/until.js';

/** PLC integrity (see test/helpers/plc-integrity.ts): a link that drops (the network, not the PLC) at each point of the handshake. */
const { bed, proxied } = integrityBed();

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
