import { randomUUID } from 'node:crypto';
import type { TriggerRef } from '../../runtime/contract.js';

/**
 * One PLC cycle, from the trigger linegate saw to the PLC's acknowledgement,
 * as an explicit state machine (GStreamer's states, BullMQ's job states): one
 * function moves it, and a move the table does not allow is a bug, thrown.
 *
 *   TRIGGERED --answer--> ANSWERED --ack--> ACKED
 *       |                    |  \--ack time-out, link lost, PLC moved on--> UNACKED
 *       |                    |
 *       +--PLC moved on, or restarted and forgot it--> ABANDONED
 *
 * ACKED and UNACKED go back to ANSWERED when the PLC raises the same trigger
 * again (a retentive PLC after a restart): the answer is written again, the
 * part is not inspected twice. ABANDONED is final: nothing more is written
 * for that trigger, so its late verdict can never land on another part.
 */
export type CycleState = 'TRIGGERED' | 'ANSWERED' | 'ACKED' | 'UNACKED' | 'ABANDONED';

const ALLOWED: Readonly<Record<CycleState, readonly CycleState[]>> = {
  TRIGGERED: ['ANSWERED', 'ABANDONED'],
  ANSWERED: ['ACKED', 'UNACKED'],
  ACKED: ['ANSWERED'],
  UNACKED: ['ANSWERED'],
  ABANDONED: [],
};

/** What is written to the PLC for a cycle (verdict codes: OPC 40001-101 ResultEvaluationEnum). */
export interface Payload {
  readonly partId: string;
  readonly verdict: number;
  readonly rejectCode: number;
  readonly score: number;
  readonly counter: number;
  readonly modelVersion: string;
}

/** Where a cycle's answer came from: the inspection, or linegate's own fail-safe. */
export type AnswerSource = 'inspection' | 'deadline' | 'no-frame' | 'shutdown' | 'dropped';

/** How the wait for ResultAck ended. */
export type AckOutcome = 'acked' | 'no-ack' | 'moved-on' | 'link-down' | 'closed';

export interface Cycle {
  readonly ref: TriggerRef;
  readonly partId: string;
  readonly state: CycleState;
  /** Handed to the trigger source as a frame. */
  taken: boolean;
  /** The answer written, or decided while the link was down and not yet written. */
  answer: { readonly payload: Payload; readonly source: AnswerSource } | undefined;
  /** Why it was abandoned, for the refusal of its late verdict. */
  abandonedBecause: string | undefined;
  deadline: NodeJS.Timeout | undefined;
  /** How the last wait for ResultAck ended. */
  ackOutcome: AckOutcome | undefined;
  /** The wait for ResultAck of the answer written last; settled once. */
  ack: { readonly done: Promise<AckOutcome>; settle(outcome: AckOutcome): void; timer: NodeJS.Timeout | undefined } | undefined;
}

/** A cycle the PLC just asked about. */
export function newCycle(partId: string, counter: number): Cycle {
  return {
    ref: { id: randomUUID(), counter, raisedAt: new Date() },
    partId,
    state: 'TRIGGERED',
    taken: false,
    answer: undefined,
    abandonedBecause: undefined,
    deadline: undefined,
    ackOutcome: undefined,
    ack: undefined,
  };
}

/** The one function that changes a cycle's state; a move the table does not allow throws (a bug, never a PLC fault). */
export function moveCycle(cycle: Cycle, to: CycleState): void {
  if (!ALLOWED[cycle.state].includes(to)) throw new Error(`PLC cycle ${cycle.partId}/${cycle.ref.counter}: ${cycle.state} -> ${to} is not a transition`);
  (cycle as { state: CycleState }).state = to;
}

export const canMove = (cycle: Cycle, to: CycleState): boolean => ALLOWED[cycle.state].includes(to);

/** The same trigger: the PLC's part id and counter. */
export const sameAsk = (a: { readonly partId: string; readonly counter: number }, b: { readonly partId: string; readonly counter: number }): boolean =>
  a.partId === b.partId && a.counter === b.counter;

export const askOf = (c: Cycle): { partId: string; counter: number } => ({ partId: c.partId, counter: c.ref.counter });
