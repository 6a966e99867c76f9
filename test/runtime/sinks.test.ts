import { describe, expect, it } from 'vitest';
import type { EncodedImage, PluginModule, SinkInstance } from '../../runtime/contract.js';
import type { PlannedStep } from '../../runtime/compile/compile.js';
import { SinkDispatcher, type DeliveryEvent } from '../../runtime/execute/sinks.js';
import { contextFor, sampleResult } from '../helpers/samples.js';
import { capturingLog, silentLog } from '../helpers/station.js';

/** A background sink that holds every write until released, recording what it got. */
function heldSink(): { instance: SinkInstance; got: { id: string; image: number | undefined }[]; release: () => void } {
  let release = (): void => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const got: { id: string; image: number | undefined }[] = [];
  return {
    got,
    release: () => release(),
    instance: {
      async write(result, _ctx, image) {
        await gate;
        got.push({ id: result.resultId, image: image?.data.byteLength });
      },
    },
  };
}

const step = (name: string): PlannedStep => ({ name, path: `sinks[0]`, kind: 'sink', plugin: { manifest: { id: 'test/held@1' } } as unknown as PluginModule, config: {}, critical: false });
const image = (bytes: number): EncodedImage => ({ kind: 'encoded', data: Buffer.alloc(bytes), format: 'jpeg' });

describe('the background sink lanes', () => {
  it('refuse a result past the lane size, recording it as skipped with the code, and deliver the rest in order', async () => {
    const sink = heldSink();
    const events: DeliveryEvent[] = [];
    const { log, entries } = capturingLog();
    const d = new SinkDispatcher([{ step: step('queue'), instance: sink.instance, ctx: contextFor(new AbortController().signal) }], { timeoutMs: 5000, laneSize: 2, log, onDelivery: (e) => events.push(e) });
    const results = [0, 1, 2, 3].map((i) => sampleResult({ sequence: i }));
    const finals = [];
    for (const r of results) finals.push(await d.deliver(r));
    // the first is being written (held), two wait, the fourth finds the lane full
    expect(finals.map((f) => f.delivery.queue?.status)).toEqual(['pending', 'pending', 'pending', 'skipped']);
    expect(finals[3]!.delivery.queue?.error).toBe('LG_ERR_SINK_OVERFLOW');
    expect(d.overflows).toBe(1);
    expect(entries().some((e) => String(e.msg).includes('results behind'))).toBe(true);
    sink.release();
    await d.flush(5000);
    expect(sink.got.map((g) => g.id)).toEqual(results.slice(0, 3).map((r) => r.resultId));
    expect(events.map((e) => e.delivery.status)).toEqual(['delivered', 'delivered', 'delivered']);
  });

  it('hold at most their image budget: past it a result still goes, without its image', async () => {
    const sink = heldSink();
    const d = new SinkDispatcher([{ step: step('queue'), instance: sink.instance, ctx: contextFor(new AbortController().signal) }], { timeoutMs: 5000, laneSize: 100, laneImageBytes: 2500, log: silentLog, onDelivery: () => undefined });
    for (let i = 0; i < 4; i++) await d.deliver(sampleResult({ sequence: i }), image(1000));
    sink.release();
    await d.flush(5000);
    // 1000 + 1000 fit the 2500-byte budget, the third would not; once written, the budget is free again
    expect(sink.got.map((g) => g.image)).toEqual([1000, 1000, undefined, undefined]);
    await d.deliver(sampleResult({ sequence: 9 }), image(1000));
    await d.flush(5000);
    expect(sink.got.at(-1)!.image).toBe(1000);
  });

  it('keep going when the delivery callback throws: the error is logged with the event name and the lane is not wedged', async () => {
    const sink = heldSink();
    const { log, entries } = capturingLog();
    const d = new SinkDispatcher([{ step: step('queue'), instance: sink.instance, ctx: contextFor(new AbortController().signal) }], {
      timeoutMs: 5000,
      laneSize: 10,
      log,
      onDelivery: () => {
        throw new Error('listener bug');
      },
    });
    sink.release();
    for (let i = 0; i < 5; i++) await d.deliver(sampleResult({ sequence: i }));
    await d.flush(2000);
    expect(sink.got).toHaveLength(5);
    expect(entries().filter((e) => e.event === 'delivery' && JSON.stringify(e.err).includes('listener bug'))).toHaveLength(5);
    expect(entries().some((e) => String(e.msg).includes('flush timed out'))).toBe(false);
  });

  it('log a full lane once per interval with counts, not once per refused result', async () => {
    const sink = heldSink();
    const { log, entries } = capturingLog();
    const d = new SinkDispatcher([{ step: step('queue'), instance: sink.instance, ctx: contextFor(new AbortController().signal) }], { timeoutMs: 5000, laneSize: 1, log, onDelivery: () => undefined });
    for (let i = 0; i < 50; i++) await d.deliver(sampleResult({ sequence: i }));
    expect(d.overflows).toBe(48);
    sink.release();
    await d.flush(2000);
    const lines = entries().filter((e) => e.code === 'LG_ERR_SINK_OVERFLOW');
    expect(lines.length).toBeLessThanOrEqual(2);
    expect(lines.reduce((n, e) => n + Number(e.refused), 0)).toBe(48);
  });
});

describe('the sinks\' lifecycle calls', () => {
  it('call stopping() on every sink once, however often they are asked, and bound each call', async () => {
    let stops = 0;
    const slow: SinkInstance = { write: async () => undefined, stopping: () => new Promise<void>(() => void stops++) };
    const quick: SinkInstance = { write: async () => undefined, stopping: async () => void stops++ };
    const d = new SinkDispatcher(
      [
        { step: step('plc'), instance: slow, ctx: contextFor(new AbortController().signal) },
        { step: step('queue'), instance: quick, ctx: contextFor(new AbortController().signal) },
      ],
      { timeoutMs: 50, laneSize: 10, log: silentLog, onDelivery: () => undefined },
    );
    await Promise.all([d.stopping(), d.stopping()]);
    await d.stopping();
    expect(stops).toBe(2);
  });
});

