import { EventEmitter } from 'node:events';
import type { Health, Logger, TriggerRef } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import type { InspectionResult } from '../../runtime/result.js';
import { AnswerWriter, notDecidable, payloadOf, toWire } from './answers.js';
import { askOf, moveCycle, newCycle, sameAsk, type AnswerSource, type Cycle, type Payload } from './cycle.js';
import { readBatch, type Ask } from './edges.js';
import { RETRY_MS, type Batch, type PlcLink } from './link.js';
import { Liveness } from './liveness.js';
import { OutageLog } from './outage.js';
import { RECONNECT_TAGS, onReconnect, plcForgot, stillReading } from './reconnect.js';

export interface HandshakeOptions {
  /** The PLC sink's step, for the errors it raises. */
  readonly step: string;
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

type Phase = 'starting' | 'ready' | 'stopping' | 'closed';

/** Cycles kept after they are replaced, so a late verdict's refusal can say why. */
const RECENT = 32;

/**
 * linegate's side of the PLC handshake:
 *   PLC: PartId, TriggerCounter, Trigger=1 -> linegate: Busy, inspect, the
 *   payload (one Write), ResultValid=1 (a second Write) -> PLC: checks the
 *   echo, latches, ResultAck=1 -> linegate: ResultValid=0.
 * Every observation of the PLC (notification batches, the reconcile after a
 * reconnect) and every write goes through one serial queue, so each decision
 * (take a trigger, answer, fail-safe, ack) is made on the state as it is when
 * its turn comes, never on what it was when it was asked for. Waiting for
 * ResultAck is not in the queue: a PLC that never acks cannot delay the next
 * trigger. Each cycle's identity is the TriggerRef the frame and the result
 * carry, and an answer is written only while the PLC asks about that part.
 */
export class Handshake extends EventEmitter<HandshakeEvents> {
  readonly #link: PlcLink;
  readonly #o: HandshakeOptions;
  readonly #liveness: Liveness;
  readonly #answers: AnswerWriter;
  readonly #outages = new OutageLog();
  #phase: Phase = 'starting';
  #current: Cycle | undefined;
  readonly #recent = new Map<string, Cycle>();
  /** The ask standing while Trigger is high: a second sight of it (the reconcile read and the notification) is not a new ask. */
  #standing: Ask | undefined;
  /** Last levels seen; undefined while the link is down (a level seen first after a reconnect is no edge). */
  #triggerHigh: boolean | undefined = false;
  #ackHigh: boolean | undefined = false;
  /**
   * False from a link loss until the reconcile after it: what the PLC asks meanwhile waits for
   * the reconcile to say whether the PLC still knows what it asked before (an ask seen first
   * would be taken for a repeat of a part a freshly restarted PLC no longer means).
   */
  #reconciled = true;
  #readyWritten = false;
  #consumer: { attached: boolean; wake: (() => void) | undefined } = { attached: false, wake: undefined };
  #freeRunCounter = 0;
  #tail: Promise<unknown> = Promise.resolve();
  readonly #stats = { taken: 0, answered: 0, acked: 0, unacked: 0, abandoned: 0, repeated: 0, failSafe: 0, noFrame: 0, shutdown: 0, missed: 0, refused: 0 };

  constructor(link: PlcLink, options: HandshakeOptions) {
    super();
    this.#link = link;
    this.#o = options;
    this.#liveness = new Liveness(link, { ...options, mayWrite: () => this.#reconciled });
    this.#answers = new AnswerWriter(link, {
      ackTimeoutMs: options.ackTimeoutMs,
      log: options.log,
      stats: this.#stats,
      onLinkLost: () => this.#outages.lost(),
      onAckTimeout: (c) =>
        void this.#serial(async () => {
          if (this.#current === c && this.#link.up) await this.#link.write({ resultValid: false, busy: false });
        }).catch((err: unknown) => this.#o.log.warn({ err: messageOf(err) }, 'could not drop ResultValid')),
    });
    link.on('batch', (batch) => void this.#serial(() => this.#apply(batch)).catch((err: unknown) => this.#o.log.error({ err }, 'could not take what the PLC said')));
    link.on('down', () => this.#linkDown());
    link.on('up', () => this.#reconcileSoon(0));
  }

  /**
   * The trigger source registers (a PLC in mode plc with none would answer every part "not
   * decidable"); one at a time, since each trigger is one frame. Returns what unregisters it.
   */
  attach(step: string): () => void {
    if (this.#consumer.attached) throw new LinegateError('LG_ERR_STATION_DEPENDENCY', [step, 'core/opcua-trigger@1', TRIGGERS, 'plc', "another source already takes this PLC's triggers"]);
    this.#consumer.attached = true;
    return () => {
      this.#consumer.attached = false;
      this.#consumer.wake?.();
    };
  }

  /** The whole station is up: VisionReady = 1, the heartbeat runs. */
  async start(): Promise<void> {
    if (this.#o.mode === 'plc' && !this.#consumer.attached) throw new LinegateError('LG_ERR_PLC_NO_TRIGGER_SOURCE', [this.#o.step, this.#o.step], { step: this.#o.step });
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
    const last = await this.#serial(async () => {
      const c = this.#current;
      if (c !== undefined && c.state === 'TRIGGERED' && this.#link.up) await this.#failSafe(c, 'shutdown', new LinegateError('LG_ERR_FRAME_SHUTDOWN'));
      return { acked: this.#current?.ack?.done };
    }).catch(() => ({ acked: undefined }));
    await last.acked;
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
      if (c.state !== 'TRIGGERED' && c.answer?.source === 'deadline') {
        this.#stats.refused++;
        throw new LinegateError('LG_ERR_PLC_DEADLINE', [c.partId, this.#o.deadlineMs]);
      }
      // A fail-safe the link could not write yet (it was down, or the PLC not asking) gives way to the verdict.
      if (c.state !== 'TRIGGERED' || (c.answer !== undefined && c.answer.source !== 'deadline')) {
        throw this.#refuse(result.partId, `it was answered already (${c.answer?.source ?? c.state})`);
      }
      await this.#answer(c, payloadOf(result, c.ref.counter), result.reasons[0]?.code === 'LG_ERR_FRAME_DROPPED' ? 'dropped' : 'inspection');
      return { acked: c.ack?.done };
    });
    const outcome = await pending.acked;
    if (outcome === 'acked') return;
    if (outcome === 'link-down' || outcome === 'closed') throw new LinegateError('LG_ERR_PLC_DOWN', [`the acknowledgement of part ${result.partId}`]);
    throw new LinegateError('LG_ERR_PLC_NO_ACK', [result.partId, this.#o.ackTimeoutMs]);
  }

  health(): Health {
    const outage = this.#outages.current;
    const data = {
      mode: this.#o.mode,
      link: this.#link.up ? 'up' : 'down',
      granted: this.#link.granted ?? null,
      cycles: { ...this.#stats, outages: this.#outages.count },
      lastOutage: this.#outages.last ?? null,
    };
    if (outage !== undefined) {
      const s = Math.round((Date.now() - outage.since) / 100) / 10;
      return { status: 'down', detail: `PLC link down for ${s} s; ${outage.cyclesLost} cycle(s) lost so far`, data: { ...data, outageCyclesLost: outage.cyclesLost } };
    }
    if (this.#liveness.plcLost) return { status: 'degraded', detail: "the PLC's heartbeat stopped: is the PLC in STOP?", data };
    return { status: 'ok', detail: `link up; ${this.#stats.acked} of ${this.#stats.taken} triggers acknowledged`, data };
  }

  // ---- what the PLC says -------------------------------------------------

  async #apply(batch: Batch): Promise<void> {
    if (batch.has('plcHeartbeat')) this.#liveness.plcBeat();
    // In free-run the PLC asks nothing; before the reconcile after a reconnect, the reconcile reads the levels itself.
    if (this.#o.mode !== 'plc' || !this.#reconciled) return;
    const r = readBatch(batch, { trigger: this.#triggerHigh, ack: this.#ackHigh });
    for (let i = 0; i < r.acks; i++) await this.#acked();
    for (let i = 0; i < r.falls; i++) await this.#triggerFell();
    this.#triggerHigh = r.levels.trigger;
    this.#ackHigh = r.levels.ack;
    if (r.ask === undefined) return;
    let ask = r.ask.ids;
    if (ask === undefined) {
      const v = await this.#link.read(['partId', 'triggerCounter']);
      ask = { partId: String(v.partId), counter: Number(v.triggerCounter) };
    }
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
    this.#answers.end(c, 'moved-on');
    await this.#link.write({ resultValid: false, busy: false }).catch((err: unknown) => this.#o.log.warn({ err: messageOf(err) }, 'could not drop ResultValid'));
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
      this.#answers.end(c, 'moved-on');
    }
  }

  async #acked(): Promise<void> {
    const c = this.#current;
    if (c === undefined || c.state !== 'ANSWERED' || c.ack === undefined) {
      this.#o.log.debug({ partId: c?.partId, state: c?.state }, 'ResultAck with no answer waiting for it: ignored');
      return;
    }
    await this.#answers.acked(c);
  }

  // ---- answers --------------------------------------------------------------

  /**
   * Writes an answer, in the queue, only while the PLC asks about the part: an answer written
   * while Trigger is low belongs to no part, or is read as the next one's. Otherwise the answer
   * is kept: if the PLC asks again (after a reconnect, a retentive restart) this is what it gets.
   */
  async #answer(c: Cycle, payload: Payload, source: AnswerSource): Promise<void> {
    clearTimeout(c.deadline);
    c.answer = { payload, source };
    if (!this.#link.up) {
      this.#outages.lost();
      throw new LinegateError('LG_ERR_PLC_DOWN', [`the verdict for part ${c.partId}`]);
    }
    const asking = this.#triggerHigh === true && this.#standing !== undefined && sameAsk(this.#standing, askOf(c));
    if (!asking) throw this.#refuse(c.partId, 'the PLC does not ask about it now (its Trigger is down): the verdict is written if it asks again');
    await this.#answers.write(c, payload, source);
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
    await this.#answer(c, notDecidable(c, err), source).catch((e: unknown) => this.#o.log.warn({ err: messageOf(e), partId: c.partId }, `could not write "not decidable" (${source})`));
  }

  // ---- the link's life --------------------------------------------------------

  #linkDown(): void {
    this.#outages.begin();
    this.#reconciled = false;
    this.#triggerHigh = undefined;
    this.#ackHigh = undefined;
    this.#standing = undefined;
    const c = this.#current;
    if (c?.state === 'ANSWERED') this.#answers.end(c, 'link-down');
  }

  /**
   * After a reconnect, before anything else: did the PLC keep its data (a
   * network blip, a retentive restart) or lose it (a fresh restart)? A PLC
   * that forgot is never answered for what it asked before; one that kept it
   * gets the answer again if it asks again. ResultValid goes down unless the
   * PLC is still reading the answer it shows: a level left high would be read
   * as the next part's.
   */
  async #reconcile(): Promise<void> {
    const v = onReconnect(await this.#link.read(RECONNECT_TAGS));
    const c = this.#current;
    if (plcForgot(v, this.#answers.lastWritten, this.#readyWritten)) {
      this.#answers.lastWritten = undefined;
      if (c !== undefined) {
        if (c.state === 'TRIGGERED') {
          this.#supersede(c, 'the PLC restarted and no longer knows it');
          this.#outages.lost();
        }
        this.#current = undefined;
        this.#o.log.warn({ partId: c.partId, counter: c.ref.counter }, 'the PLC restarted and lost its data: nothing it asked before the restart is answered');
      }
    }
    this.#ackHigh = v.resultAck;
    this.#triggerHigh = v.trigger;
    this.#reconciled = true;
    const asks = v.trigger ? { partId: v.partId, counter: v.triggerCounter } : undefined;
    const reading = this.#current;
    if (stillReading(reading, v)) {
      this.#standing = asks;
      this.#o.log.info({ partId: reading.partId, counter: reading.ref.counter }, 'the PLC is back and still reading the answer: no second answer');
      await this.#answers.resume(reading, v.resultAck);
    } else {
      await this.#link.write({ resultValid: false, busy: this.#current?.state === 'TRIGGERED' });
    }
    await this.#writeReady();
    const outage = this.#outages.end();
    if (outage !== undefined) this.#o.log.warn({ outage }, 'PLC link back');
    if (asks !== undefined && this.#o.mode === 'plc') await this.#ask(asks);
  }

  /** The reconcile, again after a pause while it fails and the link stays up: until it succeeds nothing is answered and no heartbeat goes out. */
  #reconcileSoon(delayMs: number): void {
    const attempt = (): void =>
      void this.#serial(() => this.#reconcile()).catch((err: unknown) => {
        this.#o.log.error({ err, retryInMs: RETRY_MS }, 'could not reconcile with the PLC after the reconnect');
        if (this.#link.up && !this.#reconciled && this.#phase !== 'closed') this.#reconcileSoon(RETRY_MS);
      });
    if (delayMs === 0) attempt();
    else setTimeout(attempt, delayMs).unref();
  }

  async #writeReady(): Promise<void> {
    const ready = this.#phase === 'ready';
    await this.#link.write({ visionReady: ready, visionHeartbeat: this.#liveness.beat });
    this.#readyWritten = ready;
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
