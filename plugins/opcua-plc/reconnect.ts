import { askOf, sameAsk, type Cycle, type Payload } from './cycle.js';

/** What linegate reads of the PLC right after a reconnect, before it writes anything. */
export interface PlcOnReconnect {
  readonly trigger: boolean;
  readonly partId: string;
  readonly triggerCounter: number;
  readonly resultAck: boolean;
  readonly resultValid: boolean;
  readonly visionReady: boolean;
  readonly resultPartId: string;
  readonly resultCounter: number;
}

export const RECONNECT_TAGS = ['trigger', 'partId', 'triggerCounter', 'resultAck', 'resultValid', 'visionReady', 'resultPartId', 'resultCounter'] as const;

export function onReconnect(v: Partial<Record<(typeof RECONNECT_TAGS)[number], unknown>>): PlcOnReconnect {
  return {
    trigger: v.trigger === true,
    partId: String(v.partId ?? ''),
    triggerCounter: Number(v.triggerCounter ?? -1),
    resultAck: v.resultAck === true,
    resultValid: v.resultValid === true,
    visionReady: v.visionReady === true,
    resultPartId: String(v.resultPartId ?? ''),
    resultCounter: Number(v.resultCounter ?? -1),
  };
}

/**
 * Did the PLC lose what linegate wrote (a fresh restart), or keep it (a
 * network blip, a retentive data block)? Lost when VisionReady, written true,
 * reads false, or the echo of the last answer is not what was written.
 */
export function plcForgot(v: PlcOnReconnect, lastWritten: Payload | undefined, readyWritten: boolean): boolean {
  if (readyWritten && !v.visionReady) return true;
  return lastWritten !== undefined && (v.resultPartId !== lastWritten.partId || v.resultCounter !== lastWritten.counter);
}

/**
 * The PLC was reading our answer when the link went: it still asks about that
 * part, and the answer is still up as written. Its ack wait goes on; a second
 * ResultValid edge would answer the part twice.
 */
export function stillReading(c: Cycle | undefined, v: PlcOnReconnect): c is Cycle {
  const a = c?.answer?.payload;
  if (c === undefined || a === undefined || !v.trigger || c.state !== 'UNACKED' || c.ackOutcome !== 'link-down') return false;
  return sameAsk(askOf(c), { partId: v.partId, counter: v.triggerCounter }) && v.resultValid && v.resultPartId === a.partId && v.resultCounter === a.counter;
}
