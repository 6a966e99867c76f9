import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { InspectionResult } from '../../runtime/result.js';
import type { Station } from '../../runtime/station.js';
import { SimulatedPlc } from '../../plugins/opcua-plc/sim.js';
import { opcuaPlc } from '../../plugins/opcua-plc/index.js';
import { defaultTagMap } from '../../plugins/opcua-plc/tags.js';
import { contextFor, sampleResult } from '../helpers/samples.js';
import { scratch } from '../helpers/scratch.js';
import { showOwnCertificate, trustCertificate } from '../../plugins/opcua-plc/pki.js';
import { ROOT, stationFrom } from '../helpers/station.js';

/** Everything over loopback: linegate's client against a real OPC UA server playing the PLC. */

const sims: SimulatedPlc[] = [];
const stations: Station[] = [];
afterEach(async () => {
  await Promise.all(stations.splice(0).map((s) => s.close()));
  await Promise.all(sims.splice(0).map((s) => s.stop()));
});

async function sim(options: Parameters<typeof SimulatedPlc.start>[0] = {}): Promise<SimulatedPlc> {
  const s = await SimulatedPlc.start({ port: 0, triggerRateHz: 0, resultTimeoutMs: 3000, ...options });
  sims.push(s);
  return s;
}

/** The casting pipeline, triggered by the PLC, answering it. */
function plcStation(endpoint: string, plc: Record<string, unknown> = {}, stage?: Record<string, unknown>): Station {
  const station = stationFrom({
    station: { id: 'plc-test', cycleBudgetMs: 3000 },
    source: { name: 'cam', use: 'core/opcua-trigger@1', config: { plc: 'plc', camera: { dir: path.join(ROOT, 'fixtures/casting/def_front') } } },
    stages:
      stage === undefined
        ? [
            { name: 'decode', use: 'core/image-decode@1', config: { color: 'GRAY' } },
            { name: 'model', use: 'core/onnx-model@1', config: { model: 'models/casting-cls/1' } },
            { name: 'classify', use: 'core/classify-decode@1' },
            { name: 'verdict', use: 'core/threshold-rules@1', config: { rules: [{ label: 'defect', rejectCode: 1 }] } },
          ]
        : [stage, { name: 'verdict', use: 'test/decide@1' }],
    sinks: [{ name: 'plc', use: 'core/opcua-plc@1', config: { endpoint, connectAttempts: 3, connectDelayMs: 200, deadlineMs: 2500, ...plc } }],
  });
  stations.push(station);
  return station;
}

/** Waits for `cond`, polling; fails the test with the condition's text after `ms`. */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for: ${cond.toString()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs the station in the background until told to stop; resolves with its summary. */
async function running(station: Station): Promise<{ stop: () => Promise<void>; results: InspectionResult[] }> {
  const results: InspectionResult[] = [];
  station.on('result', (r) => results.push(r));
  await station.start();
  const done = station.run();
  return {
    results,
    stop: async () => {
      station.stop();
      await done;
    },
  };
}

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
    const report = plc.report();
    expect(report).toMatchObject({ triggers: 4, timeouts: 0, echoMismatches: 0, verdicts: { 2: 4 } });
    await until(() => !plc.report().visionReady); // dropped when the station stopped
  });

  it('writes "not decidable" with reject code 909 when the verdict misses the deadline', async () => {
    const plc = await sim();
    const run = await running(plcStation(plc.endpoint, { deadlineMs: 300 }, { name: 'slow', use: 'test/stage@1', config: { delayMs: 1500, ignoreSignal: true } }));
    const record = await plc.trigger('SLOW-1');
    await run.stop();
    expect(record).toMatchObject({ partId: 'SLOW-1', outcome: 'ok', verdict: 3, rejectCode: 909 });
    // the late result was never written for that part: it is recorded as not delivered
    expect(run.results[0]!.delivery.plc).toMatchObject({ status: 'failed', error: expect.stringContaining('LG_ERR_PLC_NOT_PENDING') });
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
    await until(() => plc.report().visionReady, 15_000);
    const after = [await plc.trigger('B-1'), await plc.trigger('B-2')];
    await run.stop();
    expect(after.map((r) => [r.partId, r.outcome, r.verdict])).toEqual([
      ['B-1', 'ok', 2],
      ['B-2', 'ok', 2],
    ]);
    // no verdict went to the wrong part: every answer echoed its own trigger
    expect(plc.report().echoMismatches).toBe(0);
  }, 40_000);

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

describe('core/opcua-plc@1 security', () => {
  const users = [{ username: 'vision', password: 's3cret-pw' }];
  const secureSim = (accept = true) =>
    sim({ security: { allowAnonymous: false, users, modes: ['SignAndEncrypt'], policies: ['Basic256Sha256'], automaticallyAcceptUnknownCertificate: accept } });
  const config = (endpoint: string, pki: string, passwordEnv: string) =>
    opcuaPlc.manifest.config.parse({
      endpoint,
      mode: 'free-run',
      connectAttempts: 2,
      connectDelayMs: 200,
      security: { mode: 'SignAndEncrypt', policy: 'Basic256Sha256', pki },
      user: { username: { env: 'LG_TEST_PLC_USER' }, password: { env: passwordEnv } },
    });

  afterEach(() => {
    delete process.env.LG_TEST_PLC_USER;
    delete process.env.LG_TEST_PLC_PASSWORD;
    delete process.env.LG_TEST_PLC_WRONG;
  });

  it('works with SignAndEncrypt, Basic256Sha256 and a username from the environment, once the PLC certificate is trusted', async () => {
    const plc = await secureSim();
    const pki = scratch('lg-pki-');
    await trustCertificate(pki, plc.certificateFile);
    process.env.LG_TEST_PLC_USER = 'vision';
    process.env.LG_TEST_PLC_PASSWORD = 's3cret-pw';
    const ctx = contextFor(new AbortController().signal);
    const sink = await opcuaPlc.init(config(plc.endpoint, pki, 'LG_TEST_PLC_PASSWORD'), ctx);
    try {
      await sink.write(sampleResult({ partId: 'SEC-1' }), ctx);
      expect(plc.read('resultPartId')).toBe('SEC-1');
      // linegate made its own certificate in its PKI at first start; `linegate pki show` reads it
      expect((await showOwnCertificate(pki)).subjectAltName).toContain(':linegate');
    } finally {
      await sink.close?.();
    }
  });

  it('refuses a wrong password with a clear error that does not contain the password', async () => {
    const plc = await secureSim();
    const pki = scratch('lg-pki-');
    await trustCertificate(pki, plc.certificateFile);
    process.env.LG_TEST_PLC_USER = 'vision';
    process.env.LG_TEST_PLC_WRONG = 'not-the-password';
    const err = await opcuaPlc.init(config(plc.endpoint, pki, 'LG_TEST_PLC_WRONG'), contextFor(new AbortController().signal)).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err?.code).toBe('LG_ERR_PLC_SESSION');
    expect(err?.message).toMatch(/BadUserAccessDenied|BadIdentityTokenRejected|BadIdentityTokenInvalid/);
    expect(err?.message).not.toContain('not-the-password');
  });

  it('refuses a PLC whose certificate linegate does not trust', async () => {
    const plc = await secureSim();
    process.env.LG_TEST_PLC_USER = 'vision';
    process.env.LG_TEST_PLC_PASSWORD = 's3cret-pw';
    const err = await opcuaPlc.init(config(plc.endpoint, scratch('lg-pki-'), 'LG_TEST_PLC_PASSWORD'), contextFor(new AbortController().signal)).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err?.code).toBe('LG_ERR_PLC_CONNECT');
    expect(err?.message).toContain('BadCertificateUntrusted');
    expect(err?.message).toContain('linegate pki trust');
  });

  it('names the missing variable when the password is not in the environment', async () => {
    const plc = await secureSim();
    process.env.LG_TEST_PLC_USER = 'vision';
    await expect(opcuaPlc.init(config(plc.endpoint, scratch('lg-pki-'), 'LG_TEST_PLC_PASSWORD'), contextFor(new AbortController().signal))).rejects.toMatchObject({
      code: 'LG_ERR_PLC_CREDENTIALS',
      message: expect.stringContaining('LG_TEST_PLC_PASSWORD is not set'),
    });
  });
});

