import { EventEmitter } from 'node:events';
import type { Health, Logger, TriggerRef } from '../../runtime/contract.js';
import { LinegateError, messageOf, rejectCodeOf } from '../../runtime/errors.js';
import { defectScore, type InspectionResult } from '../../runtime/result.js';
import { askOf, canMove, moveCycle, newCycle, sameAsk, type AckOutcome, type AnswerSource, type Cycle, type Payload } from './cycle.js';
import type { Batch, PlcLink } from './link.js';
import { Liveness } from './liveness.js';
import { VERDICT_CODE } from './tags.js';

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

/** A trigger handed to the source: the frame it takes carries `ref`. */
export interface TriggerTicket {
  readonly partId: string;
  readonly ref: TriggerRef;
}

export interface HandshakeEvents {
  'missed-triggers': [count: number];
}

/** The service a PLC sink offers its trigger source: this handshake. */
export const TRIGGERS = 'opcua-plc/triggers@1';

type Ask = { readonly partId: string; readonly counter: number };
type Phase = 'starting' | 'ready' | 'stopping' | 'closed';

/** Cycles kept after they are replaced, so a late verdict's refusal can say why. */
const RECENT = 32;

/**
 * linegate's side of the PLC handshake:
 *   PLC: PartId, TriggerCounter, Trigger=1 -> linegate: Busy, inspect, the
 *   payload (one Write), ResultValid=1 (a second Write: a multi-node write is
 *   not a transaction) -> PLC: checks the echo, latches, ResultAck=1 ->
 *   linegate: ResultValid=0.
 * Every observation of the PLC (notification batches, the reconcile after a
 * reconnect) and every write goes through one serial queue, so each decision
 * (take a trigger, answer, fail-safe, ack) is made on the state as it is when
 * its turn comes, never on what it was when it was asked for. Waiting for
 * ResultAck is not in the queue: a PLC that never acks cannot delay the next
 * trigger. Each cycle's identity is the TriggerRef the frame and the result
 * carry; a verdict is written only for the cycle the PLC asks about now.
 */
export class Handshake extends EventEmitter<HandshakeEvents> {
  readonly #link: PlcLink;
  readonly #o: HandshakeOptions;
  readonly #liveness: Liveness;
  #phase: Phase = 'starting';
  #current: Cycle | undefined;
  readonly #recent = new Map<string, Cycle>();
  /** The ask standing while Trigger is high: a second sight of it (the reconcile read and the notification) is not a new ask. */
  #standing: Ask | undefined;
  /** Last level seen; undefined while the link is down (a level seen first after a reconnect is not an edge for ack). */
  #triggerHigh: boolean | undefined = false;
  #ackHigh: boolean | undefined = false;
  /**
   * False from a link loss until the reconcile after it: what the PLC asks meanwhile waits for
   * the reconcile to say whether the PLC still knows what it asked before (an ask seen first
   * would be taken for a repeat of a part a freshly restarted PLC no longer means).
   */
  #reconciled = true;
  /** What the PLC holds from us: to tell a PLC that kept its data across a restart from one that lost it. */
  #lastWritten: Payload | undefined;
  #readyWritten = false;
  #consumer: { attached: boolean; wake: (() => void) | undefined } = { attached: false, wake: undefined };
  #freeRunCounter = 0;
  #tail: Promise<unknown> = Promise.resolve();
  #outage: { since: number; cyclesLost: number } | undefined;
  #lastOutage: { from: string; to: string; ms: number; cyclesLost: number } | undefined;
  readonly #stats = { taken: 0, answered: 0, acked: 0, unacked: 0, abandoned: 0, repeated: 0, failSafe: 0, noFrame: 0, shutdown: 0, missed: 0, outages: 0, refused: 0 };

  constructor(link: PlcLink, options: HandshakeOptions) {
    super();
    this.#link = link;
    this.#o = options;
    this.#liveness = new Liveness(link, { ...options, mayWrite: () => this.#reconciled });
    link.on('batch', (batch) => void this.#serial(() => this.#apply(batch)).catch((err: unknown) => this.#o.log.error({ err }, 'could not take what the PLC said')));
    link.on('down', () => this.#linkDown());
    link.on('up', () => void this.#serial(() => this.#reconcile()).catch((err: unknown) => this.#o.log.error({ err }, 'could not reconcile with the PLC after the reconnect')));
  }

  /**
   * The trigger source registers (a PLC in mode plc with none would answer every part "not
   * decidable"); one at a time, since each trigger is one frame. Returns what unregisters it.
   */
  attach(step: string): () => void {
    if (this.#consumer.attached) throw new LinegateError('LG_ERR_STATION_DEPENDENCY', [step, 'core/opcua-trigger@1', TRIGGERS, 'plc', 'another source already takes this PLC\'s triggers']);
    this.#consumer.attached = true;
    return () => {
      this.#consumer.attached = false;
      this.#consumer.wake?.();
    };
  }

  /** The whole station is up: VisionReady = 1, the heartbeat runs. */
  async start(): Promise<void> {
    if (this.#o.mode === 'plc' && !this.#consumer.attached) throw new LinegateError('LG_ERR_PLC_NO_TRIGGER_SOURCE', ['plc', 'plc']);
    this.#phase = 'ready';
    await this.#serial(async () => {
      if (this.#link.up) await this.#writeReady();
    });
    this.#liveness.start();
  }

  /** No more parts will be inspected: VisionReady = 0, and a trigger no frame was taken for is answered now (905), not left to time out. */
  async stopping(): Promise<void> {
    if (this.#phase !== 'ready' && this.#phase !== 'starting') return;
    this.#phase = 'stopping';
    this.#consumer.wake?.();
    await this.#serial(async () => {
      const c = this.#current;
      if (c !== undefined && c.state === 'TRIGGERED' && !c.taken) await this.#failSafe(c, 'shutdown', new LinegateError('LG_ERR_FRAME_SHUTDOWN'));
      if (this.#link.up) await this.#writeReady();
    });
  }

  /**
   * After the drain: a trigger whose verdict never came (its frame was lost)
   * is answered "not decidable" (905) and its ack awaited, every wait ends,
   * timers stop. Bounded by the ack time-out; idempotent.
   */
  async close(): Promise<void> {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    this.#consumer.wake?.();
    this.#liveness.stop();
    const waits = await this.#serial(async () => {
      const c = this.#current;
      if (c !== undefined && c.state === 'TRIGGERED' && this.#link.up) await this.#failSafe(c, 'shutdown', new LinegateError('LG_ERR_FRAME_SHUTDOWN'));
      return { done: this.#current?.ack?.done };
    }).catch(() => ({ done: undefined }));
    await waits.done;
    for (const c of [this.#current, ...this.#recent.values()]) if (c !== undefined) clearTimeout(c.deadline);
    await this.#serial(async () => {
      if (this.#link.up) await this.#link.write({ visionReady: false, busy: false, resultValid: false });
    }).catch(() => undefined);
  }

  /** The next trigger to take a frame for; undefined once the station stops or `signal` aborts. */
  async next(signal: AbortSignal): Promise<TriggerTicket | undefined> {
    while (!signal.aborted && (this.#phase === 'ready' || this.#phase === 'starting')) {
      const c = this.#current;
      if (c !== undefined && c.state === 'TRIGGERED' && !c.taken) {
        c.taken = true;
        return { partId: c.partId, ref: c.ref };
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal.removeEventListener('abort', done);
          this.#consumer.wake = undefined;
          resolve();
        };
        this.#consumer.wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
    return undefined;
  }

  /** The source could not take a frame for this trigger: the PLC hears it at once (910), not at the deadline. */
  failed(ref: TriggerRef, error: LinegateError): void {
    void this.#serial(async () => {
      const c = this.#current;
      if (c?.ref.id === ref.id && c.state === 'TRIGGERED') await this.#failSafe(c, 'no-frame', error);
    }).catch((err: unknown) => this.#o.log.error({ err }, 'could not answer a part without a frame'));
  }

  /**
   * Delivers a result. In mode plc it answers the trigger the result carries,
   * and only while the PLC still asks about it; resolves once the PLC
   * acknowledged it, rejects with why not (no ack, the link went down, the
   * PLC moved on, or the verdict was refused).
   */
  async deliver(result: InspectionResult): Promise<void> {
    if (this.#o.mode === 'free-run') {
      await this.#serial(async () => {
        this.#freeRunCounter = (this.#freeRunCounter + 1) % 2_147_483_647;
        await this.#link.write(toWire(payloadOf(result, this.#freeRunCounter)));
      });
      return;
    }
    const ref = result.trigger;
    if (ref === undefined) throw this.#refuse(result.partId, 'no trigger of this PLC asked about it (in mode plc a PLC is answered only for the parts it triggered)');
    const pending = await this.#serial(async () => {
      const c = this.#current;
      if (c === undefined || c.ref.id !== ref.id) throw this.#refuse(result.partId, this.#whyGone(ref.id));
      if (c.state !== 'TRIGGERED' || (c.answer !== undefined && c.answer.source !== 'deadline')) {
        if (c.answer?.source === 'deadline') {
          this.#stats.refused++;
          throw new LinegateError('LG_ERR_PLC_DEADLINE', [c.partId, this.#o.deadlineMs]);
        }
        throw this.#refuse(result.partId, `it was answered already (${c.answer?.source ?? c.state})`);
      }
      await this.#answer(c, payloadOf(result, c.ref.counter), result.reasons[0]?.code === 'LG_ERR_FRAME_DROPPED' ? 'dropped' : 'inspection');
      return { done: c.ack?.done };
    });
    const outcome = await pending.done;
    if (outcome === 'acked') return;
    if (outcome === 'link-down' || outcome === 'closed') throw new LinegateError('LG_ERR_PLC_DOWN', [`the acknowledgement of part ${result.partId}`]);
    throw new LinegateError('LG_ERR_PLC_NO_ACK', [result.partId, this.#o.ackTimeoutMs]);
  }

  health(): Health {
    const data = {
      mode: this.#o.mode,
      link: this.#link.up ? 'up' : 'down',
      granted: this.#link.granted ?? null,
      cycles: { ...this.#stats },
      lastOutage: this.#lastOutage ?? null,
    };
    if (this.#outage !== undefined) {
      const s = Math.round((Date.now() - this.#outage.since) / 100) / 10;
      return { status: 'down', detail: `PLC link down for ${s} s; ${this.#outage.cyclesLost} cycle(s) lost so far`, data: { ...data, outageCyclesLost: this.#outage.cyclesLost } };
    }
    if (this.#liveness.plcLost) return { status: 'degraded', detail: "the PLC's heartbeat stopped: is the PLC in STOP?", data };
    return { status: 'ok', detail: `link up; ${this.#stats.acked} of ${this.#stats.taken} triggers acknowledged`, data };
  }

  // ---- what the PLC says -------------------------------------------------

  async #apply(batch: Batch): Promise<void> {
    if (batch.has('plcHeartbeat')) this.#liveness.plcBeat();
    if (!this.#reconciled) return; // the reconcile reads the levels itself
    for (const v of batch.get('resultAck') ?? []) {
      const high = Boolean(v);
      // Only a low -> high edge seen by this link is an acknowledgement; a level first seen after a reconnect is not.
      if (high && this.#ackHigh === false) await this.#acked();
      this.#ackHigh = high;
    }
    let rising = false;
    let level = this.#triggerHigh;
    for (const v of batch.get('trigger') ?? []) {
      const high = Boolean(v);
      if (high && level !== true) rising = true;
      if (!high && level === true) await this.#triggerFell();
      level = high;
    }
    this.#triggerHigh = level;
    if (level !== true) return;
    const partIds = batch.get('partId');
    const counters = batch.get('triggerCounter');
    // A new counter while Trigger stays high is a trigger too: a low pulse shorter than the sampling shows no edge.
    if (!rising && partIds === undefined && counters === undefined) return;
    // PartId and counter in the same batch as the edge are the PLC's for this trigger; otherwise read them.
    const ask =
      partIds !== undefined && counters !== undefined
        ? { partId: String(partIds.at(-1)), counter: Number(counters.at(-1)) }
        : await this.#link.read(['partId', 'triggerCounter']).then((v) => ({ partId: String(v.partId), counter: Number(v.triggerCounter) }));
    await this.#ask(ask);
  }

  /** The PLC asks about a part (in the queue). */
  async #ask(ask: Ask): Promise<void> {
    if (this.#standing !== undefined && sameAsk(this.#standing, ask)) return;
    this.#standing = ask;
    const cur = this.#current;
    if (cur !== undefined && sameAsk(askOf(cur), ask)) return this.#repeat(cur);
    if (cur !== undefined) this.#supersede(cur, `the PLC moved on to part ${ask.partId} (counter ${ask.counter})`);
    if (cur !== undefined && ask.counter > cur.ref.counter + 1) {
      const missed = ask.counter - cur.ref.counter - 1;
      this.#stats.missed += missed;
      this.#o.log.warn({ missed, from: cur.ref.counter, to: ask.counter }, 'PLC triggers were missed (their parts got no verdict from linegate; the PLC rejects them on its own time-out)');
      this.emit('missed-triggers', missed);
    }
    const c = newCycle(ask.partId, ask.counter);
    this.#remember(c);
    this.#current = c;
    this.#stats.taken++;
    if (this.#phase === 'stopping' || this.#phase === 'closed') {
      await this.#failSafe(c, 'shutdown', new LinegateError('LG_ERR_FRAME_SHUTDOWN'));
      return;
    }
    c.deadline = setTimeout(() => void this.#serial(() => this.#deadline(c)).catch((err: unknown) => this.#o.log.error({ err }, 'could not write the fail-safe reject')), this.#o.deadlineMs);
    this.#consumer.wake?.();
    // The source takes its frame first: the write below is off the part's critical path.
    await new Promise<void>((resolve) => setImmediate(resolve));
    // A ResultValid left high by a failed write must not let the PLC read the last part's verdict as this one's.
    await this.#link.write({ busy: true, resultValid: false });
  }

  /** The same trigger again (a retentive PLC after a restart, a retry): the answer again, never a second inspection. */
  async #repeat(c: Cycle): Promise<void> {
    this.#stats.repeated++;
    const log = { partId: c.partId, counter: c.ref.counter, state: c.state };
    if (c.state === 'ANSWERED') return; // ResultValid is still up with this part's answer: the PLC reads it as it is.
    if (c.answer === undefined) {
      this.#o.log.info(log, 'repeated trigger for the part being inspected: it is answered once, when its verdict comes');
      return;
    }
    this.#o.log.info({ ...log, source: c.answer.source }, 'repeated trigger: the answer is written again');
    await this.#answer(c, c.answer.payload, c.answer.source);
  }

  /**
   * The PLC dropped Trigger. In a sound handshake it does so only after ResultValid fell; with
   * ResultValid still up it has given up on the part (latched without acknowledging, or its own
   * time-out): ResultValid goes down now, or the PLC's next trigger would read this part's answer.
   */
  async #triggerFell(): Promise<void> {
    this.#standing = undefined;
    const c = this.#current;
    if (c?.state !== 'ANSWERED') return;
    this.#o.log.warn({ partId: c.partId, counter: c.ref.counter }, 'the PLC dropped Trigger without acknowledging the result: ResultValid dropped');
    this.#endAckWait(c, 'moved-on');
    await this.#link.write({ resultValid: false, busy: false }).catch((err: unknown) => this.#o.log.warn({ err: messageOf(err) }, 'could not drop ResultValid'));
  }

  /** The PLC's Trigger is up for this cycle's part right now: only then may its answer be written. */
  #asking(c: Cycle): boolean {
    return this.#triggerHigh === true && this.#standing !== undefined && sameAsk(this.#standing, askOf(c));
  }

  /** The PLC asks about another part: the one before is never answered (again). */
  #supersede(c: Cycle, why: string): void {
    if (c.state === 'TRIGGERED') {
      clearTimeout(c.deadline);
      c.abandonedBecause = why;
      moveCycle(c, 'ABANDONED');
      this.#stats.abandoned++;
      this.#o.log.warn({ partId: c.partId, counter: c.ref.counter }, `a part got no verdict: ${why}`);
    } else if (c.state === 'ANSWERED') {
      this.#endAckWait(c, 'moved-on');
    }
  }

  async #acked(): Promise<void> {
    const c = this.#current;
    if (c === undefined || c.state !== 'ANSWERED' || c.ack === undefined) {
      this.#o.log.debug({ partId: c?.partId, state: c?.state }, 'ResultAck with no answer waiting for it: ignored');
      return;
    }
    this.#endAckWait(c, 'acked');
    await this.#link.write({ resultValid: false, busy: false }).catch((err: unknown) => this.#o.log.warn({ err: messageOf(err) }, 'could not drop ResultValid after the ack'));
  }

  // ---- answers --------------------------------------------------------------

  /**
   * Writes the payload, then ResultValid, and starts waiting for ResultAck (in the queue). Only
   * while the PLC asks about the part: an answer written while Trigger is low belongs to no part,
   * or is read as the next one's. Otherwise the answer is kept: if the PLC asks again (after a
   * reconnect, a retentive restart) this is what it gets.
   */
  async #answer(c: Cycle, payload: Payload, source: AnswerSource): Promise<void> {
    clearTimeout(c.deadline);
    c.answer = { payload, source };
    if (!this.#link.up) {
      this.#lostToOutage();
      throw new LinegateError('LG_ERR_PLC_DOWN', [`the verdict for part ${c.partId}`]);
    }
    if (!this.#asking(c)) throw this.#refuse(c.partId, 'the PLC does not ask about it now (its Trigger is down): the verdict is written if it asks again');
    moveCycle(c, 'ANSWERED');
    const ack = this.#armAck(c);
    try {
      await this.#link.write(toWire(payload));
      await this.#link.write({ resultValid: true });
    } catch (e) {
      this.#endAckWait(c, 'link-down');
      throw e;
    }
    this.#lastWritten = payload;
    if (source === 'inspection') this.#stats.answered++;
    if (c.ack === ack) ack.timer = setTimeout(() => this.#ackTimedOut(c), this.#o.ackTimeoutMs);
  }

  /** A new wait for ResultAck; its time-out starts once ResultValid is up. */
  #armAck(c: Cycle): NonNullable<Cycle['ack']> {
    let settle!: (o: AckOutcome) => void;
    const done = new Promise<AckOutcome>((resolve) => (settle = resolve));
    c.ack = { done, settle, timer: undefined };
    return c.ack;
  }

  #ackTimedOut(c: Cycle): void {
    if (c.state !== 'ANSWERED') return;
    this.#endAckWait(c, 'no-ack');
    this.#o.log.warn({ partId: c.partId, counter: c.ref.counter, ackTimeoutMs: this.#o.ackTimeoutMs }, 'the PLC did not acknowledge the result: ResultValid dropped');
    void this.#serial(async () => {
      if (this.#current === c && this.#link.up) await this.#link.write({ resultValid: false, busy: false });
    }).catch((err: unknown) => this.#o.log.warn({ err: messageOf(err) }, 'could not drop ResultValid'));
  }

  /** Ends the wait for ResultAck of the last answer, once. */
  #endAckWait(c: Cycle, outcome: AckOutcome): void {
    const ack = c.ack;
    if (ack === undefined || !canMove(c, outcome === 'acked' ? 'ACKED' : 'UNACKED') || c.state !== 'ANSWERED') return;
    clearTimeout(ack.timer);
    c.ack = undefined;
    c.ackOutcome = outcome;
    moveCycle(c, outcome === 'acked' ? 'ACKED' : 'UNACKED');
    if (outcome === 'acked') this.#stats.acked++;
    else this.#stats.unacked++;
    if (outcome === 'link-down') this.#lostToOutage();
    ack.settle(outcome);
  }

  /** The deadline passed with no verdict (decided in the queue, so a verdict queued first wins). */
  async #deadline(c: Cycle): Promise<void> {
    if (this.#current !== c || c.state !== 'TRIGGERED') return;
    const err = new LinegateError('LG_ERR_PLC_DEADLINE', [c.partId, this.#o.deadlineMs]);
    this.#o.log.error({ partId: c.partId, counter: c.ref.counter }, err.message);
    await this.#failSafe(c, 'deadline', err);
  }

  /** "Not decidable" with the error's reject code, written by the link itself. */
  async #failSafe(c: Cycle, source: AnswerSource, err: LinegateError): Promise<void> {
    if (source === 'deadline') this.#stats.failSafe++;
    else if (source === 'no-frame') this.#stats.noFrame++;
    else if (source === 'shutdown') this.#stats.shutdown++;
    const payload: Payload = { partId: c.partId, verdict: VERDICT_CODE.error, rejectCode: rejectCodeOf(err), score: 0, counter: c.ref.counter, modelVersion: '' };
    await this.#answer(c, payload, source).catch((e: unknown) => this.#o.log.warn({ err: messageOf(e), partId: c.partId }, `could not write "not decidable" (${source})`));
  }

  // ---- the link's life --------------------------------------------------------

  #linkDown(): void {
    this.#outage ??= { since: Date.now(), cyclesLost: 0 };
    this.#reconciled = false;
    this.#triggerHigh = undefined;
    this.#ackHigh = undefined;
    this.#standing = undefined;
    const c = this.#current;
    if (c?.state === 'ANSWERED') this.#endAckWait(c, 'link-down');
  }

  /**
   * After a reconnect, before anything else: did the PLC keep its data (a
   * network blip, a retentive restart) or lose it (a fresh restart)? It lost
   * it when VisionReady or the echo of our last answer are no longer what we
   * wrote. A PLC that forgot is never answered for what it asked before; one
   * that kept it gets the answer again if it asks again. ResultValid is
   * dropped in any case: a level left high would be read as the next part's.
   */
  async #reconcile(): Promise<void> {
    const v = await this.#link.read(['trigger', 'partId', 'triggerCounter', 'resultAck', 'resultValid', 'visionReady', 'resultPartId', 'resultCounter']);
    const last = this.#lastWritten;
    const forgot = (this.#readyWritten && v.visionReady === false) || (last !== undefined && (String(v.resultPartId) !== last.partId || Number(v.resultCounter) !== last.counter));
    const c = this.#current;
    if (forgot && c !== undefined) {
      if (c.state === 'TRIGGERED') {
        this.#supersede(c, 'the PLC restarted and no longer knows it');
        this.#lostToOutage();
      }
      this.#current = undefined;
      this.#o.log.warn({ partId: c.partId, counter: c.ref.counter }, 'the PLC restarted and lost its data: nothing it asked before the restart is answered');
    }
    if (forgot) this.#lastWritten = undefined;
    this.#ackHigh = Boolean(v.resultAck);
    this.#triggerHigh = Boolean(v.trigger);
    this.#reconciled = true;
    const asks = v.trigger === true ? { partId: String(v.partId), counter: Number(v.triggerCounter) } : undefined;
    if (!(await this.#resumeAckWait(v, asks))) await this.#link.write({ resultValid: false, busy: this.#current?.state === 'TRIGGERED' });
    await this.#writeReady();
    if (this.#outage !== undefined) {
      const now = Date.now();
      this.#lastOutage = { from: new Date(this.#outage.since).toISOString(), to: new Date(now).toISOString(), ms: now - this.#outage.since, cyclesLost: this.#outage.cyclesLost };
      this.#stats.outages++;
      this.#outage = undefined;
      this.#o.log.warn({ outage: this.#lastOutage }, 'PLC link back');
    }
    if (asks !== undefined) await this.#ask(asks);
  }

  /**
   * A blip while the PLC was reading our answer: it still asks about the part and our answer is
   * still up (ResultValid and the echo as written). Toggling ResultValid would answer it twice;
   * the wait for its ack goes on instead, or ends now if its ResultAck is already up.
   */
  async #resumeAckWait(v: Partial<Record<string, unknown>>, asks: Ask | undefined): Promise<boolean> {
    const c = this.#current;
    const a = c?.answer?.payload;
    if (c === undefined || a === undefined || asks === undefined || c.state !== 'UNACKED' || c.ackOutcome !== 'link-down') return false;
    if (!sameAsk(askOf(c), asks) || v.resultValid !== true || String(v.resultPartId) !== a.partId || Number(v.resultCounter) !== a.counter) return false;
    this.#standing = asks;
    moveCycle(c, 'ANSWERED');
    const ack = this.#armAck(c);
    if (v.resultAck === true) {
      this.#endAckWait(c, 'acked');
      await this.#link.write({ resultValid: false, busy: false });
    } else {
      ack.timer = setTimeout(() => this.#ackTimedOut(c), this.#o.ackTimeoutMs);
    }
    this.#o.log.info({ partId: c.partId, counter: c.ref.counter }, 'the PLC is back and still reading the answer: no second answer');
    return true;
  }

  async #writeReady(): Promise<void> {
    const ready = this.#phase === 'ready';
    await this.#link.write({ visionReady: ready, visionHeartbeat: this.#liveness.beat });
    this.#readyWritten = ready;
  }

  #lostToOutage(): void {
    if (this.#outage !== undefined) this.#outage.cyclesLost++;
  }

  #remember(c: Cycle): void {
    this.#recent.set(c.ref.id, c);
    if (this.#recent.size > RECENT) this.#recent.delete(this.#recent.keys().next().value!);
  }

  #whyGone(id: string): string {
    const c = this.#recent.get(id);
    if (c === undefined) return 'linegate does not know its trigger';
    return c.abandonedBecause ?? `its trigger is no longer the one the PLC asks about (state ${c.state})`;
  }

  #refuse(partId: string, why: string): LinegateError {
    this.#stats.refused++;
    return new LinegateError('LG_ERR_PLC_NOT_PENDING', [partId, why]);
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

const toWire = (p: Payload) => ({ resultPartId: p.partId, verdict: p.verdict, rejectCode: p.rejectCode, score: p.score, resultCounter: p.counter, modelVersion: p.modelVersion });
