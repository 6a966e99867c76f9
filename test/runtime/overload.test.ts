import { afterEach, describe, expect, it } from 'vitest';
import type { InspectionResult } from '../../runtime/result.js';
import { probe } from '../helpers/probe-plugins.js';
import { closeProbeStations, probeStation } from '../helpers/probe-station.js';
import { capturingLog } from '../helpers/station.js';
import { until } from '../helpers/until.js';

afterEach(closeProbeStations);

/** The loop's own health, as `station.health()` reports it. */
interface FramesData {
  readonly dropped: number;
  readonly dropRate: number;
  readonly dropReports: { readonly queued: number; readonly skipped: number };
  readonly hung: readonly { readonly step: string; readonly partId: string; readonly ms: number }[];
}

describe('the frame loop under overload', () => {
  it('never runs more stage calls at once than maxInFlight, even when a stage ignores its spent budget', async () => {
    const { station, name } = probeStation({
      station: { maxInFlight: 2, queueSize: 1, dropPolicy: 'drop-newest', cycleBudgetMs: 15 },
      source: { count: 40, intervalMs: 2 },
      stage: { delayMs: 60, ignoreSignal: true },
    });
    const summary = await station.run();
    expect(summary.frames).toBe(40);
    expect(probe(name).maxInFlight).toBeLessThanOrEqual(2);
    const results = probe(`${name}-plc`).results;
    expect(results).toHaveLength(40);
    for (const r of results) expect([902, 904]).toContain(r.rejectCode);
    // the PLC does not wait for the stage: a timed-out part has its verdict at the budget
    for (const r of results.filter((x) => x.rejectCode === 902)) expect(r.timings.totalMs).toBeLessThan(60);
  });

  it('reports a step still running long past its budget as hung, once, in the log and the health, until it returns', async () => {
    const { log, entries } = capturingLog();
    const { station, name } = probeStation({
      station: { cycleBudgetMs: 20, hungAfterMs: 40 },
      source: { count: 1 },
      stage: { delayMs: 400, ignoreSignal: true },
      log,
    });
    const running = station.run();
    await until(() => station.health().frames.status === 'degraded', { ms: 2000 });
    const h = station.health();
    expect(h.status).toBe('degraded');
    const hung = (h.frames.data as unknown as FramesData).hung;
    expect(hung).toEqual([{ step: 'work', partId: 'loop-test-0', ms: expect.any(Number) }]);
    expect(hung[0]!.ms).toBeGreaterThanOrEqual(40);
    // the verdict went out at the budget, long before the stage returned
    expect(probe(`${name}-plc`).results).toMatchObject([{ verdict: 'error', rejectCode: 902 }]);
    expect(probe(name).inFlight).toBe(1);
    await running;
    expect(probe(name).inFlight).toBe(0);
    expect(station.health().frames.status).toBe('ok');
    const lines = entries();
    expect(lines.filter((e) => e.code === 'LG_ERR_STAGE_HUNG')).toHaveLength(1);
    expect(lines.find((e) => e.code === 'LG_ERR_STAGE_HUNG')).toMatchObject({ step: 'work', partId: 'loop-test-0' });
    const back = lines.filter((e) => String(e.msg).includes('returned'));
    expect(back).toHaveLength(1);
    expect(back[0]!.ms).toBeGreaterThan(300);
  });

  it('sends the results of dropped frames through one bounded path, without their images', async () => {
    const { log, entries } = capturingLog();
    const { station, name } = probeStation({
      station: { maxInFlight: 1, queueSize: 1, dropPolicy: 'drop-newest', sinkQueueSize: 4 },
      source: { count: 200 },
      stage: { delayMs: 5 },
      sinks: [
        { name: 'plc', critical: true, config: { delayMs: 10 } },
        { name: 'queue', critical: false },
      ],
      log,
    });
    const drops: InspectionResult[] = [];
    const inspected: InspectionResult[] = [];
    station.on('result', (r) => void inspected.push(r));
    let mostQueued = 0;
    station.on('drop', (r) => {
      drops.push(r);
      mostQueued = Math.max(mostQueued, (station.health().frames.data as unknown as FramesData).dropReports.queued);
    });
    const summary = await station.run();
    expect(summary.frames).toBe(200);
    expect(summary.dropped).toBeGreaterThan(150);
    expect(drops).toHaveLength(summary.dropped);
    // one write for drops at a time, beside the one part in flight
    expect(probe(`${name}-plc`).maxWriting).toBeLessThanOrEqual(1 + 1);
    expect(mostQueued).toBeLessThanOrEqual(4);
    // past the FIFO, a drop still reaches the background sink and the events; the critical sink gets none
    const skipped = drops.filter((r) => r.delivery.plc?.status === 'skipped');
    expect(skipped.length).toBeGreaterThan(100);
    for (const r of skipped) expect(r.delivery.plc).toMatchObject({ critical: true, error: 'LG_ERR_SINK_OVERFLOW' });
    expect((station.health().frames.data as unknown as FramesData).dropReports.skipped).toBe(skipped.length);
    expect(probe(`${name}-plc`).results).toHaveLength(200 - skipped.length);
    // the background sink's own lane (also sinkQueueSize) refuses some of the burst; it gets every result its lane took
    const finals = [...inspected, ...drops];
    const toQueue = finals.filter((r) => r.delivery.queue?.status === 'pending').map((r) => r.resultId);
    expect(probe(`${name}-queue`).results.map((r) => r.resultId).sort()).toEqual(toQueue.sort());
    expect(skipped.filter((r) => r.delivery.queue?.status === 'pending').length).toBeGreaterThan(0);
    const dropIds = new Set(drops.map((r) => r.resultId));
    expect([...probe(`${name}-queue`).withImage].filter((id) => dropIds.has(id))).toEqual([]);
    expect(probe(`${name}-queue`).withImage.size).toBe(inspected.filter((r) => r.delivery.queue?.status === 'pending').length);
    // counted and logged in aggregate, never a line per skipped report
    const lines = entries().filter((e) => e.code === 'LG_ERR_FRAME_DROPPED');
    expect(lines.reduce((n, e) => n + Number(e.skippedCritical ?? 0), 0)).toBe(skipped.length);
    expect(lines.length).toBeLessThan(10);
  });

  it('logs drops as one line per interval with counts, not one line per frame', async () => {
    const { log, entries } = capturingLog();
    const { station } = probeStation({
      station: { maxInFlight: 1, queueSize: 2, dropPolicy: 'drop-oldest', healthWindowMs: 50 },
      source: { count: 300, intervalMs: 0.5 },
      stage: { delayMs: 3 },
      log,
    });
    const t0 = Date.now();
    const summary = await station.run();
    const elapsed = Date.now() - t0;
    expect(summary.dropped).toBeGreaterThan(100);
    const lines = entries().filter((e) => e.code === 'LG_ERR_FRAME_DROPPED');
    // the first drop at once, then at most one line per 50 ms, and a last line for what the end left unreported
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.length).toBeLessThanOrEqual(2 + Math.ceil(elapsed / 50));
    expect(lines.length).toBeLessThan(summary.dropped / 4);
    expect(lines.reduce((n, e) => n + Number(e.dropped), 0)).toBe(summary.dropped);
    expect(lines.at(-1)).toMatchObject({ total: summary.dropped, policy: 'drop-oldest' });
  });

  it('is degraded while frames are being dropped, with the rate and the total, and ok again once a window passes without a drop', async () => {
    const { station, name } = probeStation({
      station: { maxInFlight: 1, queueSize: 1, dropPolicy: 'drop-newest', healthWindowMs: 200 },
      source: { count: 0, quietAfter: 300 },
      stage: { delayMs: 2 },
    });
    let during: ReturnType<typeof station.health> | undefined;
    station.on('drop', () => {
      if (during === undefined && probe(name).pulled >= 150) during = station.health();
    });
    const running = station.run();
    await until(() => probe(name).pulled === 300 && during !== undefined, { ms: 5000 });
    expect(during).toMatchObject({ status: 'degraded', state: 'PLAYING', frames: { status: 'degraded' } });
    const data = during!.frames.data as unknown as FramesData;
    expect(data.dropped).toBeGreaterThan(0);
    expect(data.dropRate).toBeGreaterThan(0);
    await until(() => station.health().frames.status === 'ok', { ms: 5000 });
    expect(station.health()).toMatchObject({ status: 'ok', state: 'PLAYING' });
    expect((station.health().frames.data as unknown as FramesData).dropped).toBeGreaterThan(0); // the total stays
    station.stop();
    await running;
  });
});
