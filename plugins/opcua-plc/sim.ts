import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { format } from 'node:util';
import { DataType, setErrorLogger, setWarningLogger, type DataValue, type OPCUAServer, type UAVariable } from 'node-opcua';
import { sleep, withTimeout } from '../../runtime/execute/bounded.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import { WRAP, parseSimOptions, percentile, type CycleOutcome, type SimEvents, type SimOptionsInput, type SimReport, type SimSettings, type TriggerRecord } from './sim-options.js';
import { createServer, createTags } from './sim-server.js';
import type { TagName } from './tags.js';

export { parseSimOptions, SimOptions, type CycleOutcome, type HeartbeatLoss, type SimEvents, type SimOptionsInput, type SimReport, type SimSettings, type TriggerRecord } from './sim-options.js';

/*
 * The PLC's side of linegate's handshake, as an OPC UA server, for tests, the
 * demo and `linegate plc-sim`. Per cycle the PLC: sets PartId and
 * TriggerCounter, raises Trigger, waits for ResultValid, checks the echo,
 * latches the verdict, raises ResultAck, waits for ResultValid to drop, drops
 * ResultAck and Trigger. No node-opcua type appears in an exported signature,
 * so runtime/ can use the sim without owning node-opcua's types.
 */

type TagValue = string | number | boolean;

/** One running server and everything tied to its life; a restart makes a new one. */
interface Run {
  readonly server: OPCUAServer;
  readonly vars: Map<TagName, UAVariable>;
  readonly abort: AbortController;
  readonly timers: NodeJS.Timeout[];
}

const LAST_CYCLES = 50;
const LATENCY_WINDOW = 10_000;

const stoppedError = (why: string): LinegateError => new LinegateError('LG_ERR_PLC_SIM_STOPPED', [why]);

/** W27 warns about RSA PKCS#1 v1.5 (Basic128Rsa15), a policy the sim never offers. */
const IRRELEVANT = /NODE-OPCUA-W27|--security-revert=CVE-2023-46809/;

/** node-opcua writes its warnings with console.log; the CLI keeps stdout for JSON, so it sends them elsewhere. */
export function sendOpcuaLogsTo(write: (line: string) => void): void {
  const forward =
    (level: string) =>
    (_context: unknown, ...args: unknown[]): void => {
      const text = format(...args);
      if (!IRRELEVANT.test(text)) write(`node-opcua ${level}: ${text}`);
    };
  setWarningLogger(forward('warning'));
  setErrorLogger(forward('error'));
}

/**
 * Resolves 'ok' once `pred` holds for the tag's value (now or after a change),
 * 'timeout' after `ms`, 'aborted' when the run ends: every wait is bounded.
 */
function waitForValue(v: UAVariable, pred: (x: unknown) => boolean, ms: number, signal: AbortSignal): Promise<'ok' | 'timeout' | 'aborted'> {
  if (signal.aborted) return Promise.resolve('aborted');
  if (pred(v.readValue().value.value)) return Promise.resolve('ok');
  return new Promise((resolve) => {
    const done = (r: 'ok' | 'timeout' | 'aborted'): void => {
      clearTimeout(timer);
      v.off('value_changed', onChange);
      signal.removeEventListener('abort', onAbort);
      resolve(r);
    };
    const onChange = (dv: DataValue): void => {
      if (pred(dv.value.value)) done('ok');
    };
    const onAbort = (): void => done('aborted');
    const timer = setTimeout(() => done('timeout'), ms);
    v.on('value_changed', onChange);
    signal.addEventListener('abort', onAbort, { once: true });
  });
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
  /** Cycles run one at a time: each waits for the one before it. */
  #cycles: Promise<unknown> = Promise.resolve();
  #queued = 0;
  #counter = 0;
  /** When Trigger last went low (performance.now()); 0: never raised since the start. */
  #lowSince = 0;
  #ready = false;
  #lastBeatAt = 0;
  #beatLost = false;
  #heartbeatPaused = false;

  readonly #stats = { triggers: 0, verdicts: { 0: 0, 1: 0, 2: 0, 3: 0 }, invalidVerdicts: 0, timeouts: 0, echoMismatches: 0, validStuck: 0, heartbeatLosses: 0, skippedTicks: 0, restarts: 0 };
  readonly #lastCycles: TriggerRecord[] = [];
  readonly #latencies: number[] = [];

  private constructor(options: SimSettings, pkiDir: string, ownPki: boolean) {
    super();
    this.options = options;
    this.pkiDir = pkiDir;
    this.#ownPki = ownPki;
    this.#port = options.port;
  }

  /** Starts the server; resolves once it listens. The first start in a fresh pkiDir also creates the server certificate. */
  static async start(input: SimOptionsInput = {}): Promise<SimulatedPlc> {
    const options = parseSimOptions(input);
    const ownPki = options.security.pkiDir === undefined;
    const pkiDir = options.security.pkiDir === undefined ? mkdtempSync(path.join(os.tmpdir(), 'linegate-plc-sim-pki-')) : path.resolve(options.security.pkiDir);
    const plc = new SimulatedPlc(options, pkiDir, ownPki);
    try {
      await plc.#up();
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
   * One manual cycle; waits for a running cycle first. Resolves when the cycle ends (acked, echo mismatch, or timeout).
   * `counter` replaces the next TriggerCounter, to play a faulty PLC: the last counter again is a repeated trigger
   * (a PLC retrying after a reconnect), a jump is triggers the vision side never saw. Later cycles count on from it.
   */
  trigger(partId?: string, options: { readonly counter?: number } = {}): Promise<TriggerRecord> {
    if (this.#stopped !== undefined) return Promise.reject(stoppedError('trigger() after stop()'));
    const { counter } = options;
    if (counter !== undefined && (!Number.isInteger(counter) || counter < 0 || counter >= (WRAP[this.options.types.triggerCounter] ?? 0x100000000))) {
      return Promise.reject(new LinegateError('LG_ERR_PLC_SIM_CONFIG', ['trigger(counter)', `${counter} is not a ${this.options.types.triggerCounter} counter value`]));
    }
    return this.#enqueue(partId, counter);
  }

  /** Stops or resumes PlcHeartbeat while the server stays up: a PLC put in STOP, whose OPC UA server still answers. */
  setHeartbeat(running: boolean): void {
    this.#heartbeatPaused = !running;
  }

  /** Stops and starts again on the same port and PKI; every tag value is back to its initial value, the counter at 0. */
  restart(): Promise<void> {
    if (this.#stopped !== undefined) return Promise.reject(stoppedError('restart() after stop()'));
    const step = this.#lifecycle.then(async () => {
      await this.#down();
      this.#stats.restarts++;
      await this.#up();
    });
    this.#lifecycle = step.catch(() => undefined);
    return step;
  }

  /** Shuts the server down for good; idempotent. A cycle in progress rejects with LG_ERR_PLC_SIM_STOPPED. */
  stop(): Promise<void> {
    this.#stopped ??= this.#lifecycle.then(async () => {
      try {
        await this.#down();
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
      visionReady: this.#ready,
      skippedTicks: s.skippedTicks,
      restarts: s.restarts,
      latencyMs: sorted.length === 0 ? null : { p50: percentile(sorted, 50), p99: percentile(sorted, 99), n: sorted.length },
      lastCycles: [...this.#lastCycles],
    };
  }

  async #up(): Promise<void> {
    const o = this.options;
    const server = createServer(o, this.pkiDir, this.#port);
    try {
      await server.initialize();
      const vars = createTags(server, o);
      await server.start();
      this.#port = server.endpoints[0]?.port ?? this.#port;
      const run: Run = { server, vars, abort: new AbortController(), timers: [] };
      this.#run = run;
      this.#counter = 0;
      this.#lowSince = 0;
      this.#setReady(false);
      this.#startTimers(run);
    } catch (e) {
      await withTimeout(server.shutdown(0), 5000, () => new Error('shutdown timed out')).catch(() => undefined);
      throw new LinegateError('LG_ERR_PLC_SIM_START', [`${o.host}:${this.#port}`, messageOf(e)], { cause: e });
    }
  }

  async #down(): Promise<void> {
    const run = this.#run;
    if (run === undefined) return;
    this.#run = undefined;
    for (const t of run.timers) clearInterval(t);
    run.abort.abort(stoppedError('the server went down during the cycle'));
    // Cycles end promptly on abort (every wait listens to it); bounded all the same.
    await withTimeout(this.#cycles, 2000, () => new Error('cycle did not end')).catch(() => undefined);
    // Timeout 0: a PLC that goes down does not announce it, and tests should not wait for a grace period.
    await withTimeout(run.server.shutdown(0), 10_000, () => new Error('server shutdown timed out')).catch(() => undefined);
    this.#setReady(false);
  }

  #startTimers(run: Run): void {
    const o = this.options;
    if (o.triggerRateHz > 0) {
      run.timers.push(
        setInterval(() => {
          if (this.#queued > 0) {
            this.#stats.skippedTicks++;
            return;
          }
          // A timer cycle that ends with the server going down is no one's error.
          this.#enqueue(undefined).catch(() => undefined);
        }, 1000 / o.triggerRateHz),
      );
    }
    if (o.heartbeatMs > 0 && run.vars.has('plcHeartbeat')) {
      const type = o.types.plcHeartbeat;
      let beat = 0;
      run.timers.push(
        setInterval(() => {
          if (this.#heartbeatPaused) return;
          beat = (beat + 1) % (WRAP[type] ?? 0x10000);
          this.#set(run, 'plcHeartbeat', beat);
        }, o.heartbeatMs),
      );
    }
    const ready = run.vars.get('visionReady');
    const heartbeat = run.vars.get('visionHeartbeat');
    ready?.on('value_changed', (dv: DataValue) => this.#setReady(dv.value.value === true));
    let lastBeat: unknown = heartbeat?.readValue().value.value;
    heartbeat?.on('value_changed', (dv: DataValue) => {
      // A rewrite of the same number is a stuck counter, not a heartbeat (value_changed also fires on a new timestamp).
      if (dv.value.value === lastBeat) return;
      lastBeat = dv.value.value;
      this.#lastBeatAt = performance.now();
      this.#beatLost = false;
    });
    run.timers.push(setInterval(() => this.#watchdog(), Math.max(10, Math.min(100, o.visionWatchdogMs / 4))));
  }

  #setReady(ready: boolean): void {
    if (ready === this.#ready) return;
    this.#ready = ready;
    // Becoming ready starts the watchdog afresh: the first heartbeat is due one period from now.
    this.#lastBeatAt = performance.now();
    this.#beatLost = false;
    this.emit('ready', ready);
  }

  #watchdog(): void {
    if (!this.#ready || this.#beatLost) return;
    const silentMs = performance.now() - this.#lastBeatAt;
    if (silentMs <= this.options.visionWatchdogMs) return;
    // Latched until the heartbeat moves again: one loss is one event, not one per check.
    this.#beatLost = true;
    this.#stats.heartbeatLosses++;
    this.emit('heartbeat-lost', { silentMs: Math.round(silentMs), at: new Date().toISOString() });
  }

  #enqueue(partId: string | undefined, counter?: number): Promise<TriggerRecord> {
    this.#queued++;
    const cycle = this.#cycles.then(() => this.#cycle(partId, counter)).finally(() => this.#queued--);
    this.#cycles = cycle.catch(() => undefined);
    return cycle;
  }

  #set(run: Run, tag: TagName, value: TagValue): void {
    run.vars.get(tag)?.setValueFromSource({ dataType: DataType[this.options.types[tag]], value });
  }

  #get(run: Run, tag: TagName): unknown {
    return run.vars.get(tag)?.readValue().value.value;
  }

  async #cycle(partIdArg: string | undefined, counterArg: number | undefined): Promise<TriggerRecord> {
    const run = this.#run;
    if (run === undefined || run.abort.signal.aborted) throw stoppedError('the server is down');
    const o = this.options;
    const signal = run.abort.signal;
    const valid = run.vars.get('resultValid') as UAVariable;
    if (partIdArg !== undefined && o.types.partId !== 'String' && !/^\d+$/.test(partIdArg)) {
      throw new LinegateError('LG_ERR_PLC_SIM_CONFIG', ['trigger(partId)', `PartId is a ${o.types.partId} tag: "${partIdArg}" is not a whole number`]);
    }
    // A subscription folds the changes inside one sampling interval into the last of them: a low pulse
    // shorter than the vision side's sampling interval would make two parts one long trigger.
    const lowFor = this.#lowSince === 0 ? Infinity : performance.now() - this.#lowSince;
    if (lowFor < o.triggerLowMs) await sleep(o.triggerLowMs - lowFor, signal);
    if (signal.aborted) throw signal.reason as Error;
    this.#counter = counterArg ?? (this.#counter + 1) % (WRAP[o.types.triggerCounter] ?? 0x100000000);
    const counter = this.#counter;
    const partId = partIdArg ?? (o.types.partId === 'String' ? `${o.partIdPrefix}${String(counter).padStart(6, '0')}` : String(counter));
    const at = new Date().toISOString();
    this.#set(run, 'partId', o.types.partId === 'String' ? partId : Number(partId));
    this.#set(run, 'triggerCounter', counter);
    this.#set(run, 'trigger', true);
    this.#stats.triggers++;
    const t0 = performance.now();

    // Level, not edge: a ResultValid left high by the previous part is read at once, and its stale echo is what gives it away.
    const answered = await waitForValue(valid, (x) => x === true, o.resultTimeoutMs, signal);
    const latencyMs = Math.round((performance.now() - t0) * 10) / 10;
    if (answered === 'aborted') throw signal.reason as Error;
    if (answered === 'timeout') {
      this.#set(run, 'trigger', false);
      this.#lowSince = performance.now();
      this.#stats.timeouts++;
      return this.#record({ partId, counter, outcome: 'timeout', verdict: 0, rejectCode: 0, latencyMs, at });
    }

    const echo = { partId: String(this.#get(run, 'resultPartId') ?? ''), counter: Number(this.#get(run, 'resultCounter') ?? -1) };
    const verdict = Number(this.#get(run, 'verdict'));
    const rejectCode = Number(this.#get(run, 'rejectCode'));
    const score = run.vars.has('score') ? Number(this.#get(run, 'score')) : undefined;
    const modelVersion = run.vars.has('modelVersion') ? String(this.#get(run, 'modelVersion')) : undefined;
    const outcome: CycleOutcome = echo.partId === partId && echo.counter === counter ? 'ok' : 'echo-mismatch';
    if (outcome === 'echo-mismatch') this.#stats.echoMismatches++;
    else if (verdict === 0 || verdict === 1 || verdict === 2 || verdict === 3) this.#stats.verdicts[verdict]++;
    else this.#stats.invalidVerdicts++;
    if (outcome === 'ok') {
      this.#latencies.push(latencyMs);
      if (this.#latencies.length > LATENCY_WINDOW) this.#latencies.shift();
    }

    // Acked even on a mismatch: the PLC has rejected the part, and linegate must be able to finish the handshake and take the next one.
    this.#set(run, 'resultAck', true);
    const dropped = await waitForValue(valid, (x) => x !== true, o.resultTimeoutMs, signal);
    if (dropped === 'aborted') throw signal.reason as Error;
    this.#set(run, 'resultAck', false);
    this.#set(run, 'trigger', false);
    this.#lowSince = performance.now();
    if (dropped === 'timeout') this.#stats.validStuck++;
    return this.#record({
      partId,
      counter,
      outcome,
      verdict,
      rejectCode,
      ...(score === undefined ? {} : { score }),
      ...(modelVersion === undefined ? {} : { modelVersion }),
      echo,
      latencyMs,
      ...(dropped === 'timeout' ? { validStuck: true as const } : {}),
      at,
    });
  }

  #record(r: TriggerRecord): TriggerRecord {
    this.#lastCycles.push(r);
    if (this.#lastCycles.length > LAST_CYCLES) this.#lastCycles.shift();
    this.emit('cycle', r);
    return r;
  }
}
