// First: node-opcua's W27 diagnostic skipped and its loggers routed before this file loads node-opcua itself.
import '../../plugins/opcua-plc/opcua-preload.js';
import { once } from 'node:events';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  AttributeIds,
  DataType,
  MessageSecurityMode,
  OPCUACertificateManager,
  OPCUAClient,
  SecurityPolicy,
  TimestampsToReturn,
  UserTokenType,
  type ClientSession,
  type ClientSubscription,
  type DataValue,
  type UserIdentityInfo,
  type WriteValueOptions,
} from 'node-opcua';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { SimulatedPlc, type SimOptionsInput, type SimReport, type TriggerRecord } from '../../plugins/opcua-plc/sim.js';
import { SIM_TYPES, defaultTagMap, type TagName } from '../../plugins/opcua-plc/tags.js';
import { linegate } from '../helpers/cli.js';
import { LinegateProcess } from '../helpers/child.js';
import { scratch } from '../helpers/scratch.js';
import { until } from '../helpers/until.js';

const TAGS = defaultTagMap();

/** What the fake vision system answers for a trigger; undefined: it stays silent. */
type Answer = (job: { partId: string; counter: number }) =>
  | { verdict: number; rejectCode: number; score?: number; modelVersion?: string; echoPartId?: string; echoCounter?: number }
  | undefined;

interface VisionOptions {
  answer?: Answer;
  /** Keep retrying for ever (restart test); otherwise connect fails fast. */
  reconnect?: boolean;
  secure?: { mode: 'Sign' | 'SignAndEncrypt'; policy: 'Basic256Sha256' | 'Aes128_Sha256_RsaOaep' };
  user?: { userName: string; password: string };
  /** Write VisionReady = true and a moving VisionHeartbeat, at connect and after every reconnect, as linegate does (default true). */
  alive?: boolean;
  /** How long to wait for ResultAck before dropping ResultValid anyway, as linegate's ack time-out does (default 3000). */
  ackTimeoutMs?: number;
}

const value = (tag: TagName, v: unknown): WriteValueOptions => ({
  nodeId: TAGS[tag] as string,
  attributeId: AttributeIds.Value,
  value: { value: { dataType: DataType[SIM_TYPES[tag]], value: v } },
});

/**
 * One client PKI and one server PKI for the whole file: a key pair costs 0.5-1.5 s
 * here (more on a busy machine), and nothing may land in the home folder. The
 * trust test makes its own server PKI.
 */
let clientPki: string;
let serverPki: string;
beforeAll(async () => {
  clientPki = scratch('lg-plc-sim-client-pki-');
  serverPki = scratch('lg-plc-sim-server-pki-');
  // Made once here, so that no test pays for the server's and the client's key pairs.
  const plc = await SimulatedPlc.start({ port: 0, triggerRateHz: 0, addressSpace: 'minimal', security: { pkiDir: serverPki } });
  try {
    await (await FakeVision.connect(plc.endpoint)).client.disconnect();
  } finally {
    await plc.stop();
  }
});

/**
 * linegate's side of the handshake, written against the wire with a plain
 * node-opcua client: the sim is tested by something that is not linegate.
 */
class FakeVision {
  readonly errors: unknown[] = [];
  answered = 0;
  /** Trigger rising edges seen, answered or not. */
  asked = 0;
  /** Answers whose ResultAck never came: ResultValid was dropped after ackTimeoutMs. */
  ackTimeouts = 0;
  /** ResultAck was seen high at some point. */
  sawAck = false;
  /** Per acked answer: ResultValid written -> ResultAck seen, in ms. */
  readonly ackWaitMs: number[] = [];
  /** What the server granted: the subscription's publishing interval and each monitored item's sampling interval. */
  granted = { publishingMs: NaN, triggerSamplingMs: NaN, ackSamplingMs: NaN };
  #ack = false;
  #ackWaiters: (() => void)[] = [];
  #work: Promise<void> = Promise.resolve();
  #beat = 0;
  #beating = false;
  #beatTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly client: OPCUAClient,
    readonly session: ClientSession,
    readonly subscription: ClientSubscription,
    readonly answer: Answer | undefined,
    readonly ackTimeoutMs: number,
  ) {}

  static async connect(endpoint: string, o: VisionOptions = {}): Promise<FakeVision> {
    const client = OPCUAClient.create({
      applicationName: 'linegate-plc-sim-test',
      endpointMustExist: false,
      connectionStrategy: { initialDelay: 100, maxDelay: 500, maxRetry: o.reconnect === true ? 1000 : 1 },
      requestedSessionTimeout: 20_000,
      clientCertificateManager: new OPCUACertificateManager({ rootFolder: clientPki, automaticallyAcceptUnknownCertificate: true }),
      ...(o.secure === undefined ? {} : { securityMode: MessageSecurityMode[o.secure.mode], securityPolicy: SecurityPolicy[o.secure.policy] }),
    });
    clients.push(client);
    await client.connect(endpoint);
    const identity: UserIdentityInfo = o.user === undefined ? { type: UserTokenType.Anonymous } : { type: UserTokenType.UserName, ...o.user };
    const session = await client.createSession(identity);
    const subscription = await session.createSubscription2({ requestedPublishingInterval: 10, requestedLifetimeCount: 600, requestedMaxKeepAliveCount: 20, maxNotificationsPerPublish: 100, publishingEnabled: true, priority: 10 });
    const vision = new FakeVision(client, session, subscription, o.answer, o.ackTimeoutMs ?? 3000);
    visions.push(vision);
    const trigger = await subscription.monitor({ nodeId: TAGS.trigger, attributeId: AttributeIds.Value }, { samplingInterval: 0, discardOldest: true, queueSize: 10 }, TimestampsToReturn.Neither);
    trigger.on('changed', (dv: DataValue) => {
      if (dv.value.value === true) vision.#work = vision.#work.then(() => vision.#handle()).catch((e: unknown) => void vision.errors.push(e));
    });
    const ack = await subscription.monitor({ nodeId: TAGS.resultAck, attributeId: AttributeIds.Value }, { samplingInterval: 0, discardOldest: true, queueSize: 10 }, TimestampsToReturn.Neither);
    ack.on('changed', (dv: DataValue) => {
      vision.#ack = dv.value.value === true;
      vision.sawAck ||= vision.#ack;
      if (vision.#ack) for (const w of vision.#ackWaiters.splice(0)) w();
    });
    // What the CreateMonitoredItems and CreateSubscription responses revised.
    vision.granted = { publishingMs: subscription.publishingInterval, triggerSamplingMs: Number(trigger.result?.revisedSamplingInterval), ackSamplingMs: Number(ack.result?.revisedSamplingInterval) };
    if (o.alive !== false) {
      await vision.#assertReady();
      // A restarted PLC may have forgotten VisionReady: re-assert it, as linegate does.
      client.on('connection_reestablished', () => void vision.#assertReady().catch(() => undefined));
      vision.#beatTimer = setInterval(() => vision.#heartbeat(), 100);
    }
    return vision;
  }

  stopHeartbeat(): void {
    clearInterval(this.#beatTimer);
  }

  async #assertReady(): Promise<void> {
    this.#beat++;
    await this.write(value('visionReady', true), value('visionHeartbeat', this.#beat));
  }

  #heartbeat(): void {
    // One write at a time: while the link is down, writes would pile up.
    if (this.#beating) return;
    this.#beating = true;
    this.#beat++;
    this.write(value('visionHeartbeat', this.#beat))
      .catch(() => undefined)
      .finally(() => (this.#beating = false));
  }

  async write(...values: WriteValueOptions[]): Promise<void> {
    const codes = await this.session.write(values);
    for (const c of codes) if (c.isNotGood()) throw new Error(`write failed: ${c.name}`);
  }

  async #handle(): Promise<void> {
    this.asked++;
    const [pid, ctr] = await this.session.read([
      { nodeId: TAGS.partId, attributeId: AttributeIds.Value },
      { nodeId: TAGS.triggerCounter, attributeId: AttributeIds.Value },
    ]);
    const job = { partId: String(pid?.value.value), counter: Number(ctr?.value.value) };
    const a = this.answer?.(job);
    if (a === undefined) return;
    // The payload in one write, the strobe in a second: a server may apply one write's nodes in any order.
    await this.write(
      value('resultPartId', a.echoPartId ?? job.partId),
      value('resultCounter', a.echoCounter ?? job.counter),
      value('verdict', a.verdict),
      value('rejectCode', a.rejectCode),
      value('score', a.score ?? 0),
      value('modelVersion', a.modelVersion ?? 'test@1'),
    );
    await this.write(value('resultValid', true));
    const t0 = performance.now();
    const acked = await new Promise<boolean>((resolve) => {
      if (this.#ack) return resolve(true);
      const t = setTimeout(() => resolve(false), this.ackTimeoutMs);
      this.#ackWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
    if (acked) this.ackWaitMs.push(performance.now() - t0);
    else this.ackTimeouts++;
    await this.write(value('resultValid', false));
    this.answered++;
  }
}

const sims: SimulatedPlc[] = [];
const clients: OPCUAClient[] = [];
const visions: FakeVision[] = [];

async function sim(options: SimOptionsInput = {}): Promise<SimulatedPlc> {
  const plc = await SimulatedPlc.start({ port: 0, triggerRateHz: 0, addressSpace: 'minimal', ...options, security: { pkiDir: serverPki, ...options.security } });
  sims.push(plc);
  return plc;
}

afterEach(async () => {
  for (const v of visions.splice(0)) v.stopHeartbeat();
  await Promise.all(clients.splice(0).map((c) => c.disconnect().catch(() => undefined)));
  await Promise.all(sims.splice(0).map((s) => s.stop()));
});

const VERDICTS = [1, 2, 1, 3, 2];
const byCounter: Answer = ({ counter }) => {
  const verdict = VERDICTS[(counter - 1) % VERDICTS.length]!;
  return { verdict, rejectCode: verdict === 1 ? 0 : 100 + counter, score: counter / 10, modelVersion: 'casting-cls@1' };
};

describe('SimulatedPlc', () => {
  it('runs five manual handshakes with a vision client: counters 1..5, echoes checked, verdicts latched', async () => {
    const plc = await sim();
    expect(plc.endpoint).toBe(`opc.tcp://127.0.0.1:${plc.port}/`);
    expect(plc.port).toBeGreaterThan(0);
    const vision = await FakeVision.connect(plc.endpoint, { answer: byCounter });
    const seen: TriggerRecord[] = [];
    plc.on('cycle', (r) => seen.push(r));
    const records: TriggerRecord[] = [];
    for (let i = 0; i < 5; i++) records.push(await plc.trigger());

    expect(vision.errors).toEqual([]);
    expect(records.map((r) => [r.counter, r.outcome, r.verdict, r.rejectCode])).toEqual([
      [1, 'ok', 1, 0],
      [2, 'ok', 2, 102],
      [3, 'ok', 1, 0],
      [4, 'ok', 3, 104],
      [5, 'ok', 2, 105],
    ]);
    for (const r of records) {
      expect(r.partId).toBe(`P${String(r.counter).padStart(6, '0')}`);
      expect(r.echo).toEqual({ partId: r.partId, counter: r.counter });
      expect(r.modelVersion).toBe('casting-cls@1');
      expect(r.score).toBeCloseTo(r.counter / 10, 5);
      expect(r.latencyMs).toBeGreaterThan(0);
      expect(r.latencyMs).toBeLessThan(1000);
      // Exactly one answer per raising of Trigger, and the PLC acknowledged it.
      expect([r.answers, r.acked, r.retried]).toEqual([1, true, undefined]);
    }
    expect(seen).toEqual(records);
    const report = plc.report();
    expect(report).toMatchObject({ triggers: 5, verdicts: { 0: 0, 1: 2, 2: 2, 3: 1 }, timeouts: 0, echoMismatches: 0, validStuck: 0 });
    expect(report).toMatchObject({ duplicateAnswers: 0, strayResults: 0, staleLatches: 0, notReady: 0, reasks: 0, interlockOpen: true });
    expect(report.latencyMs).toMatchObject({ n: 5, p50: expect.any(Number), p99: expect.any(Number) });
    expect(report.lastCycles).toHaveLength(5);
    // The handshake ends with every strobe down.
    expect([plc.read('trigger'), plc.read('resultAck'), plc.read('resultValid')]).toEqual([false, false, false]);
    expect(plc.read('triggerCounter')).toBe(5);
  });

  it('creates every tag under the exact NodeId of the tag map, writable, with the DataType of SIM_TYPES', async () => {
    const plc = await sim();
    const vision = await FakeVision.connect(plc.endpoint, { alive: false });
    const tags = Object.keys(SIM_TYPES) as TagName[];
    const read = await vision.session.read(tags.map((t) => ({ nodeId: TAGS[t] as string, attributeId: AttributeIds.DataType })));
    expect(read.map((dv) => dv.statusCode.name)).toEqual(tags.map(() => 'Good'));
    expect(read.map((dv) => DataType[(dv.value.value as { value: number }).value])).toEqual(tags.map((t) => SIM_TYPES[t]));
    await vision.write(value('visionHeartbeat', 7), value('busy', true));
    expect([plc.read('visionHeartbeat'), plc.read('busy')]).toEqual([7, true]);
  });

  it('serves a Siemens-style map in ns=3 from namespace 3, with an integer PartId when types say so', async () => {
    const tags = defaultTagMap(3, 'DB_Vision');
    // No vision side writes this map's VisionReady: the interlock is off to see the PLC time out.
    const plc = await sim({ tags, types: { partId: 'UInt32' }, resultTimeoutMs: 200, interlock: false });
    const vision = await FakeVision.connect(plc.endpoint, { alive: false });
    const [ns, trigger, partId] = await vision.session.read([
      { nodeId: 'ns=0;i=2255', attributeId: AttributeIds.Value }, // Server.NamespaceArray
      { nodeId: tags.trigger, attributeId: AttributeIds.Value },
      { nodeId: tags.partId, attributeId: AttributeIds.DataType },
    ]);
    expect((ns?.value.value as string[]).length).toBeGreaterThanOrEqual(4);
    expect([trigger?.statusCode.name, trigger?.value.value]).toEqual(['Good', false]);
    expect(DataType[(partId?.value.value as { value: number }).value]).toBe('UInt32');
    await expect(plc.trigger('P1')).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_CONFIG' });
    expect(await plc.trigger('42')).toMatchObject({ partId: '42', counter: 1, outcome: 'timeout' });
    expect(plc.read('partId')).toBe(42);
  });

  it('fires triggers at triggerRateHz, one cycle at a time', async () => {
    const plc = await sim({ triggerRateHz: 20 });
    const vision = await FakeVision.connect(plc.endpoint, { answer: byCounter });
    await until(() => plc.report().lastCycles.filter((r) => r.outcome === 'ok').length >= 5);
    const report = plc.report();
    expect(vision.errors).toEqual([]);
    // Counters never skip or repeat: no two cycles overlapped.
    const counters = report.lastCycles.map((r) => r.counter);
    expect(counters).toEqual(counters.map((_, i) => counters[0]! + i));
  });

  it('records an echo mismatch, acks it, and does not count it as a verdict', async () => {
    const plc = await sim();
    const vision = await FakeVision.connect(plc.endpoint, { answer: () => ({ verdict: 1, rejectCode: 0, echoPartId: 'P999999' }) });
    const r = await plc.trigger('P000042');
    expect(r).toMatchObject({ partId: 'P000042', counter: 1, outcome: 'echo-mismatch', echo: { partId: 'P999999', counter: 1 } });
    expect(r.validStuck).toBeUndefined();
    // The sim saw ResultValid drop before the client's write call returned.
    await vi.waitFor(() => expect(vision.answered).toBe(1));
    expect(plc.report()).toMatchObject({ triggers: 1, echoMismatches: 1, verdicts: { 0: 0, 1: 0, 2: 0, 3: 0 }, latencyMs: null });
  });

  it('records a timeout when nobody answers within resultTimeoutMs, and drops Trigger', async () => {
    // Nobody is connected: the interlock is off, else the PLC would not raise Trigger at all.
    const plc = await sim({ resultTimeoutMs: 300, interlock: false });
    const t0 = performance.now();
    const r = await plc.trigger();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(r).toMatchObject({ outcome: 'timeout', counter: 1, verdict: 0 });
    expect(r.latencyMs).toBeGreaterThanOrEqual(290);
    expect(plc.read('trigger')).toBe(false);
    expect(plc.report()).toMatchObject({ triggers: 1, timeouts: 1, verdicts: { 0: 0, 1: 0, 2: 0, 3: 0 } });
  });

  it('takes resultTimeoutMs per cycle, over the option', async () => {
    const plc = await sim({ resultTimeoutMs: 8000, interlock: false });
    const r = await plc.trigger(undefined, { resultTimeoutMs: 300 });
    expect(r).toMatchObject({ outcome: 'timeout', counter: 1 });
    expect(r.latencyMs).toBeGreaterThanOrEqual(290);
    expect(r.latencyMs).toBeLessThan(8000);
    await expect(plc.trigger(undefined, { resultTimeoutMs: 0 })).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_CONFIG' });
  });

  it('restarts fresh on the same endpoint with every value reset, ends the cycle in progress, and a reconnecting client carries on', async () => {
    const plc = await sim();
    const endpoint = plc.endpoint;
    const vision = await FakeVision.connect(endpoint, { answer: (job) => (job.partId === 'HANG' ? undefined : byCounter(job)), reconnect: true });
    await vision.write(value('visionReady', true), value('modelVersion', 'written-before'));
    expect((await plc.trigger()).outcome).toBe('ok');
    expect([plc.read('visionReady'), plc.read('triggerCounter')]).toEqual([true, 1]);
    const hanging = plc.trigger('HANG').catch((e: unknown) => e);
    await until(() => plc.read('trigger') === true);

    const back = once(vision.client, 'connection_reestablished', { signal: AbortSignal.timeout(15_000) });
    await plc.restart({ mode: 'fresh' });
    expect(await hanging).toMatchObject({ code: 'LG_ERR_PLC_SIM_STOPPED' });
    expect(plc.endpoint).toBe(endpoint);
    expect([plc.read('visionReady'), plc.read('modelVersion'), plc.read('triggerCounter'), plc.read('resultValid')]).toEqual([false, '', 0, false]);
    expect(plc.report()).toMatchObject({ restarts: 1, restartsByMode: { fresh: 1, retentive: 0 }, visionReady: false, triggers: 2 });

    await back;
    // The client's subscription came back with the session: the next handshake works, counting from 1 again.
    let r = await plc.trigger();
    for (let i = 0; i < 5 && r.outcome !== 'ok'; i++) r = await plc.trigger();
    expect(r).toMatchObject({ outcome: 'ok', echo: { partId: r.partId, counter: r.counter } });
  }, 20_000);

  it('emits heartbeat-lost when VisionReady is true and VisionHeartbeat stops changing', async () => {
    // 20 beats of 50 ms: a loaded test machine can hold up a write for a few hundred ms, a stuck counter holds it for good.
    const plc = await sim({ visionWatchdogMs: 1000 });
    const vision = await FakeVision.connect(plc.endpoint, { alive: false });
    const lost: unknown[] = [];
    plc.on('heartbeat-lost', (l) => lost.push(l));
    const ready = once(plc, 'ready', { signal: AbortSignal.timeout(3000) });
    await vision.write(value('visionReady', true));
    expect(await ready).toEqual([true]);

    // A live heartbeat keeps the watchdog quiet.
    for (let beat = 1; beat <= 30; beat++) {
      await vision.write(value('visionHeartbeat', beat));
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(lost).toEqual([]);

    // A counter written again with the same number is stuck: it does not feed the watchdog.
    const stuck = setInterval(() => void vision.write(value('visionHeartbeat', 30)).catch(() => undefined), 50);
    const [loss] = (await once(plc, 'heartbeat-lost', { signal: AbortSignal.timeout(3000) }).finally(() => clearInterval(stuck))) as [{ silentMs: number }];
    expect(loss.silentMs).toBeGreaterThan(1000);
    expect(plc.report()).toMatchObject({ heartbeatLosses: 1, visionReady: true });
    // Latched: one loss, one event, until the heartbeat moves again.
    await new Promise((r) => setTimeout(r, 300));
    expect(plc.report().heartbeatLosses).toBe(1);
  });

  it('increments PlcHeartbeat every heartbeatMs', async () => {
    const plc = await sim({ heartbeatMs: 50 });
    const first = Number(plc.read('plcHeartbeat'));
    const t0 = performance.now();
    // It moves (how soon depends on the machine's load, so that is not asserted) ...
    await until(() => Number(plc.read('plcHeartbeat')) - first >= 4, { ms: 10_000 });
    // ... and never faster than heartbeatMs: four steps take at least three intervals after the first read.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(3 * 50 - 5);
  });

  describe('security', () => {
    const secure = {
      allowAnonymous: false,
      users: [{ username: 'line2', password: 'correct horse' }],
      modes: ['SignAndEncrypt' as const],
      policies: ['Basic256Sha256' as const],
    };

    it('accepts a SignAndEncrypt Basic256Sha256 session with a valid user, refuses a wrong password and anonymous', async () => {
      const plc = await sim({ security: secure });
      const mode = { secure: { mode: 'SignAndEncrypt', policy: 'Basic256Sha256' } } as const;
      const ok = await FakeVision.connect(plc.endpoint, { ...mode, user: { userName: 'line2', password: 'correct horse' } });
      await ok.write(value('visionReady', true));
      expect(plc.read('visionReady')).toBe(true);

      await expect(FakeVision.connect(plc.endpoint, { ...mode, user: { userName: 'line2', password: 'wrong' } })).rejects.toThrow(/BadUserAccessDenied|BadIdentityTokenRejected/);
      // No endpoint offers an anonymous token policy, so the client gives up before asking.
      await expect(FakeVision.connect(plc.endpoint, mode)).rejects.toThrow(/ANONYMOUS user token policy|BadIdentityToken(Invalid|Rejected)/);
    });

    it('refuses an unknown client certificate until it is trusted, when unknown certificates are not accepted', async () => {
      // A PKI of its own: the other tests' servers accepted (and so trusted) the client's certificate.
      const plc = await sim({ security: { ...secure, automaticallyAcceptUnknownCertificate: false, pkiDir: scratch('lg-plc-sim-trust-pki-') } });
      expect(existsSync(plc.certificateFile)).toBe(true);
      const opts = { secure: { mode: 'SignAndEncrypt', policy: 'Basic256Sha256' }, user: { userName: 'line2', password: 'correct horse' } } as const;
      await expect(FakeVision.connect(plc.endpoint, opts)).rejects.toThrow();
      // The refused certificate is kept where an operator would look for it.
      expect(readdirSync(plc.rejectedDir).length).toBeGreaterThan(0);
      await plc.trustClientCertificate(readFileSync(path.join(clientPki, 'own/certs/client_certificate.pem')));
      const vision = await FakeVision.connect(plc.endpoint, opts);
      await vision.write(value('visionReady', true));
      expect(plc.read('visionReady')).toBe(true);
    });
  });

  it('refuses options that cannot work, naming the field', async () => {
    await expect(SimulatedPlc.start({ security: { allowAnonymous: false } })).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_CONFIG', path: 'security.users' });
    await expect(SimulatedPlc.start({ tags: { ...TAGS, trigger: 's=Trigger' } })).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_CONFIG', path: 'tags.trigger' });
    await expect(SimulatedPlc.start({ tags: { ...TAGS, busy: TAGS.trigger } })).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_CONFIG', path: 'tags.busy' });
    await expect(SimulatedPlc.start({ triggerRateHz: -1 })).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_CONFIG', path: 'triggerRateHz' });
    await expect(SimulatedPlc.start({ minSamplingIntervalMs: 2.5 })).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_CONFIG', path: 'minSamplingIntervalMs' });
    await expect(SimulatedPlc.start({ ackDelayMs: -1 })).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_CONFIG', path: 'ackDelayMs' });
  });

  it('refuses bad restart() and trigger() options, naming the field, without touching the server', async () => {
    const plc = await sim({ interlock: false, resultTimeoutMs: 100 });
    await expect(plc.restart({ mode: 'warm' as 'fresh' })).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_CONFIG', path: 'restart.mode' });
    await expect(plc.restart({ downMs: -5 })).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_CONFIG', path: 'restart.downMs' });
    await expect(plc.trigger('P1', { ackDelayMs: 1.5 })).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_CONFIG', path: 'trigger.ackDelayMs' });
    await expect(plc.trigger('P1', { counter: 2 ** 32 })).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_CONFIG', path: 'trigger.counter' });
    expect(plc.report()).toMatchObject({ restarts: 0, triggers: 0 });
  });

  it('refuses to start on a port that is taken, with a retryable coded error', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const port = (blocker.address() as net.AddressInfo).port;
      await expect(sim({ port })).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_START', retryable: true, message: expect.stringContaining('EADDRINUSE') });
    } finally {
      blocker.close();
    }
  });

  it('gives a sim in a temp PKI the keys of the first one this process made: no RSA key made per start', async () => {
    const a = await SimulatedPlc.start({ port: 0, triggerRateHz: 0, addressSpace: 'minimal' });
    sims.push(a);
    const b = await SimulatedPlc.start({ port: 0, triggerRateHz: 0, addressSpace: 'minimal' });
    sims.push(b);
    expect(a.pkiDir).not.toBe(b.pkiDir);
    for (const rel of ['own/certs/certificate.pem', 'own/private/private_key.pem', 'user/own/private/private_key.pem']) {
      expect(readFileSync(path.join(b.pkiDir, rel)).equals(readFileSync(path.join(a.pkiDir, rel))), rel).toBe(true);
    }
  });

  it('stop() is idempotent, removes the temp PKI it made, and trigger() after it rejects with a coded error', async () => {
    const plc = await SimulatedPlc.start({ port: 0, triggerRateHz: 0 });
    sims.push(plc);
    expect(existsSync(plc.certificateFile)).toBe(true);
    await Promise.all([plc.stop(), plc.stop()]);
    await plc.stop();
    expect(existsSync(plc.pkiDir)).toBe(false);
    await expect(plc.trigger()).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_STOPPED' });
    await expect(plc.restart()).rejects.toMatchObject({ code: 'LG_ERR_PLC_SIM_STOPPED' });
  });
});

describe('SimulatedPlc: the VisionReady interlock', () => {
  it('raises Trigger only once VisionReady is true and VisionHeartbeat moves: VisionReady alone does not open it', async () => {
    const plc = await sim({ resultTimeoutMs: 5000 });
    const vision = await FakeVision.connect(plc.endpoint, { answer: byCounter, alive: false });
    const cycle = plc.trigger('IL-1');
    await vision.write(value('visionReady', true));
    // The server applies a write before it answers it, and an open interlock raises Trigger in that same turn.
    expect(plc.report()).toMatchObject({ visionReady: true, interlockOpen: false });
    expect(plc.read('trigger')).toBe(false);
    await vision.write(value('visionHeartbeat', 1));
    expect(await cycle).toMatchObject({ partId: 'IL-1', counter: 1, outcome: 'ok', answers: 1 });
    expect(plc.report()).toMatchObject({ triggers: 1, notReady: 0, interlockOpen: true });
  });

  it("ends a manual cycle 'not-ready' when the heartbeat went stale and stays so for resultTimeoutMs: no Trigger, no counter spent", async () => {
    const plc = await sim({ resultTimeoutMs: 300, visionWatchdogMs: 200 });
    const vision = await FakeVision.connect(plc.endpoint, { answer: byCounter, alive: false });
    await vision.write(value('visionReady', true), value('visionHeartbeat', 1));
    expect(plc.report().interlockOpen).toBe(true);
    // VisionReady stays true; the heartbeat stops.
    await until(() => !plc.report().interlockOpen, { ms: 3000 });
    const r = await plc.trigger('NR-1');
    expect(r).toMatchObject({ partId: 'NR-1', counter: 1, outcome: 'not-ready', verdict: 0, answers: 0, acked: false });
    expect(r.latencyMs).toBeGreaterThanOrEqual(290);
    expect([plc.read('trigger'), plc.read('triggerCounter'), plc.read('partId')]).toEqual([false, 0, '']);
    expect(plc.report()).toMatchObject({ triggers: 0, notReady: 1, timeouts: 0, visionReady: true });
    expect(vision.asked).toBe(0);
    // The heartbeat moves again: the next part gets the counter the rejected one did not use.
    await vision.write(value('visionHeartbeat', 2));
    expect(await plc.trigger('NR-2')).toMatchObject({ partId: 'NR-2', counter: 1, outcome: 'ok' });
  });

  it('skips and counts a rate tick while the interlock is closed, and triggers once the vision side is alive', async () => {
    const plc = await sim({ triggerRateHz: 50 });
    await until(() => plc.report().notReadyTicks >= 3, { ms: 3000 });
    expect(plc.report()).toMatchObject({ triggers: 0, skippedTicks: 0, notReady: 0 });
    expect(plc.read('trigger')).toBe(false);
    const vision = await FakeVision.connect(plc.endpoint, { answer: byCounter });
    await until(() => plc.report().lastCycles.filter((r) => r.outcome === 'ok').length >= 3);
    expect(vision.errors).toEqual([]);
    expect(plc.report().lastCycles.map((r) => r.counter).slice(0, 3)).toEqual([1, 2, 3]);
  });
});

describe('SimulatedPlc: answers, acks and subscription floors', () => {
  it('counts a second answer within one raising of Trigger as a duplicate, and an answer while Trigger is low as a stray', async () => {
    const plc = await sim({ resultTimeoutMs: 5000 });
    const vision = await FakeVision.connect(plc.endpoint);
    // A slow PLC scan (ackDelayMs) leaves time for the vision side to answer the same part twice.
    const cycle = plc.trigger('DUP-1', { ackDelayMs: 500 });
    await until(() => plc.read('trigger') === true);
    await vision.write(value('resultPartId', 'DUP-1'), value('resultCounter', 1), value('verdict', 1), value('rejectCode', 0));
    await vision.write(value('resultValid', true));
    await vision.write(value('resultValid', false));
    await vision.write(value('resultValid', true));
    await until(() => plc.read('resultAck') === true);
    await vision.write(value('resultValid', false));
    expect(await cycle).toMatchObject({ outcome: 'ok', verdict: 1, answers: 2, acked: true });
    expect(plc.report()).toMatchObject({ duplicateAnswers: 1, strayResults: 0, verdicts: { 1: 1 } });
    // Trigger is low: this answer belongs to no part.
    await vision.write(value('resultValid', true));
    expect(plc.report()).toMatchObject({ duplicateAnswers: 1, strayResults: 1 });
    await vision.write(value('resultValid', false));
  });

  it('latches a ResultValid left high from before Trigger rose as stale: an echo mismatch with no answer of its own', async () => {
    const plc = await sim();
    const vision = await FakeVision.connect(plc.endpoint);
    // The answer to a part the PLC is no longer asking about.
    await vision.write(value('resultPartId', 'OLD-0'), value('resultCounter', 0), value('verdict', 1), value('rejectCode', 0));
    await vision.write(value('resultValid', true));
    const cycle = plc.trigger('NEW-1');
    await until(() => plc.read('resultAck') === true);
    await vision.write(value('resultValid', false));
    expect(await cycle).toMatchObject({ partId: 'NEW-1', outcome: 'echo-mismatch', echo: { partId: 'OLD-0', counter: 0 }, answers: 0 });
    expect(plc.report()).toMatchObject({ strayResults: 1, staleLatches: 1, echoMismatches: 1, verdicts: { 0: 0, 1: 0, 2: 0, 3: 0 } });
  });

  it('with ack: false latches the verdict, never raises ResultAck, and ends when the vision side gives up and drops ResultValid', async () => {
    const plc = await sim({ resultTimeoutMs: 3000 });
    const vision = await FakeVision.connect(plc.endpoint, { answer: byCounter, ackTimeoutMs: 200 });
    const r = await plc.trigger('NOACK-1', { ack: false });
    expect(r).toMatchObject({ partId: 'NOACK-1', outcome: 'ok', verdict: 1, answers: 1, acked: false });
    expect(r.validStuck).toBeUndefined();
    await until(() => vision.answered === 1);
    expect([vision.ackTimeouts, vision.sawAck]).toEqual([1, false]);
    expect(plc.report().verdicts[1]).toBe(1);
    // The next cycle acknowledges as usual.
    expect(await plc.trigger('ACK-2')).toMatchObject({ outcome: 'ok', acked: true });
    expect(vision.sawAck).toBe(true);
  });

  it('holds ResultAck back for ackDelayMs after ResultValid, from the options and per cycle', async () => {
    const plc = await sim({ ackDelayMs: 150 });
    const vision = await FakeVision.connect(plc.endpoint, { answer: byCounter });
    expect(await plc.trigger()).toMatchObject({ outcome: 'ok', acked: true });
    expect(await plc.trigger(undefined, { ackDelayMs: 400 })).toMatchObject({ outcome: 'ok', acked: true });
    await until(() => vision.answered === 2);
    // Lower bounds only; the vision side starts its clock a write's round trip after the PLC saw ResultValid.
    expect(vision.ackWaitMs[0]).toBeGreaterThanOrEqual(120);
    expect(vision.ackWaitMs[1]).toBeGreaterThanOrEqual(320);
  });

  it('grants a client asking for sampling 0 and publishing 10 no more than minSamplingIntervalMs and minPublishingIntervalMs', async () => {
    const fast = await sim();
    const a = await FakeVision.connect(fast.endpoint, { alive: false });
    expect(a.granted.publishingMs).toBeLessThanOrEqual(10);
    expect(a.granted.triggerSamplingMs).toBeLessThanOrEqual(10);
    expect(a.granted.ackSamplingMs).toBeLessThanOrEqual(10);
    await fast.stop();
    // 0: every change is sent, none folded.
    const every = await sim({ minSamplingIntervalMs: 0 });
    const b = await FakeVision.connect(every.endpoint, { alive: false });
    expect([b.granted.triggerSamplingMs, b.granted.ackSamplingMs]).toEqual([0, 0]);
  });
});

describe('SimulatedPlc: retentive restarts', () => {
  it('keeps every tag, the vision side\'s too, and the counter; completes a latched cycle without asking again', async () => {
    const plc = await sim({ resultTimeoutMs: 10_000 });
    const vision = await FakeVision.connect(plc.endpoint, { reconnect: true });
    const cycle = plc.trigger('RET-1');
    await until(() => plc.read('trigger') === true);
    await vision.write(value('resultPartId', 'RET-1'), value('resultCounter', 1), value('verdict', 2), value('rejectCode', 17), value('modelVersion', 'm@3'));
    await vision.write(value('resultValid', true));
    // Latched and acknowledged; the vision side has not dropped ResultValid yet.
    await until(() => plc.read('resultAck') === true);
    const beat = Number(plc.read('visionHeartbeat'));
    expect(beat).toBeGreaterThan(0);

    await plc.restart({ mode: 'retentive' });
    expect(await cycle).toMatchObject({ partId: 'RET-1', counter: 1, outcome: 'ok', verdict: 2, rejectCode: 17, answers: 1, acked: true });
    expect((await cycle).retried).toBeUndefined();
    // The start-up reset drops Trigger and ResultAck; the data block keeps everything else.
    expect([plc.read('trigger'), plc.read('resultAck')]).toEqual([false, false]);
    expect([plc.read('partId'), plc.read('triggerCounter'), plc.read('resultPartId'), plc.read('resultCounter'), plc.read('verdict'), plc.read('rejectCode'), plc.read('modelVersion')]).toEqual(['RET-1', 1, 'RET-1', 1, 2, 17, 'm@3']);
    expect([plc.read('resultValid'), plc.read('visionReady')]).toEqual([true, true]);
    expect(Number(plc.read('visionHeartbeat'))).toBeGreaterThanOrEqual(beat);
    expect(plc.report()).toMatchObject({ restarts: 1, restartsByMode: { fresh: 0, retentive: 1 } });

    // The vision side is back (its heartbeat moves on this server): the latched part is not asked again.
    await until(() => plc.report().interlockOpen, { ms: 15_000 });
    expect(plc.read('trigger')).toBe(false);
    expect(plc.report()).toMatchObject({ triggers: 1, reasks: 0, verdicts: { 2: 1 } });
    await vision.write(value('resultValid', false));
    // The kept counter: the next part is 2.
    const next = plc.trigger('RET-2');
    await until(() => plc.read('trigger') === true);
    expect(plc.read('triggerCounter')).toBe(2);
    await vision.write(value('resultPartId', 'RET-2'), value('resultCounter', 2), value('verdict', 1), value('rejectCode', 0));
    await vision.write(value('resultValid', true));
    await until(() => plc.read('resultAck') === true);
    await vision.write(value('resultValid', false));
    expect(await next).toMatchObject({ counter: 2, outcome: 'ok' });
  }, 20_000);

  it('asks again, with the same PartId and counter, a cycle that had not latched its verdict, once the vision side is back', async () => {
    const plc = await sim({ resultTimeoutMs: 10_000 });
    let silent = true;
    const vision = await FakeVision.connect(plc.endpoint, { answer: (job) => (silent ? undefined : byCounter(job)), reconnect: true });
    const cycle = plc.trigger('RA-1');
    await until(() => vision.asked === 1);
    silent = false;
    const t0 = performance.now();
    await plc.restart({ mode: 'retentive', downMs: 500 });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(500);
    // Trigger stays low until the vision side's heartbeat moves on the new server.
    expect([plc.read('trigger'), plc.read('partId'), plc.read('triggerCounter')]).toEqual([false, 'RA-1', 1]);

    const r = await cycle;
    expect(r).toMatchObject({ partId: 'RA-1', counter: 1, outcome: 'ok', verdict: 1, echo: { partId: 'RA-1', counter: 1 }, answers: 1, acked: true, retried: true });
    expect(vision.asked).toBe(2);
    expect(plc.report()).toMatchObject({ triggers: 1, reasks: 1, restartsByMode: { fresh: 0, retentive: 1 }, verdicts: { 1: 1 }, duplicateAnswers: 0, echoMismatches: 0 });
  }, 20_000);

  it("stop() during a retentive restart's down time ends it at once and rejects the cycle waiting for the server", async () => {
    const plc = await sim({ interlock: false, resultTimeoutMs: 10_000 });
    const cycle = plc.trigger('DOWN-1').catch((e: unknown) => e);
    await until(() => plc.read('trigger') === true);
    const restart = plc.restart({ mode: 'retentive', downMs: 60_000 }).catch((e: unknown) => e);
    await until(() => plc.read('trigger') === undefined);
    await plc.stop();
    expect(await cycle).toMatchObject({ code: 'LG_ERR_PLC_SIM_STOPPED' });
    expect(await restart).toMatchObject({ code: 'LG_ERR_PLC_SIM_STOPPED' });
  });
});

describe('linegate plc-sim', () => {
  it('prints its help with exit 0', async () => {
    const r = await linegate(['plc-sim', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: linegate plc-sim');
    for (const flag of ['--port', '--host', '--rate', '--users', '--secure', '--pki', '--duration']) expect(r.stdout).toContain(flag);
    for (const flag of ['--cycles', '--no-interlock', '--min-sampling-ms', '--min-publishing-ms', '--ack-delay-ms', '--trigger-low-ms', '--result-timeout-ms']) expect(r.stdout).toContain(flag);
  });

  it('refuses --secure without --users (exit 2, no server started)', async () => {
    const r = await linegate(['plc-sim', '--secure', '--port', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('LG_ERR_CLI_USAGE: --secure refuses anonymous sessions');
    expect(r.stdout).toBe('');
  });

  it('serves for --duration seconds, logs its endpoint on stderr and prints one plcSim JSON line', async () => {
    // --pki: the certificate made by the tests above, so that no key pair is generated here.
    const { code, stdout, stderr } = await linegate(['plc-sim', '--port', '0', '--duration', '1', '--rate', '0', '--pki', serverPki, '--no-pretty']);
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/opc\.tcp:\/\/127\.0\.0\.1:\d+\//);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const { plcSim } = JSON.parse(lines[0]!) as { plcSim: Record<string, unknown> };
    expect(plcSim).toMatchObject({ triggers: 0, timeouts: 0, verdicts: { 0: 0, 1: 0, 2: 0, 3: 0 }, endpoint: expect.stringMatching(/^opc\.tcp:\/\/127\.0\.0\.1:\d+\/$/) });
  }, 20_000);

  it('runs --cycles back to back against a vision client, then exits 0 with the report and its new counters', async () => {
    let found: (e: string) => void = () => undefined;
    const endpoint = new Promise<string>((resolve) => (found = resolve));
    const run = linegate(['plc-sim', '--port', '0', '--cycles', '3', '--min-sampling-ms', '5', '--ack-delay-ms', '5', '--trigger-low-ms', '20', '--result-timeout-ms', '3000', '--pki', serverPki, '--address-space', 'minimal', '--no-pretty'], {}, (text) => {
      const m = /listening on (opc\.tcp:\/\/[^\s"]+)/.exec(text);
      if (m !== null) found(m[1]!);
    });
    const listening = await Promise.race([endpoint, run.then((r) => Promise.reject(new Error(`exited before listening: ${r.stderr}`)))]);
    const vision = await FakeVision.connect(listening, { answer: byCounter });
    const { code, stdout, stderr } = await run;
    expect(code, stderr).toBe(0);
    expect(vision.errors).toEqual([]);
    const { plcSim } = JSON.parse(stdout.trim()) as { plcSim: SimReport };
    expect(plcSim).toMatchObject({ triggers: 3, verdicts: { 0: 0, 1: 2, 2: 1, 3: 0 }, timeouts: 0, echoMismatches: 0, notReady: 0, notReadyTicks: 0, duplicateAnswers: 0, strayResults: 0, staleLatches: 0, reasks: 0 });
    expect(plcSim.lastCycles.map((r) => [r.counter, r.answers, r.acked])).toEqual([
      [1, 1, true],
      [2, 1, true],
      [3, 1, true],
    ]);
  }, 20_000);

  it('refuses an --address-space it does not know (exit 2, naming the choices)', async () => {
    const r = await linegate(['plc-sim', '--address-space', 'tiny', '--port', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/LG_ERR_CLI_USAGE.*--address-space.*standard, minimal/);
  });

  it('refuses --cycles with --rate (exit 2)', async () => {
    const r = await linegate(['plc-sim', '--cycles', '3', '--rate', '5', '--port', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('LG_ERR_CLI_USAGE');
  });

  it('stops on SIGTERM in the middle of a cycle, exits 0 and prints the report', async () => {
    const users = path.join(scratch('lg-plc-sim-users-'), 'users.json');
    writeFileSync(users, JSON.stringify([{ username: 'line2', password: 'correct horse' }]));
    // A process: the point is the signal. --no-interlock: nobody connects, and the PLC must raise Trigger all the same for a cycle to be running.
    const p = new LinegateProcess(['plc-sim', '--port', '0', '--rate', '5', '--no-interlock', '--users', users, '--pki', serverPki, '--address-space', 'minimal', '--no-pretty'], { timeoutMs: 18_000 });
    await p.waitFor(/listening on opc\.tcp/, 15_000);
    await new Promise((r) => setTimeout(r, 500));
    p.signal('SIGTERM');
    const { code } = await p.exited;
    expect(code, p.stderr).toBe(0);
    const { plcSim } = p.lastJson<{ plcSim: { triggers: number; timeouts: number } }>();
    // Nobody answers and resultTimeoutMs is 2 s: the first cycle was still waiting when the signal came.
    expect(plcSim.triggers).toBeGreaterThanOrEqual(1);
    expect(plcSim.timeouts).toBe(0);
    expect(p.stderr).not.toContain('Unhandled');
  }, 20_000);
});
