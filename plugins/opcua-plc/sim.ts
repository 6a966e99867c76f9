import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { OPCUAServer, UAVariable } from 'node-opcua';
import { sleep, withTimeout } from '../../runtime/execute/bounded.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import { PlcCycle, RETAINED, type CycleHost, type CycleRequest, type CycleStats, type RunPort, type TagValue } from './sim-cycle.js';
import { RestartOptions, TriggerOptions, WRAP, parseOrThrow, parseSimOptions, percentile, type RestartMode, type RestartOptionsInput, type SimEvents, type SimOptionsInput, type SimReport, type SimSettings, type TriggerOptionsInput, type TriggerRecord } from './sim-options.js';
import { createServer, createTags, runPort } from './sim-server.js';
import { VisionWatch } from './sim-vision.js';
import type { TagName } from './tags.js';

export { parseSimOptions, SimOptions, type CycleOutcome, type HeartbeatLoss, type RestartMode, type RestartOptionsInput, type SimEvents, type SimOptionsInput, type SimReport, type SimSettings, type TriggerOptionsInput, type TriggerRecord } from './sim-options.js';

/*
 * The PLC's side of linegate's handshake, as an OPC UA server, for tests, the
 * demo and `linegate plc-sim`: its lifecycle (start, fresh or retentive
 * restart, stop), its timers (trigger rate, PlcHeartbeat, the vision
 * watchdog) and its report. One cycle is in sim-cycle.ts, what the PLC sees
 * of the vision side in sim-vision.ts. No node-opcua type appears in an
 * exported signature, so runtime/ can use the sim without owning node-opcua's types.
 */

/** One running server and everything tied to its life; a restart makes a new one. */
interface Run {
  readonly server: OPCUAServer;
  readonly vars: Map<TagName, UAVariable>;
  readonly abort: AbortController;
  readonly timers: NodeJS.Timeout[];
  readonly port: RunPort;
}

const LAST_CYCLES = 50;
const LATENCY_WINDOW = 10_000;

const stoppedError = (why: string): LinegateError => new LinegateError('LG_ERR_PLC_SIM_STOPPED', [why]);

/** The cycles' counts, and those of the PLC's own timers and of what it sees on ResultValid. */
const newStats = (): CycleStats & { heartbeatLosses: number; skippedTicks: number; notReadyTicks: number; duplicateAnswers: number; strayResults: number; restarts: Record<RestartMode, number> } => ({
  triggers: 0,
  verdicts: { 0: 0, 1: 0, 2: 0, 3: 0 },
  invalidVerdicts: 0,
  timeouts: 0,
  echoMismatches: 0,
  validStuck: 0,
  notReady: 0,
  staleLatches: 0,
  reasks: 0,
  heartbeatLosses: 0,
  skippedTicks: 0,
  notReadyTicks: 0,
  duplicateAnswers: 0,
  strayResults: 0,
  restarts: { fresh: 0, retentive: 0 },
});

/**
 * The server's certificate and key, and the key of its user-token PKI (user/), of this process's
 * first sim with a temp PKI: given to the next ones.
 */
let ownIdentity: ReadonlyMap<string, Buffer> | undefined;
const IDENTITY_FILES = ['own/certs/certificate.pem', 'own/private/private_key.pem', 'user/own/private/private_key.pem'];

/**
 * A sim in a fresh temp PKI would make new RSA keys at every start (its certificate's, and one for
 * the certificate manager that checks X509 user tokens): a third of a second of CPU and more, and
 * the bulk of a test's start. The sims of one process share the first one's: a simulated PLC's
 * throwaway identity, never a PKI someone gave with security.pkiDir.
 */
function reuseOwnIdentity(pkiDir: string): void {
  if (ownIdentity === undefined) return;
  for (const [rel, data] of ownIdentity) {
    mkdirSync(path.dirname(path.join(pkiDir, rel)), { recursive: true });
    writeFileSync(path.join(pkiDir, rel), data, { mode: 0o600 });
  }
}

function rememberOwnIdentity(pkiDir: string): void {
  if (ownIdentity !== undefined) return;
  try {
    ownIdentity = new Map(IDENTITY_FILES.map((rel) => [rel, readFileSync(path.join(pkiDir, rel))]));
  } catch {
    // Not where node-opcua kept them before: every sim makes its own, as without this.
  }
}

export class SimulatedPlc extends EventEmitter<SimEvents> {
  readonly options: SimSettings;
  /** The server PKI root: own/ (the server's key and certificate), trusted/certs, rejected/, and user/ (for X509 user tokens). */
  readonly pkiDir: string;
  readonly #ownPki: boolean;
  #port: number;
  #run: Run | undefined;
  /** Lifecycle steps (restart, stop) run one after the other. */
  #lifecycle: Promise<void> = Promise.resolve();
  #stopped: Promise<void> | undefined;
  /** Aborted by stop(): ends a restart's down time early. */
  readonly #stopping = new AbortController();
  /** Cycles waiting for the server a retentive restart brings back; undefined when no such restart is under way. */
  #awaitingRun: { resolve: (port: RunPort) => void; reject: (e: Error) => void }[] | undefined;
  /** Cycles run one at a time: each waits for the one before it. */
  #cycles: Promise<unknown> = Promise.resolve();
  #queued = 0;
  #counter = 0;
  /** When Trigger last went low (performance.now()); 0: never raised since a fresh start. */
  #lowSince = 0;
  #heartbeatPaused = false;
  readonly #vision: VisionWatch;

  readonly #stats = newStats();
  readonly #lastCycles: TriggerRecord[] = [];
  readonly #latencies: number[] = [];
  readonly #host: CycleHost;

  private constructor(options: SimSettings, pkiDir: string, ownPki: boolean) {
    super();
    this.options = options;
    this.pkiDir = pkiDir;
    this.#ownPki = ownPki;
    this.#port = options.port;
    const stats = this.#stats;
    this.#vision = new VisionWatch(options, {
      ready: (ready) => this.emit('ready', ready),
      heartbeatLost: (silentMs) => {
        stats.heartbeatLosses++;
        this.emit('heartbeat-lost', { silentMs: Math.round(silentMs), at: new Date().toISOString() });
      },
      duplicateAnswer: () => void stats.duplicateAnswers++,
      strayResult: () => void stats.strayResults++,
    });
    const wrap = WRAP[options.types.triggerCounter] ?? 0x100000000;
    this.#host = {
      options,
      stats,
      server: () => this.#server(),
      untilInterlock: (ms, signal) => this.#vision.untilInterlock(ms, signal),
      lowFor: () => (this.#lowSince === 0 ? Infinity : performance.now() - this.#lowSince),
      lowered: () => void (this.#lowSince = performance.now()),
      raise: (raising) => this.#vision.raise(raising),
      nextCounter: () => (this.#counter + 1) % wrap,
      useCounter: (counter) => void (this.#counter = counter),
      partIdFor: (counter) => (options.types.partId === 'String' ? `${options.partIdPrefix}${String(counter).padStart(6, '0')}` : String(counter)),
      latency: (ms) => {
        this.#latencies.push(ms);
        if (this.#latencies.length > LATENCY_WINDOW) this.#latencies.shift();
      },
    };
  }

  /** Starts the server; resolves once it listens. The first start in a fresh pkiDir also creates the server certificate. */
  static async start(input: SimOptionsInput = {}): Promise<SimulatedPlc> {
    const options = parseSimOptions(input);
    const ownPki = options.security.pkiDir === undefined;
    const pkiDir = options.security.pkiDir === undefined ? mkdtempSync(path.join(os.tmpdir(), 'linegate-plc-sim-pki-')) : path.resolve(options.security.pkiDir);
    if (ownPki) reuseOwnIdentity(pkiDir);
    const plc = new SimulatedPlc(options, pkiDir, ownPki);
    try {
      await plc.#up(undefined);
      if (ownPki) rememberOwnIdentity(pkiDir);
    } catch (e) {
      if (ownPki) rmSync(pkiDir, { recursive: true, force: true });
      throw e;
    }
    return plc;
  }

  /** The port listened on (the one picked when options.port was 0); kept across restarts. */
  get port(): number {
    return this.#port;
  }

  get endpoint(): string {
    const h = this.options.host;
    // A wildcard address is not something a client can dial: loopback reaches it from this machine.
    const host = h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h;
    return `opc.tcp://${host}:${this.#port}/`;
  }

  /** The server's own certificate (PEM): what a client must trust when it does not accept unknown servers. */
  get certificateFile(): string {
    return path.join(this.pkiDir, 'own/certs/certificate.pem');
  }

  /** Where unknown client certificates land when automaticallyAcceptUnknownCertificate is false. */
  get rejectedDir(): string {
    return path.join(this.pkiDir, 'rejected');
  }

  /** Trusts a client certificate (DER or PEM): the same as moving it from rejected/ to trusted/certs. */
  async trustClientCertificate(derOrPem: Buffer): Promise<void> {
    const run = this.#run;
    if (run === undefined) throw stoppedError('cannot trust a certificate while the server is down');
    let der: Buffer;
    try {
      der = new X509Certificate(derOrPem).raw;
    } catch (e) {
      throw new LinegateError('LG_ERR_PLC_SIM_CONFIG', ['trustClientCertificate', `not a DER or PEM certificate: ${messageOf(e)}`], { cause: e });
    }
    await run.server.serverCertificateManager.trustCertificate(der);
  }

  /** The current value of a tag, as the PLC sees it; undefined for an unmapped tag or while the server is down. */
  read(tag: TagName): TagValue | undefined {
    return this.#run?.vars.get(tag)?.readValue().value.value as TagValue | undefined;
  }

  /**
   * One manual cycle; waits for a running cycle first, then for the interlock (at most resultTimeoutMs: else it ends
   * 'not-ready'). Resolves when the cycle ends (acked, echo mismatch, timeout, not ready).
   * `counter` replaces the next TriggerCounter, to play a faulty PLC: the last counter again is a repeated trigger
   * (a PLC retrying after a reconnect), a jump is triggers the vision side never saw. Later cycles count on from it.
   * `ack: false` latches the verdict but never raises ResultAck; `ackDelayMs` and `resultTimeoutMs` replace the options for this cycle.
   */
  trigger(partId?: string, options: TriggerOptionsInput = {}): Promise<TriggerRecord> {
    if (this.#stopped !== undefined) return Promise.reject(stoppedError('trigger() after stop()'));
    const o = this.options;
    try {
      const t = parseOrThrow(TriggerOptions, options, 'trigger');
      if (t.counter !== undefined && t.counter >= (WRAP[o.types.triggerCounter] ?? 0x100000000)) {
        throw new LinegateError('LG_ERR_PLC_SIM_CONFIG', ['trigger.counter', `${t.counter} is not a ${o.types.triggerCounter} counter value`], { path: 'trigger.counter' });
      }
      if (partId !== undefined && o.types.partId !== 'String' && !/^\d+$/.test(partId)) {
        throw new LinegateError('LG_ERR_PLC_SIM_CONFIG', ['trigger.partId', `PartId is a ${o.types.partId} tag: "${partId}" is not a whole number`], { path: 'trigger.partId' });
      }
      return this.#enqueue({ partId, counter: t.counter, ack: t.ack, ackDelayMs: t.ackDelayMs ?? o.ackDelayMs, resultTimeoutMs: t.resultTimeoutMs ?? o.resultTimeoutMs });
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  /** Resolves true once the interlock is open (at once if it is), false after `timeoutMs` or when `signal` aborts. */
  async waitForInterlock(o: { readonly timeoutMs: number; readonly signal?: AbortSignal }): Promise<boolean> {
    return (await this.#vision.untilInterlock(o.timeoutMs, o.signal ?? this.#stopping.signal)) === 'ok';
  }

  /** Stops or resumes PlcHeartbeat while the server stays up: a PLC put in STOP, whose OPC UA server still answers. */
  setHeartbeat(running: boolean): void {
    this.#heartbeatPaused = !running;
  }

  /**
   * Stops and starts again on the same port and PKI, after `downMs`. 'fresh': every tag back to its initial value,
   * the counter at 0, the cycles in progress end with LG_ERR_PLC_SIM_STOPPED. 'retentive': the data block keeps every
   * value and the counter; the start-up resets Trigger and ResultAck; a cycle that had not latched its verdict asks
   * again (same PartId and counter) once the interlock opens, one that had completes.
   */
  restart(input: RestartOptionsInput = {}): Promise<void> {
    if (this.#stopped !== undefined) return Promise.reject(stoppedError('restart() after stop()'));
    let r: { mode: RestartMode; downMs: number };
    try {
      r = parseOrThrow(RestartOptions, input, 'restart');
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const step = this.#lifecycle.then(async () => {
      const retained = await this.#down(r.mode);
      this.#stats.restarts[r.mode]++;
      if (r.downMs > 0) await sleep(r.downMs, this.#stopping.signal);
      if (this.#stopping.signal.aborted) throw stoppedError('stop() during the restart');
      await this.#up(retained);
    });
    this.#lifecycle = step.catch(() => undefined);
    return step;
  }

  /** Shuts the server down for good; idempotent. A cycle in progress rejects with LG_ERR_PLC_SIM_STOPPED. */
  stop(): Promise<void> {
    this.#stopping.abort();
    this.#stopped ??= this.#lifecycle.then(async () => {
      try {
        await this.#down('stop');
        this.#releaseAwaiting(stoppedError('stop() during a retentive restart'));
      } finally {
        if (this.#ownPki) rmSync(this.pkiDir, { recursive: true, force: true });
      }
    });
    return this.#stopped;
  }

  report(): SimReport {
    const sorted = [...this.#latencies].sort((a, b) => a - b);
    const s = this.#stats;
    return {
      endpoint: this.endpoint,
      triggers: s.triggers,
      verdicts: { ...s.verdicts },
      invalidVerdicts: s.invalidVerdicts,
      timeouts: s.timeouts,
      echoMismatches: s.echoMismatches,
      validStuck: s.validStuck,
      heartbeatLosses: s.heartbeatLosses,
      visionReady: this.#vision.ready,
      skippedTicks: s.skippedTicks,
      notReadyTicks: s.notReadyTicks,
      notReady: s.notReady,
      duplicateAnswers: s.duplicateAnswers,
      strayResults: s.strayResults,
      staleLatches: s.staleLatches,
      reasks: s.reasks,
      interlockOpen: this.#vision.interlockOpen(),
      restarts: s.restarts.fresh + s.restarts.retentive,
      restartsByMode: { ...s.restarts },
      latencyMs: sorted.length === 0 ? null : { p50: percentile(sorted, 50), p99: percentile(sorted, 99), n: sorted.length },
      lastCycles: [...this.#lastCycles],
    };
  }

  /** A new server; `retained`: the data block a retentive restart kept, else every tag starts at its initial value. */
  async #up(retained: ReadonlyMap<TagName, TagValue> | undefined): Promise<void> {
    const o = this.options;
    // The PLC program's start-up: whatever the data block kept, no part is being asked about or acknowledged.
    const initial = retained === undefined ? undefined : new Map<TagName, TagValue>([...retained, ['trigger', false], ['resultAck', false]]);
    const server = createServer(o, this.pkiDir, this.#port);
    try {
      await server.initialize();
      const vars = createTags(server, o, initial);
      await server.start();
      this.#port = server.endpoints[0]?.port ?? this.#port;
      const abort = new AbortController();
      const run: Run = { server, vars, abort, timers: [], port: runPort(vars, o.types, abort.signal) };
      this.#run = run;
      if (retained === undefined) this.#counter = 0;
      this.#lowSince = retained === undefined ? 0 : performance.now();
      this.#vision.attach(vars);
      this.#startTimers(run);
      for (const w of this.#awaitingRun ?? []) w.resolve(run.port);
      this.#awaitingRun = undefined;
    } catch (e) {
      await withTimeout(server.shutdown(0), 5000, () => new Error('shutdown timed out')).catch(() => undefined);
      const err = new LinegateError('LG_ERR_PLC_SIM_START', [`${o.host}:${this.#port}`, messageOf(e)], { cause: e });
      this.#releaseAwaiting(stoppedError(`the server did not come back: ${err.message}`));
      throw err;
    }
  }

  /** Takes the server down; for a retentive restart, returns the data block and lets the cycles wait for the next server. */
  async #down(mode: RestartMode | 'stop'): Promise<ReadonlyMap<TagName, TagValue> | undefined> {
    const run = this.#run;
    if (run === undefined) return undefined;
    this.#run = undefined;
    for (const t of run.timers) clearInterval(t);
    let retained: Map<TagName, TagValue> | undefined;
    if (mode === 'retentive') {
      retained = new Map([...run.vars].map(([tag, v]) => [tag, v.readValue().value.value as TagValue]));
      this.#awaitingRun ??= [];
      run.abort.abort(RETAINED);
    } else {
      run.abort.abort(stoppedError('the server went down during the cycle'));
      // Cycles end promptly on abort (every wait listens to it); bounded all the same.
      await withTimeout(this.#cycles, 2000, () => new Error('cycle did not end')).catch(() => undefined);
    }
    // Timeout 0: a PLC that goes down does not announce it, and tests should not wait for a grace period.
    await withTimeout(run.server.shutdown(0), 10_000, () => new Error('server shutdown timed out')).catch(() => undefined);
    this.#vision.detach();
    return retained;
  }

  /** The server a cycle works on: now, after the retentive restart under way, or never. */
  #server(): Promise<RunPort> {
    const run = this.#run;
    if (run !== undefined) return Promise.resolve(run.port);
    const awaiting = this.#awaitingRun;
    if (awaiting === undefined) return Promise.reject(stoppedError('the server is down'));
    // Bounded by the restart: #up resolves or releases every waiter, and so does stop().
    return new Promise((resolve, reject) => awaiting.push({ resolve, reject }));
  }

  #releaseAwaiting(err: Error): void {
    for (const w of this.#awaitingRun ?? []) w.reject(err);
    this.#awaitingRun = undefined;
  }

  #startTimers(run: Run): void {
    const o = this.options;
    if (o.triggerRateHz > 0) {
      run.timers.push(
        setInterval(() => {
          if (this.#queued > 0) this.#stats.skippedTicks++;
          // The PLC program's interlock: no Trigger for a vision side that is not ready; the part is rejected.
          else if (!this.#vision.interlockOpen()) this.#stats.notReadyTicks++;
          // A timer cycle that ends with the server going down is no one's error.
          else this.#enqueue({ partId: undefined, counter: undefined, ack: true, ackDelayMs: o.ackDelayMs, resultTimeoutMs: o.resultTimeoutMs }).catch(() => undefined);
        }, 1000 / o.triggerRateHz),
      );
    }
    if (o.heartbeatMs > 0 && run.vars.has('plcHeartbeat')) {
      const wrap = WRAP[o.types.plcHeartbeat] ?? 0x10000;
      // Counts on from what the data block holds: a retentive restart keeps it.
      let beat = Number(run.port.get('plcHeartbeat') ?? 0);
      run.timers.push(
        setInterval(() => {
          if (this.#heartbeatPaused) return;
          beat = (beat + 1) % wrap;
          run.port.set('plcHeartbeat', beat);
        }, o.heartbeatMs),
      );
    }
    run.timers.push(setInterval(() => this.#vision.watchdog(), Math.max(10, Math.min(100, o.visionWatchdogMs / 4))));
  }

  #enqueue(req: CycleRequest): Promise<TriggerRecord> {
    this.#queued++;
    const cycle = this.#cycles
      .then(() => new PlcCycle(this.#host, req).run())
      .then((r) => this.#record(r))
      .finally(() => this.#queued--);
    this.#cycles = cycle.catch(() => undefined);
    return cycle;
  }

  #record(r: TriggerRecord): TriggerRecord {
    this.#lastCycles.push(r);
    if (this.#lastCycles.length > LAST_CYCLES) this.#lastCycles.shift();
    this.emit('cycle', r);
    return r;
  }
}
