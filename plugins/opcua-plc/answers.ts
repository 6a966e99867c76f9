import type { Logger } from '../../runtime/contract.js';
import { messageOf, rejectCodeOf } from '../../runtime/errors.js';
import { defectScore, type InspectionResult } from '../../runtime/result.js';
import { moveCycle, type AckOutcome, type AnswerSource, type Cycle, type Payload } from './cycle.js';
import type { PlcLink } from './link.js';
import { VERDICT_CODE } from './tags.js';

export interface AnswerStats {
  answered: number;
  acked: number;
  unacked: number;
}

export interface AnswerOptions {
  readonly ackTimeoutMs: number;
  readonly log: Logger;
  readonly stats: AnswerStats;
  /** An answer whose acknowledgement the link took with it: counted against the outage. */
  readonly onLinkLost: () => void;
  /** The PLC did not acknowledge in time: ResultValid must go down (through the caller's write queue). */
  readonly onAckTimeout: (c: Cycle) => void;
}

/**
 * Writing an answer and following its acknowledgement: the payload in one
 * Write, ResultValid in a second (a multi-node write is not a transaction, so
 * the PLC must never see ResultValid before the payload), then one wait for a
 * ResultAck edge, ended once: acked, timed out, the PLC moved on, or the link
 * went down. The caller decides whether an answer may be written at all.
 */
export class AnswerWriter {
  readonly #link: PlcLink;
  readonly #o: AnswerOptions;
  /** What the PLC holds from us: to tell a PLC that kept its data across a restart from one that lost it. */
  lastWritten: Payload | undefined;

  constructor(link: PlcLink, options: AnswerOptions) {
    this.#link = link;
    this.#o = options;
  }

  /** Writes the answer (the cycle moves to ANSWERED) and starts the wait for its ack; in the caller's write queue. */
  async write(c: Cycle, payload: Payload, source: AnswerSource): Promise<void> {
    c.answer = { payload, source };
    moveCycle(c, 'ANSWERED');
    const ack = this.#arm(c);
    try {
      await this.#link.write(toWire(payload));
      await this.#link.write({ resultValid: true });
    } catch (e) {
      this.end(c, 'link-down');
      throw e;
    }
    this.lastWritten = payload;
    if (source === 'inspection') this.#o.stats.answered++;
    if (c.ack === ack) this.#startTimer(c, ack);
  }

  /**
   * The PLC is back and still reading the answer that is up: the wait goes on without a second
   * ResultValid edge, or ends now if its ResultAck is already up.
   */
  async resume(c: Cycle, ackUp: boolean): Promise<void> {
    moveCycle(c, 'ANSWERED');
    const ack = this.#arm(c);
    if (!ackUp) return this.#startTimer(c, ack);
    await this.acked(c);
  }

  /** A ResultAck edge for this cycle's answer: the wait ends and ResultValid goes down. */
  async acked(c: Cycle): Promise<void> {
    this.end(c, 'acked');
    await this.#link.write({ resultValid: false, busy: false }).catch((err: unknown) => this.#o.log.warn({ err: messageOf(err) }, 'could not drop ResultValid after the ack'));
  }

  /** Ends the wait for ResultAck of the cycle's last answer, once. */
  end(c: Cycle, outcome: AckOutcome): void {
    const ack = c.ack;
    if (ack === undefined || c.state !== 'ANSWERED') return;
    clearTimeout(ack.timer);
    c.ack = undefined;
    c.ackOutcome = outcome;
    moveCycle(c, outcome === 'acked' ? 'ACKED' : 'UNACKED');
    if (outcome === 'acked') this.#o.stats.acked++;
    else this.#o.stats.unacked++;
    if (outcome === 'link-down') this.#o.onLinkLost();
    ack.settle(outcome);
  }

  #arm(c: Cycle): NonNullable<Cycle['ack']> {
    let settle!: (o: AckOutcome) => void;
    const done = new Promise<AckOutcome>((resolve) => (settle = resolve));
    c.ack = { done, settle, timer: undefined };
    return c.ack;
  }

  /** The time-out runs from ResultValid up, not from the start of the writes. */
  #startTimer(c: Cycle, ack: NonNullable<Cycle['ack']>): void {
    ack.timer = setTimeout(() => {
      if (c.ack !== ack) return;
      this.end(c, 'no-ack');
      this.#o.log.warn({ partId: c.partId, counter: c.ref.counter, ackTimeoutMs: this.#o.ackTimeoutMs }, 'the PLC did not acknowledge the result: ResultValid dropped');
      this.#o.onAckTimeout(c);
    }, this.#o.ackTimeoutMs);
  }
}

/** The verdict as the PLC reads it, for the trigger counter it answers. */
export function payloadOf(r: InspectionResult, counter: number): Payload {
  return {
    partId: r.partId,
    verdict: VERDICT_CODE[r.verdict],
    rejectCode: r.rejectCode,
    score: defectScore(r),
    counter,
    modelVersion: r.model === null ? '' : `${r.model.name}@${r.model.version}`,
  };
}

/** "Not decidable" with the reject code of why linegate could not judge the part. */
export function notDecidable(c: Cycle, err: unknown): Payload {
  return { partId: c.partId, verdict: VERDICT_CODE.error, rejectCode: rejectCodeOf(err), score: 0, counter: c.ref.counter, modelVersion: '' };
}

export const toWire = (p: Payload) => ({ resultPartId: p.partId, verdict: p.verdict, rejectCode: p.rejectCode, score: p.score, resultCounter: p.counter, modelVersion: p.modelVersion });
