import { sleep } from '../../runtime/execute/bounded.js';
import type { CycleOutcome, SimSettings, TriggerRecord } from './sim-options.js';
import type { Raising, Wait } from './sim-vision.js';
import type { TagName } from './tags.js';

/*
 * One PLC cycle, as the PLC program runs it: wait until Trigger has been low
 * long enough and the interlock is open; set PartId and TriggerCounter, raise
 * Trigger; wait for ResultValid (level); ackDelayMs later, if it is still
 * high, check the echo, latch the verdict, raise ResultAck; wait for
 * ResultValid to drop; drop ResultAck and Trigger.
 *
 * A retentive restart does not end a cycle: one that had not latched its
 * verdict waits for the interlock on the next server and asks again with the
 * same PartId and counter; one that had latched completes (the start-up
 * reset dropped ResultAck and Trigger). Anything else that takes the server
 * down ends it with the abort's reason (LG_ERR_PLC_SIM_STOPPED).
 */

export type TagValue = string | number | boolean;

/** One server's life, as a cycle sees it. */
export interface RunPort {
  /** Aborted when this server goes down; the reason is RETAINED for a retentive restart. */
  readonly signal: AbortSignal;
  has(tag: TagName): boolean;
  get(tag: TagName): unknown;
  set(tag: TagName, value: TagValue): void;
  waitFor(tag: TagName, pred: (x: unknown) => boolean, ms: number): Promise<Wait>;
}

/** The abort reason of a retentive restart: the cycle carries on on the next server. */
export const RETAINED: unique symbol = Symbol('retentive restart');

export interface CycleStats {
  triggers: number;
  verdicts: { 0: number; 1: number; 2: number; 3: number };
  invalidVerdicts: number;
  timeouts: number;
  echoMismatches: number;
  validStuck: number;
  notReady: number;
  staleLatches: number;
  reasks: number;
}

/** What a cycle needs from the PLC that runs it. */
export interface CycleHost {
  readonly options: SimSettings;
  readonly stats: CycleStats;
  /** The server to work on: the current one, or the next one across a retentive restart; rejects once the PLC is down for good. */
  server(): Promise<RunPort>;
  untilInterlock(ms: number, signal: AbortSignal): Promise<Wait>;
  /** How long Trigger has been low; Infinity when it was never raised since a fresh start. */
  lowFor(): number;
  lowered(): void;
  /** The ResultValid edges from now on are this raising's answers (undefined: Trigger is low). */
  raise(raising: Raising | undefined): void;
  /** The next counter the PLC would use; `use` makes it the last one used. */
  nextCounter(): number;
  useCounter(counter: number): void;
  partIdFor(counter: number): string;
  latency(ms: number): void;
}

export interface CycleRequest {
  readonly partId: string | undefined;
  readonly counter: number | undefined;
  readonly ack: boolean;
  readonly ackDelayMs: number;
  readonly resultTimeoutMs: number;
}

const INTERRUPTED: unique symbol = Symbol('interrupted by a retentive restart');
const since = (t0: number): number => Math.round((performance.now() - t0) * 10) / 10;

type Latched = Omit<TriggerRecord, 'answers' | 'validStuck'> & { readonly raising: Raising };

export class PlcCycle {
  readonly #host: CycleHost;
  readonly #o: SimSettings;
  readonly #req: CycleRequest;
  /** Set when Trigger is first raised: a re-ask keeps them. */
  #id: { readonly partId: string; readonly counter: number; readonly at: string } | undefined;
  #raisings = 0;
  #latched: Latched | undefined;

  constructor(host: CycleHost, req: CycleRequest) {
    this.#host = host;
    this.#o = host.options;
    this.#req = req;
  }

  async run(): Promise<TriggerRecord> {
    let interlockMs = this.#req.resultTimeoutMs;
    for (;;) {
      const run = await this.#host.server();
      // Latched before the restart: the verdict is the PLC's; the start-up reset ended the handshake.
      if (this.#latched !== undefined) return this.#complete(this.#latched, false);
      const r = await this.#attempt(run, interlockMs);
      if (r !== INTERRUPTED) return r;
      // The vision side has to reconnect before it can open the interlock again.
      interlockMs = this.#o.reaskTimeoutMs;
    }
  }

  async #attempt(run: RunPort, interlockMs: number): Promise<TriggerRecord | typeof INTERRUPTED> {
    const host = this.#host;
    const o = this.#o;
    const signal = run.signal;
    // A subscription folds the changes inside one sampling interval into the last of them: a low pulse
    // shorter than the vision side's sampling interval would make two parts one long trigger.
    const lowFor = host.lowFor();
    const lowMs = o.triggerLowMs + Math.random() * o.triggerJitterMs;
    if (lowFor < lowMs) await sleep(lowMs - lowFor, signal);
    if (signal.aborted) return this.#interrupted(signal);

    const tGate = performance.now();
    const gate = await host.untilInterlock(interlockMs, signal);
    if (gate === 'aborted') return this.#interrupted(signal);
    if (gate === 'timeout') {
      host.stats.notReady++;
      // The part is rejected by the PLC on its own: no Trigger, so no counter spent on it.
      const counter = this.#id?.counter ?? this.#req.counter ?? host.nextCounter();
      const partId = this.#id?.partId ?? this.#req.partId ?? host.partIdFor(counter);
      return { partId, counter, outcome: 'not-ready', verdict: 0, rejectCode: 0, latencyMs: since(tGate), answers: 0, acked: false, at: this.#id?.at ?? new Date().toISOString() };
    }

    if (this.#id === undefined) {
      const counter = this.#req.counter ?? host.nextCounter();
      host.useCounter(counter);
      this.#id = { partId: this.#req.partId ?? host.partIdFor(counter), counter, at: new Date().toISOString() };
      host.stats.triggers++;
    } else {
      host.stats.reasks++;
    }
    const { partId, counter } = this.#id;
    this.#raisings++;
    run.set('partId', o.types.partId === 'String' ? partId : Number(partId));
    run.set('triggerCounter', counter);
    const raising: Raising = { answers: 0 };
    host.raise(raising);
    run.set('trigger', true);
    const t0 = performance.now();
    const deadline = t0 + this.#req.resultTimeoutMs;

    let latencyMs: number;
    for (;;) {
      // Level, not edge: a ResultValid left high by the previous part is read at once, and its stale echo is what gives it away.
      const answered = await run.waitFor('resultValid', (x) => x === true, Math.max(0, deadline - performance.now()));
      latencyMs = since(t0);
      if (answered === 'aborted') return this.#interrupted(signal);
      if (answered === 'timeout') {
        this.#lower(run, false);
        host.stats.timeouts++;
        return this.#record({ partId, counter, outcome: 'timeout', verdict: 0, rejectCode: 0, latencyMs, answers: raising.answers, acked: false, at: this.#id.at });
      }
      if (this.#req.ackDelayMs === 0) break;
      // The PLC acts on what its scan sees ackDelayMs later; ResultValid gone by then is no answer to latch.
      await sleep(this.#req.ackDelayMs, signal);
      if (signal.aborted) return this.#interrupted(signal);
      if (run.get('resultValid') === true) break;
    }

    this.#latched = this.#latch(run, raising, latencyMs);
    if (this.#req.ack) run.set('resultAck', true);
    const dropped = await run.waitFor('resultValid', (x) => x !== true, this.#req.resultTimeoutMs);
    if (dropped === 'aborted') return this.#interrupted(signal);
    this.#lower(run, this.#req.ack);
    if (dropped === 'timeout') host.stats.validStuck++;
    return this.#complete(this.#latched, dropped === 'timeout');
  }

  /** Reads and judges the answer as the PLC latches it; counted once, whatever happens to the cycle after. */
  #latch(run: RunPort, raising: Raising, latencyMs: number): Latched {
    const stats = this.#host.stats;
    const { partId, counter, at } = this.#id!;
    const echo = { partId: String(run.get('resultPartId') ?? ''), counter: Number(run.get('resultCounter') ?? -1) };
    const verdict = Number(run.get('verdict'));
    const rejectCode = Number(run.get('rejectCode'));
    const score = run.has('score') ? Number(run.get('score')) : undefined;
    const modelVersion = run.has('modelVersion') ? String(run.get('modelVersion')) : undefined;
    const outcome: CycleOutcome = echo.partId === partId && echo.counter === counter ? 'ok' : 'echo-mismatch';
    if (outcome === 'echo-mismatch') stats.echoMismatches++;
    else if (verdict === 0 || verdict === 1 || verdict === 2 || verdict === 3) stats.verdicts[verdict]++;
    else stats.invalidVerdicts++;
    if (raising.answers === 0) stats.staleLatches++;
    if (outcome === 'ok') this.#host.latency(latencyMs);
    return {
      partId,
      counter,
      outcome,
      verdict,
      rejectCode,
      ...(score === undefined ? {} : { score }),
      ...(modelVersion === undefined ? {} : { modelVersion }),
      echo,
      latencyMs,
      acked: this.#req.ack,
      at,
      raising,
    };
  }

  #complete(l: Latched, validStuck: boolean): TriggerRecord {
    const { raising, ...rest } = l;
    return this.#record({ ...rest, answers: raising.answers, ...(validStuck ? { validStuck: true as const } : {}) });
  }

  #lower(run: RunPort, acked: boolean): void {
    if (acked) run.set('resultAck', false);
    run.set('trigger', false);
    this.#host.lowered();
    this.#host.raise(undefined);
  }

  #interrupted(signal: AbortSignal): typeof INTERRUPTED {
    if (signal.reason === RETAINED) return INTERRUPTED;
    throw signal.reason as Error;
  }

  #record(r: TriggerRecord): TriggerRecord {
    return this.#raisings > 1 ? { ...r, retried: true } : r;
  }
}
