import type { Batch } from './link.js';

/** The levels last seen; undefined when not known (after a link loss): a level first seen then is no edge. */
export interface Levels {
  readonly trigger: boolean | undefined;
  readonly ack: boolean | undefined;
}

export interface Ask {
  readonly partId: string;
  readonly counter: number;
}

/** What one notification batch says, in the order it must be acted on. */
export interface BatchReading {
  /** ResultAck low -> high edges seen by this link. */
  readonly acks: number;
  /** Trigger high -> low edges. */
  readonly falls: number;
  readonly levels: Levels;
  /**
   * Trigger is up and asks: a rising edge, or a new counter or part id while it stays up (a low
   * pulse shorter than the sampling shows no edge). `ids` when the batch carries both PartId and
   * counter: then they are the PLC's for this trigger; otherwise they must be read.
   */
  readonly ask: { readonly ids: Ask | undefined } | undefined;
}

/** Reads a batch against the levels before it. Pure: the handshake acts on the result. */
export function readBatch(batch: Batch, before: Levels): BatchReading {
  let acks = 0;
  let ack = before.ack;
  for (const v of batch.get('resultAck') ?? []) {
    const high = Boolean(v);
    if (high && ack === false) acks++;
    ack = high;
  }
  let falls = 0;
  let rising = false;
  let trigger = before.trigger;
  for (const v of batch.get('trigger') ?? []) {
    const high = Boolean(v);
    if (high && trigger !== true) rising = true;
    if (!high && trigger === true) falls++;
    trigger = high;
  }
  const partIds = batch.get('partId');
  const counters = batch.get('triggerCounter');
  const asks = trigger === true && (rising || partIds !== undefined || counters !== undefined);
  const ids = partIds !== undefined && counters !== undefined ? { partId: String(partIds.at(-1)), counter: Number(counters.at(-1)) } : undefined;
  return { acks, falls, levels: { trigger, ack }, ask: asks ? { ids } : undefined };
}
