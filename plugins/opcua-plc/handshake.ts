import { EventEmitter } from 'node:events';
import type { Logger } from '../../runtime/contract.js';
import { LinegateError, messageOf, rejectCodeOf } from '../../runtime/errors.js';
import { defectScore, type InspectionResult } from '../../runtime/result.js';
import type { PlcLink } from './link.js';
import { VERDICT_CODE } from './tags.js';

/** A trigger the PLC raised: the part it asks about and its counter. */
export interface Trigger {
  readonly partId: string;
  readonly counter: number;
  readonly at: number;
}

export interface HandshakeOptions {
  readonly mode: 'plc' | 'free-run';
  /** From trigger to verdict; past it linegate answers "not decidable" itself. */
  readonly deadlineMs: number;
  readonly ackTimeoutMs: number;
  readonly heartbeatMs: number;
  /** A PLC heartbeat older than this means the PLC is gone (0: not watched). */
  readonly plcWatchdogMs: number;
  readonly log: Logger;
}

export interface HandshakeEvents {
  trigger: [Trigger];
  'plc-heartbeat-lost': [];
  'plc-heartbeat-back': [];
  'missed-triggers': [count: number];
}

interface Payload {
  readonly partId: string;
  readonly verdict: number;
  readonly rejectCode: number;
  readonly score: number;
  readonly counter: number;
  readonly modelVersion: string;
}

/**
 * linegate's side of the PLC handshake:
 *   PLC: PartId, TriggerCounter, Trigger=1 -> linegate: inspect, payload (one
 *   Write), ResultValid=1 (a second Write: a multi-node write is not a
 *   transaction) -> PLC: checks the echo, latches, ResultAck=1 -> linegate:
 *   ResultValid=0.
 * The counter makes a repeated trigger (after a reconnect) idempotent and a
 * missed one visible. A verdict is only ever written for the part read in
 * this cycle, and a part without a verdict by the deadline gets "not
 * decidable" with a reject code: never a silent pass.
 */
export class Handshake extends EventEmitter<HandshakeEvents> {
  readonly #link: PlcLink;
  readonly #o: HandshakeOptions;
  #pending: Trigger | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #last: Payload | undefined;
  #lastTrigger = false;
  #freeRunCounter = 0;
  #ready = false;
  #heartbeat = 0;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #plcSeenAt = Date.now();
  #watchdog: NodeJS.Timeout | undefined;
  #plcLost = false;
  #ack: { resolve: () => void } | undefined;
  /** Writes go one after another: the PLC must never see two cycles' tags interleaved. */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(link: PlcLink, options: HandshakeOptions) {
    super();
    this.#link = link;
    this.#o = options;
    link.on('change', (tag, value) => {
      if (tag === 'trigger') this.#onTrigger(Boolean(value));
      else if (tag === 'triggerCounter' && this.#lastTrigger) this.#takeTrigger(false);
      else if (tag === 'resultAck' && Boolean(value)) this.#ack?.resolve();
      else if (tag === 'plcHeartbeat') this.#onPlcHeartbeat();
    });
    // A restarted PLC has forgotten Ready, the heartbeat and the part it asked about.
    link.on('up', () =>
      void this.#serial(async () => {
        await this.#assertReady();
        await this.#reconcile();
      }).catch((err: unknown) => this.#o.log.error({ err }, 'could not re-assert VisionReady after the reconnect')),
    );
    link.on('down', () => this.#ack?.resolve());
  }

  get pending(): Trigger | undefined {
    return this.#pending;
  }

  /** Model and link are up: VisionReady = 1, the heartbeat runs. */
  async start(): Promise<void> {
    this.#ready = true;
    await this.#serial(() => this.#assertReady());
    this.#heartbeatTimer = setInterval(() => this.#beat(), this.#o.heartbeatMs);
    if (this.#o.plcWatchdogMs > 0) this.#watchdog = setInterval(() => this.#checkPlc(), Math.max(50, this.#o.plcWatchdogMs / 4));
  }

  /** VisionReady = 0 and timers off; idempotent. */
  async stop(): Promise<void> {
    this.#ready = false;
    clearInterval(this.#heartbeatTimer);
    clearInterval(this.#watchdog);
    clearTimeout(this.#deadline);
    if (this.#link.up) await this.#serial(() => this.#link.write({ visionReady: false, busy: false })).catch(() => undefined);
  }

  /**
   * Delivers a result. In `plc` mode only the pending trigger's part is
   * answered; anything else is refused (never a verdict for the wrong part).
   */
  deliver(result: InspectionResult): Promise<void> {
    return this.#serial(async () => {
      if (this.#o.mode === 'free-run') {
        this.#freeRunCounter++;
        await this.#link.write(toWire(payloadOf(result, this.#freeRunCounter)));
        return;
      }
      const p = this.#pending;
      if (p === undefined || p.partId !== result.partId) {
        throw new LinegateError('LG_ERR_PLC_NOT_PENDING', [result.partId, p?.partId ?? 'none']);
      }
      await this.#answer(payloadOf(result, p.counter));
    });
  }

  async #answer(payload: Payload): Promise<void> {
    clearTimeout(this.#deadline);
    this.#pending = undefined;
    this.#last = payload;
    await this.#link.write(toWire(payload));
    await this.#link.write({ resultValid: true });
    const acked = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.#o.ackTimeoutMs);
      this.#ack = {
        resolve: () => {
          clearTimeout(timer);
          resolve(this.#link.up);
        },
      };
    });
    this.#ack = undefined;
    if (this.#link.up) await this.#link.write({ resultValid: false, busy: false });
    if (!acked) throw new LinegateError('LG_ERR_PLC_NO_ACK', [payload.partId, this.#o.ackTimeoutMs]);
  }

  #onTrigger(high: boolean): void {
    const rising = high && !this.#lastTrigger;
    this.#lastTrigger = high;
    if (rising) this.#takeTrigger(true);
  }

  /**
   * A new trigger is a rising Trigger edge, or a new TriggerCounter while
   * Trigger is high: a PLC that drops and raises Trigger within one sampling
   * interval shows no edge, but its counter still moves.
   */
  #takeTrigger(edge: boolean): void {
    if (this.#o.mode !== 'plc') return;
    void this.#serial(async () => {
      const v = await this.#link.read(['partId', 'triggerCounter']);
      await this.#take({ partId: String(v.partId), counter: Number(v.triggerCounter), at: Date.now() }, edge);
    }).catch((err: unknown) => this.#o.log.error({ err }, 'could not take the PLC trigger'));
  }

  async #take(trigger: Trigger, edge: boolean): Promise<void> {
    const last = this.#last;
    if (this.#pending !== undefined && sameCycle(this.#pending, trigger)) return; // already taken
    const same = last !== undefined && sameCycle(last, trigger);
    if (same && !edge) return; // the counter event of a cycle already answered
    if (same) {
      // The same trigger again (a reconnect, a PLC retry): answer it again, do not inspect twice.
      this.#o.log.info({ partId: trigger.partId, counter: trigger.counter }, 'repeated trigger: the last result is written again');
      await this.#answer(last);
      return;
    }
    if (last !== undefined && trigger.counter > last.counter + 1) {
      const missed = trigger.counter - last.counter - 1;
      this.#o.log.warn({ missed, from: last.counter, to: trigger.counter }, 'PLC triggers were missed (their parts got no verdict from linegate; the PLC rejects them on its own time-out)');
      this.emit('missed-triggers', missed);
    }
    this.#pending = trigger;
    await this.#link.write({ busy: true });
    clearTimeout(this.#deadline);
    this.#deadline = setTimeout(() => this.#failSafe(trigger), this.#o.deadlineMs);
    this.emit('trigger', trigger);
  }

  /**
   * After a reconnect: a part still pending is kept only if the PLC still asks
   * about it (a network blip). A PLC that restarted has forgotten it, and its
   * late verdict must not land on whatever the PLC asks next; a trigger that
   * is already up again is taken now (no edge will come for it).
   */
  async #reconcile(): Promise<void> {
    if (this.#o.mode !== 'plc') return;
    const v = await this.#link.read(['trigger', 'partId', 'triggerCounter']);
    const now: Trigger = { partId: String(v.partId), counter: Number(v.triggerCounter), at: Date.now() };
    const high = Boolean(v.trigger);
    const pending = this.#pending;
    if (pending !== undefined && !(high && sameCycle(pending, now))) {
      clearTimeout(this.#deadline);
      this.#pending = undefined;
      this.#o.log.warn({ partId: pending.partId, counter: pending.counter }, 'the PLC no longer asks about this part after the reconnect (restarted?): its verdict will not be written');
    }
    this.#lastTrigger = high;
    if (high) await this.#take(now, true);
  }

  /** No verdict by the deadline: "not decidable" with a reject code, written by the link itself. */
  #failSafe(trigger: Trigger): void {
    if (this.#pending !== trigger) return;
    const err = new LinegateError('LG_ERR_PLC_DEADLINE', [trigger.partId, this.#o.deadlineMs]);
    this.#o.log.error({ partId: trigger.partId, counter: trigger.counter }, err.message);
    void this.#serial(() => this.#answer({ partId: trigger.partId, verdict: VERDICT_CODE.error, rejectCode: rejectCodeOf(err), score: 0, counter: trigger.counter, modelVersion: '' })).catch(
      (e: unknown) => this.#o.log.error({ err: e, partId: trigger.partId }, 'could not write the fail-safe reject'),
    );
  }

  async #assertReady(): Promise<void> {
    if (!this.#link.up) return;
    await this.#link.write({ visionReady: this.#ready, visionHeartbeat: this.#heartbeat });
  }

  #beat(): void {
    // Gated on the link: a timer that writes while the link is down piles up requests (node-opcua W21/W22).
    if (!this.#link.up) return;
    this.#heartbeat = (this.#heartbeat + 1) % 2_147_483_647;
    this.#link.write({ visionHeartbeat: this.#heartbeat }).catch((err: unknown) => this.#o.log.debug({ err: messageOf(err) }, 'heartbeat write failed'));
  }

  #onPlcHeartbeat(): void {
    this.#plcSeenAt = Date.now();
    if (this.#plcLost) {
      this.#plcLost = false;
      this.#o.log.info('PLC heartbeat is back');
      this.emit('plc-heartbeat-back');
    }
  }

  #checkPlc(): void {
    if (this.#plcLost || Date.now() - this.#plcSeenAt <= this.#o.plcWatchdogMs) return;
    this.#plcLost = true;
    this.#o.log.error({ silentMs: Date.now() - this.#plcSeenAt }, 'PLC heartbeat lost: is the PLC running?');
    this.emit('plc-heartbeat-lost');
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(work);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

function payloadOf(r: InspectionResult, counter: number): Payload {
  return {
    partId: r.partId,
    verdict: VERDICT_CODE[r.verdict],
    rejectCode: r.rejectCode,
    score: defectScore(r),
    counter,
    modelVersion: r.model === null ? '' : `${r.model.name}@${r.model.version}`,
  };
}

const sameCycle = (a: Trigger | Payload, b: Trigger | Payload): boolean => a.partId === b.partId && a.counter === b.counter;

const toWire = (p: Payload) => ({ resultPartId: p.partId, verdict: p.verdict, rejectCode: p.rejectCode, score: p.score, resultCounter: p.counter, modelVersion: p.modelVersion });
