import { afterEach, describe, expect, it } from 'vitest';
import { InspectionResult } from '../../runtime/result.js';
import { probe } from '../helpers/probe-plugins.js';
import { closeProbeStations, probeStation } from '../helpers/probe-station.js';
import { capturingLog, stationFrom } from '../helpers/station.js';
import { until } from '../helpers/until.js';

let n = 0;
afterEach(closeProbeStations);

const make = probeStation;

describe('the frame loop', () => {
  it('gives every frame exactly one result that parses with the result schema', async () => {
    const { station, name } = make({ source: { count: 12 } });
    const summary = await station.run();
    const results = probe(`${name}-plc`).results;
    expect(summary).toMatchObject({ frames: 12, pass: 6, fail: 6, error: 0, dropped: 0 });
    expect(results.map((r) => r.sequence).sort((a, b) => a - b)).toEqual([...Array(12).keys()]);
    for (const r of results) expect(InspectionResult.safeParse(r).success).toBe(true);
    expect(results.find((r) => r.verdict === 'fail')).toMatchObject({ rejectCode: 7, defects: [{ label: 'odd' }] });
  });

  it('applies backpressure under the block policy: the source is never pulled further ahead than in-flight plus queue', async () => {
    const { station, name } = make({ station: { maxInFlight: 2, queueSize: 1 }, source: { count: 30 }, stage: { delayMs: 5 } });
    const ahead: number[] = [];
    station.on('result', () => ahead.push(probe(name).pulled - probe(`${name}-plc`).results.length));
    const summary = await station.run();
    expect(summary).toMatchObject({ frames: 30, dropped: 0 });
    expect(Math.max(...ahead)).toBeLessThanOrEqual(2 + 1 + 1);
    expect(probe(name).maxInFlight).toBe(2);
  });

  it('counts every dropped frame under drop-newest and still sends each one as an error result to the critical sink', async () => {
    const { station, name } = make({ station: { dropPolicy: 'drop-newest', maxInFlight: 1, queueSize: 1 }, source: { count: 40 }, stage: { delayMs: 20 } });
    const drops: InspectionResult[] = [];
    station.on('drop', (r) => drops.push(r));
    const summary = await station.run();
    expect(summary.frames).toBe(40);
    expect(summary.dropped).toBeGreaterThan(0);
    expect(summary.pass + summary.fail + summary.error + summary.dropped).toBe(40);
    expect(drops).toHaveLength(summary.dropped);
    const toPlc = probe(`${name}-plc`).results;
    expect(toPlc).toHaveLength(40);
    const dropped = toPlc.filter((r) => r.reasons[0]?.code === 'LG_ERR_FRAME_DROPPED');
    expect(dropped).toHaveLength(summary.dropped);
    for (const r of dropped) expect(r).toMatchObject({ verdict: 'error', rejectCode: 904 });
  });

  it('drops the oldest queued frame under drop-oldest, so the newest frames are the ones inspected', async () => {
    const { station, name } = make({ station: { dropPolicy: 'drop-oldest', maxInFlight: 1, queueSize: 2 }, source: { count: 30 }, stage: { delayMs: 20 } });
    const summary = await station.run();
    expect(summary.dropped).toBeGreaterThan(0);
    const inspected = probe(`${name}-plc`).results.filter((r) => r.verdict !== 'error').map((r) => r.sequence);
    expect(inspected).toContain(29);
  });

  it('turns a stage that outlives the cycle budget into an error verdict with reject code 902, delivered to the critical sink', async () => {
    const { station, name } = make({ station: { cycleBudgetMs: 50 }, source: { count: 2 }, stage: { delayMs: 400, ignoreSignal: true } });
    const summary = await station.run();
    expect(summary).toMatchObject({ frames: 2, error: 2, pass: 0, fail: 0 });
    const results = probe(`${name}-plc`).results;
    for (const r of results) {
      expect(r).toMatchObject({ verdict: 'error', rejectCode: 902, reasons: [{ code: 'LG_ERR_STAGE_TIMEOUT' }] });
      expect(r.timings.totalMs).toBeLessThan(400);
    }
    // the first part's stage call keeps its slot until it returns, so the second spent its budget in the queue
    expect(results.find((r) => r.sequence === 0)!.reasons[0]).toMatchObject({ step: 'work' });
    expect(results.find((r) => r.sequence === 1)!.reasons[0]!.message).toContain('(queue)');
  });

  it('turns a stage that throws into an error verdict with reject code 901 and goes on with the next part', async () => {
    const { station, name } = make({ source: { count: 4 }, stage: { throwOn: [1] } });
    const summary = await station.run();
    expect(summary).toMatchObject({ frames: 4, error: 1 });
    const bad = probe(`${name}-plc`).results.find((r) => r.sequence === 1)!;
    expect(bad).toMatchObject({ verdict: 'error', rejectCode: 901, reasons: [{ code: 'LG_ERR_STAGE_FAILED', step: 'work' }] });
    expect(bad.reasons[0]!.message).toContain('probe failure on part 1');
  });

  it('makes a stage that fills no slot an error (903), never a pass', async () => {
    const { station, name } = make({ source: { count: 1 }, stage: { skipOutput: true } });
    await station.run();
    expect(probe(`${name}-plc`).results[0]).toMatchObject({ verdict: 'error', rejectCode: 903 });
  });

  it('awaits critical sinks inside the cycle but never waits for a stalled background sink', async () => {
    const { station, name } = make({
      source: { count: 5 },
      sinks: [
        { name: 'plc', critical: true },
        { name: 'queue', critical: false },
      ],
    });
    let release!: () => void;
    probe(`${name}-queue`).gate = new Promise<void>((r) => (release = r));
    // Recorded here and asserted after the run: the station isolates its listeners, so an expect that
    // threw in one would be logged and swallowed, and the test would pass whatever the delivery said.
    const seen: { sequence: number; plc?: string; queue?: string }[] = [];
    station.on('result', (r) => {
      seen.push({ sequence: r.sequence, plc: r.delivery.plc?.status, queue: r.delivery.queue?.status });
      if (seen.length === 5) release(); // every verdict got out while the background sink was stalled
    });
    const summary = await station.run();
    expect(summary.frames).toBe(5);
    expect(seen).toEqual([0, 1, 2, 3, 4].map((sequence) => ({ sequence, plc: 'delivered', queue: 'pending' })));
    expect(probe(`${name}-queue`).results).toHaveLength(5);
  });

  it('records a failed critical delivery in the result instead of losing the part', async () => {
    const { station } = make({ source: { count: 2 }, sinks: [{ name: 'plc', critical: true, config: { fail: true } }] });
    const seen: InspectionResult[] = [];
    station.on('result', (r) => seen.push(r));
    await station.run();
    expect(seen).toHaveLength(2);
    for (const r of seen) expect(r.delivery.plc).toMatchObject({ status: 'failed', critical: true });
    expect(seen[0]!.delivery.plc!.error).toContain('LG_ERR_SINK_FAILED');
  });

  it('drains on stop: every frame that arrived is inspected and reaches every sink, then run() resolves', async () => {
    const { station, name } = make({
      station: { maxInFlight: 2, queueSize: 2 },
      source: { count: 0, intervalMs: 2 },
      stage: { delayMs: 15 },
      sinks: [
        { name: 'plc', critical: true },
        { name: 'archive', critical: false, config: { delayMs: 5 } },
      ],
    });
    station.on('result', (r) => {
      if (r.sequence === 5) station.stop();
    });
    const summary = await station.run();
    expect(summary.frames).toBeGreaterThanOrEqual(6);
    expect(summary.pass + summary.fail + summary.error + summary.dropped).toBe(summary.frames);
    expect(probe(`${name}-plc`).results).toHaveLength(summary.frames);
    expect(probe(`${name}-archive`).results).toHaveLength(summary.frames);
  });

  it('inspects queued frames when the source goes quiet, without waiting for another frame', async () => {
    const { station, name } = make({ station: { maxInFlight: 1, queueSize: 2 }, source: { count: 0, quietAfter: 3 }, stage: { delayMs: 10 } });
    station.on('result', () => {
      if (probe(`${name}-plc`).results.length === 3) station.stop();
    });
    const summary = await station.run();
    expect(summary.frames).toBe(3);
    expect(probe(`${name}-plc`).results.map((r) => r.sequence)).toEqual([0, 1, 2]);
  });

  it('stops after --max-frames frames', async () => {
    const { station } = make({ source: { count: 0 } });
    expect((await station.run({ maxFrames: 7 })).frames).toBe(7);
  });

  it('drops the newest frame under drop-oldest when nothing is queued to drop (queueSize 0), and still gives every frame a result', async () => {
    // The schema refuses this combination; the loop must survive it all the same.
    const { station, name } = make({ station: { dropPolicy: 'drop-oldest', maxInFlight: 1, queueSize: 1 }, unchecked: { queueSize: 0 }, source: { count: 10 }, stage: { delayMs: 10 } });
    const summary = await station.run();
    expect(summary.frames).toBe(10);
    expect(summary.dropped).toBeGreaterThan(0);
    const results = probe(`${name}-plc`).results;
    expect(results.map((r) => r.sequence).sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    // the frame in the only slot is the oldest: it is inspected, the newcomers are the ones dropped
    expect(results.find((r) => r.sequence === 0)?.verdict).toBe('pass');
  });

  it('counts a part whose verdict no critical sink took as undelivered, apart from pass, fail and error', async () => {
    const { station } = make({ source: { count: 3 }, sinks: [{ name: 'plc', critical: true, config: { fail: true } }, { name: 'queue', critical: false }] });
    const summary = await station.run();
    expect(summary).toMatchObject({ frames: 3, pass: 0, fail: 0, error: 0, dropped: 0, undelivered: 3 });
  });

  it('sums frames as pass + fail + error + dropped + undelivered', async () => {
    const { station } = make({ station: { dropPolicy: 'drop-newest', maxInFlight: 1, queueSize: 1 }, source: { count: 20 }, stage: { delayMs: 5 } });
    const s = await station.run();
    expect(s.undelivered).toBe(0);
    expect(s.pass + s.fail + s.error + s.dropped + s.undelivered).toBe(s.frames);
  });
});

describe('the station events', () => {
  it('keep delivering to a background sink when a delivery listener throws, and log the listener error with the event name', async () => {
    const { log, entries } = capturingLog();
    const { station, name } = make({ station: { closeTimeoutMs: 500 }, source: { count: 5 }, sinks: [{ name: 'plc', critical: true }, { name: 'queue', critical: false }], log });
    station.on('delivery', (e) => {
      // The queue's deliveries only: the station's history sink is a background lane too.
      if (e.sink === 'queue') throw new Error('listener bug');
    });
    await station.run();
    expect(probe(`${name}-queue`).results).toHaveLength(5);
    const logged = entries().filter((e) => e.event === 'delivery' && JSON.stringify(e.err).includes('listener bug'));
    expect(logged).toHaveLength(5);
  });

  it('settle the frame even when a result listener throws', async () => {
    const { log, entries } = capturingLog();
    const { station, name } = make({ source: { count: 4, settle: true }, log });
    let calls = 0;
    station.on('result', () => {
      calls++;
      throw new Error('listener bug');
    });
    const after: number[] = [];
    station.on('result', (r) => void after.push(r.sequence)); // a second listener still hears every result
    const summary = await station.run();
    expect(summary).toMatchObject({ frames: 4, pass: 2, fail: 2 });
    expect(calls).toBe(4);
    expect(after).toHaveLength(4);
    expect([...probe(name).settled].sort()).toEqual([0, 1, 2, 3]);
    expect(entries().filter((e) => e.event === 'result' && e.level === 50)).toHaveLength(4);
  });

  it('isolate a listener whose promise rejects', async () => {
    const { log, entries } = capturingLog();
    const { station } = make({ source: { count: 2 }, log });
    station.on('result', async () => {
      throw new Error('async listener bug');
    });
    await station.run();
    await until(() => entries().filter((e) => e.event === 'result' && JSON.stringify(e.err).includes('async listener bug')).length === 2, { ms: 2000 });
  });
});

describe('the station lifecycle', () => {
  it('starts downstream first, closes upstream first, and close() is safe to call twice', async () => {
    const name = `life${++n}`;
    const station = stationFrom({
      station: { id: 'lifecycle' },
      source: { name: 'cam', use: 'test/source@1', config: { probe: name, count: 1 } },
      stages: [
        { name: 'work', use: 'test/stage@1', config: { probe: name } },
        { name: 'verdict', use: 'test/decide@1', config: { probe: name } },
      ],
      sinks: [{ name: 'plc', use: 'test/sink@1', critical: true, config: { probe: name } }],
    });
    await station.run();
    await Promise.all([station.close(), station.close()]);
    await station.close();
    expect(probe(name).events).toEqual(['init:plc', 'init:verdict', 'init:work', 'init:cam', 'close:cam', 'close:work', 'close:verdict', 'close:plc']);
  });

  it('closes the steps it had started when a later step fails to start', async () => {
    const name = `life${++n}`;
    const ok = stationFrom({
      station: { id: 'lifecycle' },
      source: { name: 'cam', use: 'core/folder-source@1', config: { dir: 'no/such/folder' } },
      stages: [
        { name: 'work', use: 'test/stage@1', config: { probe: name } },
        { name: 'verdict', use: 'test/decide@1', config: { probe: name } },
      ],
      sinks: [{ name: 'plc', use: 'test/sink@1', config: { probe: name } }],
    });
    await expect(ok.start()).rejects.toMatchObject({ code: 'LG_ERR_SOURCE_NOT_FOUND', step: 'cam' });
    expect(probe(name).events).toEqual(['init:plc', 'init:verdict', 'init:work', 'close:work', 'close:verdict', 'close:plc']);
  });
});
