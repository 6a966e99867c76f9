import { afterEach, expect } from 'vitest';
import type { Station } from '../../runtime/station.js';
import type { SimulatedPlc, TriggerRecord } from '../../plugins/opcua-plc/sim.js';
import { PlcTestbed } from './plc.js';
import { TcpProxy } from './tcp-proxy.js';

/**
 * What the PLC integrity tests share (test/plugins/plc-integrity-*.test.ts, one file per kind of
 * fault so that they run side by side). The worst thing a vision system can do is give the PLC a
 * verdict for the wrong part while it reports itself healthy. Every test asserts on the PLC's side (a
 * real OPC UA server playing the PLC, counting what it got): each trigger got exactly one answer,
 * echoing its own part id and counter, and no answer ever arrived while the PLC was not asking. The
 * camera folder holds only defective castings, so a pass would be a silent pass.
 */

/** A testbed for one test file, its PLCs, stations and relays closed after each test. */
export function integrityBed(): { bed: PlcTestbed; proxied: (plc: SimulatedPlc, delayMs?: number) => Promise<TcpProxy> } {
  const bed = new PlcTestbed();
  const proxies: TcpProxy[] = [];
  afterEach(async () => {
    await bed.closeAll();
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });
  return {
    bed,
    /**
     * The PLC behind a relay a test can cut. Its sim serves the standard nodeset: through a relay the
     * endpoint URL the client asks for is not the server's, and the server says so with an audit event
     * whose type the minimal nodeset lacks. `delayMs`: each way, for a slow link.
     */
    async proxied(plc, delayMs) {
      const proxy = await TcpProxy.start(plc.port, '127.0.0.1', delayMs);
      proxies.push(proxy);
      return proxy;
    },
  };
}

/** What the PLC counted across the run, and each cycle: one answer, its own echo, never a pass. */
export function expectSound(plc: SimulatedPlc, records: readonly TriggerRecord[]): void {
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

export const plcHealth = (station: Station): string | undefined => station.health().steps.plc?.status;
