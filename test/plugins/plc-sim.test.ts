import { spawn } from 'node:child_process';
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
import { SimulatedPlc, type SimOptionsInput, type TriggerRecord } from '../../plugins/opcua-plc/sim.js';
import { SIM_TYPES, defaultTagMap, type TagName } from '../../plugins/opcua-plc/tags.js';
import { scratch } from '../helpers/scratch.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
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
  const plc = await SimulatedPlc.start({ port: 0, triggerRateHz: 0, security: { pkiDir: serverPki } });
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
  #ack = false;
  #ackWaiters: (() => void)[] = [];
  #work: Promise<void> = Promise.resolve();

  private constructor(
    readonly client: OPCUAClient,
    readonly session: ClientSession,
    readonly subscription: ClientSubscription,
    readonly answer: Answer | undefined,
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
    const vision = new FakeVision(client, session, subscription, o.answer);
    const trigger = await subscription.monitor({ nodeId: TAGS.trigger, attributeId: AttributeIds.Value }, { samplingInterval: 0, discardOldest: true, queueSize: 10 }, TimestampsToReturn.Neither);
    trigger.on('changed', (dv: DataValue) => {
      if (dv.value.value === true) vision.#work = vision.#work.then(() => vision.#handle()).catch((e: unknown) => void vision.errors.push(e));
    });
    const ack = await subscription.monitor({ nodeId: TAGS.resultAck, attributeId: AttributeIds.Value }, { samplingInterval: 0, discardOldest: true, queueSize: 10 }, TimestampsToReturn.Neither);
    ack.on('changed', (dv: DataValue) => {
      vision.#ack = dv.value.value === true;
      if (vision.#ack) for (const w of vision.#ackWaiters.splice(0)) w();
    });
    return vision;
  }

  async write(...values: WriteValueOptions[]): Promise<void> {
    const codes = await this.session.write(values);
    for (const c of codes) if (c.isNotGood()) throw new Error(`write failed: ${c.name}`);
  }

  async #handle(): Promise<void> {
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
    await new Promise<void>((resolve, reject) => {
      if (this.#ack) return resolve();
      const t = setTimeout(() => reject(new Error('no ResultAck within 3 s')), 3000);
      this.#ackWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
    await this.write(value('resultValid', false));
    this.answered++;
  }
}

const sims: SimulatedPlc[] = [];
const clients: OPCUAClient[] = [];

async function sim(options: SimOptionsInput = {}): Promise<SimulatedPlc> {
  const plc = await SimulatedPlc.start({ port: 0, triggerRateHz: 0, ...options, security: { pkiDir: serverPki, ...options.security } });
  sims.push(plc);
  return plc;
}

afterEach(async () => {
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
    }
    expect(seen).toEqual(records);
    const report = plc.report();
    expect(report).toMatchObject({ triggers: 5, verdicts: { 0: 0, 1: 2, 2: 2, 3: 1 }, timeouts: 0, echoMismatches: 0, validStuck: 0 });
    expect(report.latencyMs).toMatchObject({ n: 5, p50: expect.any(Number), p99: expect.any(Number) });
    expect(report.lastCycles).toHaveLength(5);
    // The handshake ends with every strobe down.
    expect([plc.read('trigger'), plc.read('resultAck'), plc.read('resultValid')]).toEqual([false, false, false]);
    expect(plc.read('triggerCounter')).toBe(5);
  });

  it('creates every tag under the exact NodeId of the tag map, writable, with the DataType of SIM_TYPES', async () => {
    const plc = await sim();
    const vision = await FakeVision.connect(plc.endpoint);
    const tags = Object.keys(SIM_TYPES) as TagName[];
    const read = await vision.session.read(tags.map((t) => ({ nodeId: TAGS[t] as string, attributeId: AttributeIds.DataType })));
    expect(read.map((dv) => dv.statusCode.name)).toEqual(tags.map(() => 'Good'));
    expect(read.map((dv) => DataType[(dv.value.value as { value: number }).value])).toEqual(tags.map((t) => SIM_TYPES[t]));
    await vision.write(value('visionHeartbeat', 7), value('busy', true));
    expect([plc.read('visionHeartbeat'), plc.read('busy')]).toEqual([7, true]);
  });

  it('serves a Siemens-style map in ns=3 from namespace 3, with an integer PartId when types say so', async () => {
    const tags = defaultTagMap(3, 'DB_Vision');
    const plc = await sim({ tags, types: { partId: 'UInt32' }, resultTimeoutMs: 200 });
    const vision = await FakeVision.connect(plc.endpoint);
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
    await new Promise((r) => setTimeout(r, 1000));
    const report = plc.report();
    expect(vision.errors).toEqual([]);
    const ok = report.lastCycles.filter((r) => r.outcome === 'ok');
    expect(ok.length).toBeGreaterThanOrEqual(5);
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
    const plc = await sim({ resultTimeoutMs: 300 });
    const t0 = performance.now();
    const r = await plc.trigger();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(r).toMatchObject({ outcome: 'timeout', counter: 1, verdict: 0 });
    expect(r.latencyMs).toBeGreaterThanOrEqual(290);
    expect(plc.read('trigger')).toBe(false);
    expect(plc.report()).toMatchObject({ triggers: 1, timeouts: 1, verdicts: { 0: 0, 1: 0, 2: 0, 3: 0 } });
  });

  it('restarts on the same endpoint with every value reset, and a reconnecting client carries on', async () => {
    const plc = await sim();
    const endpoint = plc.endpoint;
    const vision = await FakeVision.connect(endpoint, { answer: byCounter, reconnect: true });
    await vision.write(value('visionReady', true), value('modelVersion', 'written-before'));
    expect((await plc.trigger()).outcome).toBe('ok');
    expect([plc.read('visionReady'), plc.read('triggerCounter')]).toEqual([true, 1]);

    const back = once(vision.client, 'connection_reestablished', { signal: AbortSignal.timeout(15_000) });
    await plc.restart();
    expect(plc.endpoint).toBe(endpoint);
    expect([plc.read('visionReady'), plc.read('modelVersion'), plc.read('triggerCounter'), plc.read('resultValid')]).toEqual([false, '', 0, false]);
    expect(plc.report()).toMatchObject({ restarts: 1, visionReady: false });

    await back;
    // The client's subscription came back with the session: the next handshake works, counting from 1 again.
    let r = await plc.trigger();
    for (let i = 0; i < 5 && r.outcome !== 'ok'; i++) r = await plc.trigger();
    expect(r).toMatchObject({ outcome: 'ok', echo: { partId: r.partId, counter: r.counter } });
  }, 20_000);

  it('emits heartbeat-lost when VisionReady is true and VisionHeartbeat stops changing', async () => {
    const plc = await sim({ visionWatchdogMs: 400 });
    const vision = await FakeVision.connect(plc.endpoint);
    const lost: unknown[] = [];
    plc.on('heartbeat-lost', (l) => lost.push(l));
    const ready = once(plc, 'ready', { signal: AbortSignal.timeout(3000) });
    await vision.write(value('visionReady', true));
    expect(await ready).toEqual([true]);

    // A live heartbeat keeps the watchdog quiet.
    for (let beat = 1; beat <= 12; beat++) {
      await vision.write(value('visionHeartbeat', beat));
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(lost).toEqual([]);

    // A counter written again with the same number is stuck: it does not feed the watchdog.
    const stuck = setInterval(() => void vision.write(value('visionHeartbeat', 12)).catch(() => undefined), 50);
    const [loss] = (await once(plc, 'heartbeat-lost', { signal: AbortSignal.timeout(3000) }).finally(() => clearInterval(stuck))) as [{ silentMs: number }];
    expect(loss.silentMs).toBeGreaterThan(400);
    expect(plc.report()).toMatchObject({ heartbeatLosses: 1, visionReady: true });
    // Latched: one loss, one event, until the heartbeat moves again.
    await new Promise((r) => setTimeout(r, 300));
    expect(plc.report().heartbeatLosses).toBe(1);
  });

  it('increments PlcHeartbeat every heartbeatMs', async () => {
    const plc = await sim({ heartbeatMs: 50 });
    const first = Number(plc.read('plcHeartbeat'));
    await new Promise((r) => setTimeout(r, 400));
    expect(Number(plc.read('plcHeartbeat')) - first).toBeGreaterThanOrEqual(4);
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

/** bin/linegate.mjs as a user runs it; with `kill`, SIGTERM it `afterMs` after stderr matches `untilStderr`. */
async function linegate(args: string[], kill?: { untilStderr: RegExp; afterMs: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/linegate.mjs'), ...args], { cwd: ROOT, env: { ...process.env, LINEGATE_LOG_LEVEL: 'info' } });
  let stdout = '';
  let stderr = '';
  let killing = false;
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (kill !== undefined && !killing && kill.untilStderr.test(stderr)) {
      killing = true;
      setTimeout(() => child.kill('SIGTERM'), kill.afterMs);
    }
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

describe('linegate plc-sim', () => {
  it('prints its help with exit 0', async () => {
    const r = await linegate(['plc-sim', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: linegate plc-sim');
    for (const flag of ['--port', '--host', '--rate', '--users', '--secure', '--pki', '--duration']) expect(r.stdout).toContain(flag);
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

  it('stops on SIGTERM in the middle of a cycle, exits 0 and prints the report', async () => {
    const users = path.join(scratch('lg-plc-sim-users-'), 'users.json');
    writeFileSync(users, JSON.stringify([{ username: 'line2', password: 'correct horse' }]));
    const r = await linegate(['plc-sim', '--port', '0', '--rate', '5', '--users', users, '--pki', serverPki, '--no-pretty'], { untilStderr: /listening on opc\.tcp/, afterMs: 500 });
    expect(r.code, r.stderr).toBe(0);
    const { plcSim } = JSON.parse(r.stdout.trim()) as { plcSim: { triggers: number; timeouts: number } };
    // Nobody answers and resultTimeoutMs is 2 s: the first cycle was still waiting when the signal came.
    expect(plcSim.triggers).toBeGreaterThanOrEqual(1);
    expect(plcSim.timeouts).toBe(0);
    expect(r.stderr).not.toContain('Unhandled');
  }, 20_000);
});
