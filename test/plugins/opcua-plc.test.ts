import { afterEach, describe, expect, it } from 'vitest';
import type { Station } from '../../runtime/station.js';
import { SimulatedPlc } from '../../plugins/opcua-plc/sim.js';
import { opcuaPlc } from '../../plugins/opcua-plc/index.js';
import { defaultTagMap } from '../../plugins/opcua-plc/tags.js';
import { contextFor, sampleResult } from '../helpers/samples.js';
import { until } from '../helpers/until.js';
import { capturingLog, stationFrom } from '../helpers/station.js';
import { PlcTestbed, type PlcStationOptions, type Running } from '../helpers/plc.js';

/** Everything over loopback: linegate's client against a real OPC UA server playing the PLC. The handshake here; tag maps and security in opcua-plc-config.test.ts. */

const bed = new PlcTestbed();
afterEach(() => bed.closeAll());
const sim = (options: Parameters<PlcTestbed['sim']>[0] = {}): Promise<SimulatedPlc> => bed.sim(options);
const plcStation = (endpoint: string, o: PlcStationOptions = {}): Station => bed.station(endpoint, o);
const running = (station: Station): Promise<Running> => bed.run(station);

describe('core/opcua-plc@1 with the simulated PLC', () => {
  it('answers every trigger with one verdict for the right part, through the full handshake', async () => {
    const plc = await sim();
    const run = await running(plcStation(plc.endpoint));
    await until(() => plc.report().visionReady);
    const records = [];
    for (let i = 1; i <= 4; i++) records.push(await plc.trigger(`PART-${i}`));
    await run.stop();
    expect(records.map((r) => [r.partId, r.counter, r.outcome])).toEqual([
      ['PART-1', 1, 'ok'],
      ['PART-2', 2, 'ok'],
      ['PART-3', 3, 'ok'],
      ['PART-4', 4, 'ok'],
    ]);
    // every fixture here is a defective casting: NOK with the rule's reject code, and the model named
    for (const r of records) expect(r).toMatchObject({ verdict: 2, rejectCode: 1, modelVersion: 'casting-cls@1' });
    expect(run.results.map((r) => [r.partId, r.delivery.plc?.status])).toEqual(records.map((r) => [r.partId, 'delivered']));
    // each result carries the trigger it answered: the PLC's counter, echoed
    expect(run.results.map((r) => r.trigger?.counter)).toEqual(records.map((r) => r.counter));
    const report = plc.report();
    expect(report).toMatchObject({ triggers: 4, timeouts: 0, echoMismatches: 0, verdicts: { 2: 4 } });
    await until(() => !plc.report().visionReady); // dropped when the station stopped
  });

  it('refuses at start a tag map whose types do not fit the PLC, naming the tag', async () => {
    const plc = await sim();
    const ctx = contextFor(new AbortController().signal);
    // a map that points the verdict at the model-version string
    const tags = { ...defaultTagMap(), verdict: 'ns=1;s="VisionDB"."ModelVersion"', score: 'ns=1;s="VisionDB"."NoSuchTag"' };
    const err = await opcuaPlc.init(opcuaPlc.manifest.config.parse({ endpoint: plc.endpoint, tags }), ctx).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err?.code).toBe('LG_ERR_PLC_TAG_TYPE');
    expect(err?.message).toContain('verdict (ns=1;s="VisionDB"."ModelVersion") is String on the server; linegate needs int');
    expect(err?.message).toContain('score (ns=1;s="VisionDB"."NoSuchTag"): BadNodeIdUnknown');
  });

  it('gives up on a dead endpoint after the configured tries, with a clear error', async () => {
    const ctx = contextFor(new AbortController().signal);
    const t0 = Date.now();
    await expect(opcuaPlc.init(opcuaPlc.manifest.config.parse({ endpoint: 'opc.tcp://127.0.0.1:1/', connectAttempts: 2, connectDelayMs: 100 }), ctx)).rejects.toMatchObject({
      code: 'LG_ERR_PLC_CONNECT',
    });
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  it('survives a PLC restart mid-run: reconnects, re-asserts Ready, and answers the next parts', async () => {
    const plc = await sim();
    const run = await running(plcStation(plc.endpoint));
    expect((await plc.trigger('A-1')).outcome).toBe('ok');
    await plc.restart();
    expect(plc.report().visionReady).toBe(false); // a restarted PLC has forgotten everything
    await until(() => plc.report().visionReady, { ms: 15_000 });
    const after = [await plc.trigger('B-1'), await plc.trigger('B-2')];
    await run.stop();
    expect(after.map((r) => [r.partId, r.outcome, r.verdict])).toEqual([
      ['B-1', 'ok', 2],
      ['B-2', 'ok', 2],
    ]);
    // no verdict went to the wrong part: every answer echoed its own trigger
    expect(plc.report().echoMismatches).toBe(0);
  }, 40_000);

  it('answers a repeated trigger again without inspecting the part twice, and logs the triggers it missed', async () => {
    const plc = await sim();
    const { log, entries } = capturingLog();
    const run = await running(plcStation(plc.endpoint, { log }));
    await until(() => plc.report().visionReady);
    const first = await plc.trigger('R-1');
    const again = await plc.trigger('R-1', { counter: first.counter }); // a PLC retrying the same cycle after a reconnect
    const jumped = await plc.trigger('M-5', { counter: first.counter + 4 }); // three triggers linegate never saw
    await run.stop();
    expect([first, again, jumped].map((r) => [r.partId, r.counter, r.outcome, r.verdict, r.echo])).toEqual([
      ['R-1', 1, 'ok', 2, { partId: 'R-1', counter: 1 }],
      ['R-1', 1, 'ok', 2, { partId: 'R-1', counter: 1 }],
      ['M-5', 5, 'ok', 2, { partId: 'M-5', counter: 5 }],
    ]);
    // the repeat was answered from the last result, not inspected again
    expect(run.results.map((r) => r.partId)).toEqual(['R-1', 'M-5']);
    expect(entries().filter((e) => e.msg?.startsWith('repeated trigger: the answer is written again'))).toMatchObject([{ partId: 'R-1', counter: 1 }]);
    expect(entries().filter((e) => e.msg?.startsWith('PLC triggers were missed'))).toMatchObject([{ missed: 3, from: 1, to: 5 }]);
  });

  it('notices a PLC whose heartbeat stops while its server still answers, and when it beats again', async () => {
    const plc = await sim({ heartbeatMs: 50 });
    const { log, entries } = capturingLog();
    // A watchdog 20 beats long: a loaded test machine can hold up a beat for a few hundred ms, a PLC in STOP holds it for good.
    const run = await running(plcStation(plc.endpoint, { log, plc: { plcWatchdogMs: 1000 } }));
    const said = (text: string) => entries().some((e) => e.msg?.startsWith(text));
    await until(() => plc.report().visionReady);
    await new Promise((r) => setTimeout(r, 1500));
    expect(said('PLC heartbeat lost')).toBe(false); // a beating PLC raises no alarm in one and a half watchdog times
    plc.setHeartbeat(false); // the PLC goes to STOP; its OPC UA server stays up
    await until(() => said('PLC heartbeat lost'));
    plc.setHeartbeat(true);
    await until(() => said('PLC heartbeat is back'));
    expect((await plc.trigger('HB-1')).outcome).toBe('ok');
    await run.stop();
    expect(entries().filter((e) => e.msg?.startsWith('PLC heartbeat lost'))).toHaveLength(1); // one alarm per loss, not one per check
  });

  it('keeps the late verdict of a part the restarted PLC forgot off the part it asks about next', async () => {
    const plc = await sim({ resultTimeoutMs: 20_000 });
    const { log, entries } = capturingLog();
    const station = plcStation(plc.endpoint, {
      log,
      station: { cycleBudgetMs: 20_000, maxInFlight: 2 },
      // the first part is still being inspected when the PLC goes down and comes back
      stage: { name: 'slow', use: 'test/stage@1', config: { delayMs: 6000, delayOn: [0], ignoreSignal: true } },
    });
    const run = await running(station);
    await until(() => plc.report().visionReady);
    const a = plc.trigger('A-1').catch((e: unknown) => e);
    await until(() => plc.read('busy') === true);
    const t0 = Date.now();
    await plc.restart();
    expect(await a).toMatchObject({ code: 'LG_ERR_PLC_SIM_STOPPED' });
    await until(() => plc.report().visionReady, { ms: 15_000 });
    const reconnectMs = Date.now() - t0;
    const b = await plc.trigger('B-1'); // the restarted PLC counts from 1 again: the same counter as A-1's
    await until(() => run.results.length === 2, { ms: 15_000 });
    await run.stop();
    expect(b).toMatchObject({ partId: 'B-1', counter: 1, outcome: 'ok', echo: { partId: 'B-1', counter: 1 } });
    expect(Object.fromEntries(run.results.map((r) => [r.partId, r.delivery.plc?.status]))).toEqual({ 'A-1': 'failed', 'B-1': 'delivered' });
    expect(plc.report().echoMismatches).toBe(0);
    // the reconnect came before A-1's verdict did: the link dropped the part itself, not just a dead write
    expect(reconnectMs).toBeLessThan(6000);
    expect(entries().filter((e) => e.msg?.startsWith('the PLC restarted and lost its data'))).toMatchObject([{ partId: 'A-1' }]);
    expect(run.results.find((r) => r.partId === 'A-1')?.delivery.plc?.error).toContain('the PLC restarted and no longer knows it');
  }, 60_000);

  it('refuses to start in mode plc when no source takes the PLC\'s triggers: every part would get "not decidable"', async () => {
    const plc = await sim();
    const station = stationFrom({
      station: { id: 'plc-no-trigger' },
      source: { name: 'cam', use: 'core/folder-source@1', config: { dir: 'fixtures/casting/def_front' } },
      stages: [
        { name: 'decode', use: 'core/image-decode@1' },
        { name: 'quality', use: 'core/image-quality@1' },
        { name: 'verdict', use: 'core/threshold-rules@1', config: { rules: [{ label: 'blurred', rejectCode: 11 }] } },
      ],
      sinks: [{ name: 'line-plc', use: 'core/opcua-plc@1', config: { endpoint: plc.endpoint, connectAttempts: 2 } }],
    });
    try {
      await expect(station.start()).rejects.toMatchObject({ code: 'LG_ERR_PLC_NO_TRIGGER_SOURCE', message: expect.stringContaining('plc: line-plc') });
    } finally {
      await station.close();
    }
  });

  it('says when the PLC grants a slower subscription than asked (each trigger reaches linegate that much later)', async () => {
    const plc = await sim({ minPublishingIntervalMs: 100 });
    const { log, entries } = capturingLog();
    const ctx = { ...contextFor(new AbortController().signal), log };
    const sink = await opcuaPlc.init(opcuaPlc.manifest.config.parse({ endpoint: plc.endpoint, mode: 'free-run' }), ctx);
    try {
      const warned = entries().find((e) => e.msg?.startsWith("the PLC's server granted a 100 ms publishing"));
      expect(warned).toMatchObject({ requested: { publishingIntervalMs: 10, samplingIntervalMs: 0 }, granted: { publishingIntervalMs: 100 } });
      expect(sink.health?.().data).toMatchObject({ granted: { publishingIntervalMs: 100 } });
    } finally {
      await sink.close?.();
    }
  });

  it('asks for a keep-alive about once a second, not every ten publishing intervals (an idle PLC server would otherwise send ten empty publish responses a second)', async () => {
    const plc = await sim();
    const ctx = contextFor(new AbortController().signal);
    const sink = await opcuaPlc.init(opcuaPlc.manifest.config.parse({ endpoint: plc.endpoint, mode: 'free-run' }), ctx);
    try {
      // What the PLC's server granted, read back from the subscription: 10 ms publishing, 100 intervals, 300 or more to live.
      const granted = (sink.health?.().data as { granted: { publishingIntervalMs: number; keepAliveCount: number; lifetimeCount: number } }).granted;
      expect(granted.publishingIntervalMs).toBe(10);
      expect(granted.keepAliveCount * granted.publishingIntervalMs).toBe(1000);
      expect(granted.lifetimeCount).toBeGreaterThanOrEqual(3 * granted.keepAliveCount);
    } finally {
      await sink.close?.();
    }
  });

  it('streams counted results in free-run mode, with no trigger', async () => {
    const plc = await sim();
    const ctx = contextFor(new AbortController().signal);
    const sink = await opcuaPlc.init(opcuaPlc.manifest.config.parse({ endpoint: plc.endpoint, mode: 'free-run' }), ctx);
    try {
      for (let i = 1; i <= 3; i++) await sink.write(sampleResult({ partId: `FR-${i}`, verdict: i === 2 ? 'pass' : 'fail', rejectCode: i === 2 ? 0 : 11 }), ctx);
      expect([plc.read('resultPartId'), plc.read('resultCounter'), plc.read('verdict'), plc.read('rejectCode')]).toEqual(['FR-3', 3, 2, 11]);
    } finally {
      await sink.close?.();
    }
  });
});
