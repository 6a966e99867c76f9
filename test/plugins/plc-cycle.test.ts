import { describe, expect, it } from 'vitest';
import { canMove, moveCycle, newCycle, type CycleState } from '../../plugins/opcua-plc/cycle.js';
import { readBatch } from '../../plugins/opcua-plc/edges.js';
import type { Batch } from '../../plugins/opcua-plc/link.js';
import { onReconnect, plcForgot, stillReading } from '../../plugins/opcua-plc/reconnect.js';
import type { TagName } from '../../plugins/opcua-plc/tags.js';

/** The pure parts of the handshake: the cycle's state machine, what a batch says, what a reconnect finds. */

const STATES: readonly CycleState[] = ['TRIGGERED', 'ANSWERED', 'ACKED', 'UNACKED', 'ABANDONED'];
const ALLOWED: Record<CycleState, CycleState[]> = {
  TRIGGERED: ['ANSWERED', 'ABANDONED'],
  ANSWERED: ['ACKED', 'UNACKED'],
  ACKED: ['ANSWERED'],
  UNACKED: ['ANSWERED'],
  ABANDONED: [],
};

function cycleIn(state: CycleState) {
  const c = newCycle('P-1', 1);
  const path: Record<CycleState, CycleState[]> = { TRIGGERED: [], ANSWERED: ['ANSWERED'], ACKED: ['ANSWERED', 'ACKED'], UNACKED: ['ANSWERED', 'UNACKED'], ABANDONED: ['ABANDONED'] };
  for (const s of path[state]) moveCycle(c, s);
  return c;
}

const batch = (entries: Partial<Record<TagName, unknown[]>>): Batch => new Map(Object.entries(entries) as [TagName, unknown[]][]);

describe('a PLC cycle', () => {
  it.each(STATES.flatMap((from) => STATES.map((to) => [from, to] as const)))('%s -> %s is a transition only where the table says so', (from, to) => {
    const c = cycleIn(from);
    expect(canMove(c, to)).toBe(ALLOWED[from].includes(to));
    if (ALLOWED[from].includes(to)) {
      moveCycle(c, to);
      expect(c.state).toBe(to);
    } else {
      expect(() => moveCycle(c, to)).toThrow(`${from} -> ${to} is not a transition`);
    }
  });

  it('gets an id of its own: a restarted PLC reusing part id and counter is another cycle', () => {
    const a = newCycle('P-1', 1);
    const b = newCycle('P-1', 1);
    expect(a.ref.id).not.toBe(b.ref.id);
    expect(a.ref).toMatchObject({ counter: 1, raisedAt: expect.any(Date) });
  });
});

describe('what a notification batch says', () => {
  const low = { trigger: false, ack: false };

  it('a rising Trigger with PartId and counter in the same batch asks with those ids', () => {
    expect(readBatch(batch({ partId: ['P-7'], triggerCounter: [7], trigger: [true] }), low)).toEqual({ acks: 0, falls: 0, levels: { trigger: true, ack: false }, ask: { ids: { partId: 'P-7', counter: 7 } } });
  });

  it('a rising Trigger alone asks, but its ids must be read', () => {
    expect(readBatch(batch({ trigger: [true] }), low).ask).toEqual({ ids: undefined });
  });

  it('a new counter while Trigger stays up asks again; Trigger staying up alone does not', () => {
    const up = { trigger: true, ack: false };
    expect(readBatch(batch({ triggerCounter: [8] }), up).ask).toEqual({ ids: undefined });
    expect(readBatch(batch({ plcHeartbeat: [3] }), up).ask).toBeUndefined();
  });

  it('a low-high pulse inside one batch is an edge, and its fall is counted', () => {
    const r = readBatch(batch({ trigger: [false, true] }), { trigger: true, ack: false });
    expect(r).toMatchObject({ falls: 1, levels: { trigger: true }, ask: { ids: undefined } });
  });

  it('counts only low -> high ResultAck edges, none from a level first seen after a link loss', () => {
    expect(readBatch(batch({ resultAck: [true, false, true] }), low).acks).toBe(2);
    expect(readBatch(batch({ resultAck: [true] }), { trigger: undefined, ack: undefined }).acks).toBe(0);
    expect(readBatch(batch({ resultAck: [true] }), { trigger: false, ack: true }).acks).toBe(0);
  });

  it('a Trigger that falls asks nothing', () => {
    expect(readBatch(batch({ trigger: [false], partId: ['P-9'], triggerCounter: [9] }), { trigger: true, ack: false })).toMatchObject({ falls: 1, ask: undefined });
  });
});

describe('what a reconnect finds', () => {
  const written = { partId: 'P-3', verdict: 2, rejectCode: 1, score: 0.9, counter: 3, modelVersion: 'm@1' };
  const kept = onReconnect({ trigger: true, partId: 'P-3', triggerCounter: 3, resultAck: false, resultValid: true, visionReady: true, resultPartId: 'P-3', resultCounter: 3 });

  it('a PLC that kept its data (a blip, a retentive block) did not forget', () => {
    expect(plcForgot(kept, written, true)).toBe(false);
  });

  it('a PLC whose VisionReady or echo is no longer what linegate wrote restarted and forgot', () => {
    expect(plcForgot({ ...kept, visionReady: false }, written, true)).toBe(true);
    expect(plcForgot({ ...kept, resultPartId: '', resultCounter: 0 }, written, false)).toBe(true);
    // nothing written yet and not ready: nothing to tell by
    expect(plcForgot({ ...kept, visionReady: false }, undefined, false)).toBe(false);
  });

  it('the PLC is still reading an answer only when it asks about that part and the answer is up as written, after a lost ack', () => {
    const c = newCycle('P-3', 3);
    moveCycle(c, 'ANSWERED');
    c.answer = { payload: written, source: 'inspection' };
    moveCycle(c, 'UNACKED');
    c.ackOutcome = 'link-down';
    expect(stillReading(c, kept)).toBe(true);
    expect(stillReading(c, { ...kept, resultValid: false })).toBe(false);
    expect(stillReading(c, { ...kept, trigger: false })).toBe(false);
    expect(stillReading(c, { ...kept, triggerCounter: 4 })).toBe(false);
    c.ackOutcome = 'no-ack';
    expect(stillReading(c, kept)).toBe(false);
  });
});
