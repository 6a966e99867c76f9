import { LinegateError } from '../errors.js';

/**
 * The station's life as one state machine, GStreamer-like: opening the steps (NULL -> READY) is
 * apart from streaming (PLAYING), and going down walks back through a drain. Every question about
 * the station ("may it start?", "is it healthy?", "may frames flow?") is answered from this state.
 *
 *   NULL -> STARTING -> READY -> PLAYING -> DRAINING -> DRAINED -> CLOSING -> CLOSED
 *              |          '--------------------------------------^
 *              '-> FAILED -> CLOSING          NULL -> CLOSING (closed before it started)
 */
export const STATION_STATES = ['NULL', 'STARTING', 'READY', 'PLAYING', 'DRAINING', 'DRAINED', 'CLOSING', 'CLOSED', 'FAILED'] as const;
export type StationState = (typeof STATION_STATES)[number];

const NEXT: Readonly<Record<StationState, readonly StationState[]>> = {
  /** Built from a compiled plan; nothing started. */
  NULL: ['STARTING', 'CLOSING'],
  /** Steps starting, downstream first. */
  STARTING: ['READY', 'FAILED'],
  /** Every step started and the sinks told (the PLC "ready"); no frame taken yet. */
  READY: ['PLAYING', 'CLOSING'],
  /** The frame loop takes frames. */
  PLAYING: ['DRAINING'],
  /** No new frames (source ended, max frames, stop); what arrived is finished and the sinks flushed. */
  DRAINING: ['DRAINED'],
  /** The run is over; the steps are still open (their health can be read) until close. */
  DRAINED: ['CLOSING'],
  /** A step could not start; whatever had started was closed again. */
  FAILED: ['CLOSING'],
  /** Steps closing, upstream first. */
  CLOSING: ['CLOSED'],
  CLOSED: [],
};

/** The states in which the steps are up, so the station may call into them (e.g. for health). */
export const STEPS_UP: readonly StationState[] = ['READY', 'PLAYING', 'DRAINING', 'DRAINED'];

export function canMove(from: StationState, to: StationState): boolean {
  return NEXT[from].includes(to);
}

/** A move the machine does not allow: the caller asked for something the station's state forbids. */
export class StationStateError extends LinegateError {
  readonly from: StationState;
  readonly to: StationState;
  constructor(from: StationState, to: StationState, what: string) {
    super('LG_ERR_STATION_STATE', [from, what, from, to]);
    this.name = 'StationStateError';
    this.from = from;
    this.to = to;
  }
}
