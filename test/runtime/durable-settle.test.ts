import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { compileStation } from '../../runtime/compile/compile.js';
import { definePlugin, type EncodedImage, type FrameInput, type PluginContext, type PluginModule, type SinkInstance } from '../../runtime/contract.js';
import type { PlannedStep } from '../../runtime/compile/compile.js';
import { StationSettings } from '../../runtime/config/station-schema.js';
import { buildResult, stableResultId } from '../../runtime/execute/outcome.js';
import { SinkDispatcher } from '../../runtime/execute/sinks.js';
import type { Logger } from '../../runtime/contract.js';
import { contractProblems } from '../../runtime/registry/validate.js';
import { Station } from '../../runtime/station.js';
import { testRegistry } from '../helpers/probe-plugins.js';
import { contextFor, sampleResult } from '../helpers/samples.js';
import { ROOT, capturingLog, silentLog } from '../helpers/station.js';
import { until } from '../helpers/until.js';

/**
 * "Durable before acknowledged": a source settles a part (a hot folder moves
 * its file to done) only once every sink that promises durability holds the
 * result, never when one could not take it, and a block-policy source waits
 * rather than let results pile up in memory for a slow durable sink.
 */

interface Gate {
  /** Writes the durable sink may still make; undefined: as many as come. */
  permits?: number;
  wake: (() => void)[];
  /** Sequence numbers this sink refuses. */
  refuse: Set<number>;
  written: number[];
  settled: number[];
  pulled: number;
  /** Results the station finished minus writes the durable sink finished, at its highest. */
  maxBacklog: number;
}

const gates = new Map<string, Gate>();
const gate = (name: string): Gate => {
  let g = gates.get(name);
  if (g === undefined) gates.set(name, (g = { wake: [], refuse: new Set(), written: [], settled: [], pulled: 0, maxBacklog: 0 }));
  return g;
};
/** Lets `n` more writes through (undefined: all). */
const allow = (g: Gate, n: number | undefined): void => {
  g.permits = n === undefined ? undefined : (g.permits ?? 0) + n;
  for (const w of g.wake.splice(0)) w();
};
const close = (g: Gate): void => void (g.permits = 0);
const open = (g: Gate): void => allow(g, undefined);

const frame = (i: number, g: Gate): FrameInput => ({
  ref: `mem://durable/${i}`,
  key: `frame-${i}`,
  image: { kind: 'raw', data: new Uint8Array(4), width: 2, height: 2, channels: 1, colorOrder: 'GRAY' },
  settle: async () => void g.settled.push(i),
});

const durSource = definePlugin({
  manifest: {
    id: 'dur/source@1',
    kind: 'source',
    description: 'keyed frames whose settle is recorded',
    config: z.object({ gate: z.string(), count: z.number().int() }).strict(),
    produces: [{ type: 'image/raw' }],
  },
  async init(config) {
    const g = gate(config.gate);
    return {
      async *frames(run: PluginContext) {
        for (let i = 0; i < config.count && !run.signal.aborted; i++) {
          g.pulled++;
          yield frame(i, g);
        }
      },
    };
  },
});

const durSink = definePlugin({
  manifest: {
    id: 'dur/sink@1',
    kind: 'sink',
    description: 'a durable sink the test holds or makes refuse',
    config: z.object({ gate: z.string() }).strict(),
    durable: true,
  },
  async init(config) {
    const g = gate(config.gate);
    const sink: SinkInstance = {
      async write(result) {
        if (g.refuse.has(result.sequence)) throw new Error(`disk full for part ${result.sequence}`);
        while (g.permits === 0) await new Promise<void>((r) => g.wake.push(r));
        if (g.permits !== undefined) g.permits--;
        g.written.push(result.sequence);
      },
    };
    return sink;
  },
});

const stations: Station[] = [];
afterEach(async () => {
  for (const g of gates.values()) open(g);
  await Promise.all(stations.splice(0).map((s) => s.close()));
});

let n = 0;
function station(opts: { count: number; settings?: Record<string, unknown>; log?: Logger }): { s: Station; g: Gate } {
  const name = `dur-${n++}`;
  const registry = testRegistry();
  registry.register(durSource, 'test');
  registry.register(durSink, 'test');
  const plan = compileStation(
    {
      station: { id: name, ...opts.settings },
      history: false,
      source: { name: 'cam', use: 'dur/source@1', config: { gate: name, count: opts.count } },
      stages: [
        { name: 'inspect', use: 'test/stage@1', config: { probe: name } },
        { name: 'decide', use: 'test/decide@1', config: { probe: name } },
      ],
      sinks: [
        { name: 'plc', use: 'test/sink@1', critical: true, config: { probe: `${name}-plc` } },
        { name: 'disk', use: 'dur/sink@1', config: { gate: name } },
        { name: 'dash', use: 'test/sink@1', config: { probe: `${name}-dash` } },
      ],
    },
    path.join(ROOT, 'stations', 'test.yaml'),
    registry,
  );
  const s = new Station(plan, opts.log ?? silentLog);
  stations.push(s);
  const g = gate(name);
  s.on('result', () => (g.maxBacklog = Math.max(g.maxBacklog, resultsSeen(g, 1))));
  return { s, g };
}
const seen = new WeakMap<Gate, number>();
const resultsSeen = (g: Gate, add: number): number => {
  const total = (seen.get(g) ?? 0) + add;
  seen.set(g, total);
  return total - g.written.length - g.refuse.size;
};

describe('settling a part with its source', () => {
  it('waits until every durable sink holds the result (the critical sinks having it is not enough)', async () => {
    const { s, g } = station({ count: 3 });
    close(g);
    const results: number[] = [];
    s.on('result', (r) => results.push(r.sequence));
    const run = s.run();
    await until(() => results.length === 3, { what: 'three results' });
    expect(g.settled).toEqual([]); // the PLC has them, the durable sink does not
    open(g);
    await run;
    expect(g.written).toEqual([0, 1, 2]);
    expect(g.settled.sort()).toEqual([0, 1, 2]);
  });

  it('never settles a part a durable sink could not take; says so once, and is degraded until results are durable again', async () => {
    const { log, entries } = capturingLog();
    const { s, g } = station({ count: 8, log });
    for (const i of [0, 1, 2, 3, 4]) g.refuse.add(i);
    close(g);
    const run = s.run();
    // Part 5's write waits, so the state is looked at while parts are being kept.
    await until(() => g.written.length === 0 && (s.health().frames.data?.settle as { kept: number } | undefined)?.kept === 5, { what: 'five parts kept' });
    expect(s.health().frames).toMatchObject({ status: 'degraded', detail: expect.stringContaining('LG_ERR_SINK_NOT_DURABLE') });
    open(g);
    await run;
    expect(g.settled.sort()).toEqual([5, 6, 7]);
    const kept = entries().filter((e) => e.code === 'LG_ERR_SINK_NOT_DURABLE');
    expect(kept).toHaveLength(1);
    expect(kept[0]).toMatchObject({ level: 50, partId: expect.any(String), missing: [{ sink: 'disk', why: expect.stringContaining('disk full for part 0') }] });
    expect(entries().filter((e) => String(e.msg).includes('hold results again'))).toHaveLength(1);
    // The refused writes themselves: one line for the sink's failing state, one when it delivers again.
    expect(entries().filter((e) => e.sink === 'disk' && e.level >= 50)).toHaveLength(1);
    expect(s.health().frames.status).toBe('ok');
  });

  it('holds a block-policy source back while a slow durable sink has settleQueueSize parts: memory stays bounded', async () => {
    const { s, g } = station({ count: 20, settings: { maxInFlight: 1, queueSize: 1, settleQueueSize: 3 } });
    close(g);
    const run = s.run();
    await until(() => g.pulled >= 3, { what: 'the first frames' });
    // Let the durable sink go one write at a time, as a slow disk does.
    while (g.written.length < 20) {
      const before = g.written.length;
      allow(g, 1);
      await until(() => g.written.length > before, { what: 'one more write' });
    }
    await run;
    expect(g.settled).toHaveLength(20);
    expect(g.maxBacklog).toBeLessThanOrEqual(3 + 1 + 1 + 1);
  });
});

describe('the dispatcher', () => {
  const step = (name: string, durable: boolean): PlannedStep =>
    ({ name, path: `sinks.${name}`, kind: 'sink', plugin: { manifest: { id: 'test/x@1', durable } } as unknown as PluginModule, config: {}, critical: false }) as PlannedStep;
  const image: EncodedImage = { kind: 'encoded', data: Buffer.alloc(10), format: 'jpeg' };

  it('resolves durable once the durable lanes wrote the result, and names the sink that could not take it', async () => {
    let release = (): void => undefined;
    const held = new Promise<void>((r) => (release = r));
    const slow: SinkInstance = { write: () => held };
    const failing: SinkInstance = { write: () => Promise.reject(new Error('EIO')) };
    const never: SinkInstance = { write: () => new Promise(() => undefined) }; // not durable: never waited for
    const ctx = contextFor(new AbortController().signal);
    const d = new SinkDispatcher(
      [
        { step: step('a', true), instance: slow, ctx },
        { step: step('b', true), instance: failing, ctx },
        { step: step('c', false), instance: never, ctx },
      ],
      { timeoutMs: 60_000, laneSize: 10, log: silentLog, onDelivery: () => undefined },
    );
    const { durable } = await d.dispatch(sampleResult(), image);
    let done = false;
    void durable.then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    release();
    expect(await durable).toEqual({ ok: false, missing: [{ sink: 'b', why: expect.stringContaining('EIO') }] });
  });
});

describe('result ids for frames a source may yield again', () => {
  const plan = compileStation(
    { station: { id: 'ids-01' }, history: false, source: { name: 'cam', use: 'test/source@1' }, stages: [{ name: 's', use: 'test/stage@1' }, { name: 'd', use: 'test/decide@1' }] },
    path.join(ROOT, 'stations', 'test.yaml'),
    testRegistry(),
  );
  const at = new Date('2026-03-04T05:06:07.089Z');
  const f = (key: string | undefined, sequence: number) => ({ ref: 'r', partId: 'p', sequence, capturedAt: at, image: { kind: 'raw', data: new Uint8Array(4), width: 2, height: 2, channels: 1, colorOrder: 'GRAY' } as const, ...(key === undefined ? {} : { key }) });

  it('are the same for the same key (a re-inspection after a crash), a UUIDv7 of the capture time, and differ for another key', () => {
    const a = buildResult(plan, f('file.jpg|12|1000', 0), { stageMs: {} }, 1).resultId;
    const again = buildResult(plan, f('file.jpg|12|1000', 7), { stageMs: {} }, 1).resultId;
    expect(again).toBe(a);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseInt(a.replace(/-/g, '').slice(0, 12), 16)).toBe(at.getTime());
    expect(stableResultId(plan, { key: 'other.jpg|12|1000', capturedAt: at })).not.toBe(a);
    expect(buildResult(plan, f(undefined, 0), { stageMs: {} }, 1).resultId).not.toBe(buildResult(plan, f(undefined, 0), { stageMs: {} }, 1).resultId);
  });
});

describe('the durable declaration and its setting', () => {
  const sink = (durable: unknown, kind = 'sink') => ({ manifest: { id: 'acme/x@1', kind, description: 'x', config: z.object({}), durable, ...(kind === 'sink' ? {} : { produces: [{ type: 'image/raw' }] }) }, init: async () => ({}) });

  it('is a boolean or a function of the config, on sinks only', () => {
    expect(contractProblems(sink(true))).toEqual([]);
    expect(contractProblems(sink(() => true))).toEqual([]);
    expect(contractProblems(sink('yes'))).toContain('manifest.durable must be a boolean or a function of the config');
    expect(contractProblems(sink(true, 'source'))).toContain('manifest.durable is for sink plugins only');
  });

  it('settleQueueSize may not exceed sinkQueueSize', () => {
    expect(StationSettings.safeParse({ id: 'x', sinkQueueSize: 10, settleQueueSize: 11 }).success).toBe(false);
    expect(StationSettings.safeParse({ id: 'x', sinkQueueSize: 10, settleQueueSize: 10 }).success).toBe(true);
  });
});
