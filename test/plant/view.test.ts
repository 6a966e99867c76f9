import { describe, expect, it } from 'vitest';
import { stationView } from '../../runtime/plant/station-view.js';
import type { StationCounts, VerdictCounts } from '../../runtime/plant/types.js';

/* A station's view from its counts, computed without Redis: throughput, health and its reasons. */

const MIN = 60_000;
/** Half a minute into a minute. */
const NOW = 29_000_000 * MIN + 30_000;
const HEALTH = { staleMinutes: 5, maxErrorRate: 0.05 };
const passes = (n: number): VerdictCounts => ({ pass: n, fail: 0, error: 0 });

function counts(perMinute: VerdictCounts[], lastAgoMs: number | null = 1000): StationCounts {
  return { station: 's', lastAt: lastAgoMs === null ? null : new Date(NOW - lastAgoMs).toISOString(), perMinute, rejectCodes: [], labels: [] };
}

describe('a station on the plant page', () => {
  it('runs at its real rate: 300 parts a minute, steady or started two and a half minutes ago', () => {
    // Ten whole minutes at 300 a minute, and the current one half gone.
    expect(stationView(counts([...Array.from({ length: 10 }, () => passes(300)), passes(150)]), NOW, HEALTH).throughputPerMin).toBeCloseTo(300, 9);
    // Started at :30 two minutes ago: its first minute holds 150 and is left out with its half minute.
    expect(stationView(counts([passes(0), passes(0), passes(0), passes(0), passes(150), passes(300), passes(150)]), NOW, HEALTH).throughputPerMin).toBeCloseTo(300, 9);
    // Started in the current minute: no whole minute to go by, so its parts over the half minute gone.
    expect(stationView(counts([passes(0), passes(0), passes(90)]), NOW, HEALTH).throughputPerMin).toBeCloseTo(180, 9);
    // Stopped three minutes ago after a steady run: the rate falls as the window empties.
    expect(stationView(counts([passes(300), passes(300), passes(300), passes(0), passes(0), passes(0)], 3 * MIN), NOW, HEALTH).throughputPerMin).toBeCloseTo(600 / 4.5, 9);
  });

  it('is stale without a result for staleMinutes, whatever its counts say', () => {
    expect(stationView(counts([passes(10)], 5 * MIN), NOW, HEALTH).health.state).toBe('ok');
    expect(stationView(counts([passes(10)], 5 * MIN + 1), NOW, HEALTH).health).toMatchObject({ state: 'stale', why: 'no result for 5 min (stale after 5 min)' });
    expect(stationView(counts([], null), NOW, HEALTH).health).toMatchObject({ state: 'stale', why: 'no result counted' });
    expect(stationView(counts([], 3 * 3_600_000), NOW, HEALTH).health.why).toBe('no result for 3 h (stale after 5 min)');
  });

  it('shows errors above maxErrorRate of the recent parts, not at it, and not for errors older than the recent minutes', () => {
    const at = (error: number, pass: number): VerdictCounts => ({ pass, fail: 0, error });
    expect(stationView(counts([at(5, 95)]), NOW, HEALTH).health).toMatchObject({ state: 'ok', errorRate: 0.05 });
    expect(stationView(counts([at(6, 94)]), NOW, HEALTH).health).toMatchObject({ state: 'errors', errorRate: 0.06, why: '6.0 % of the last 100 parts were errors (limit 5.0 %)' });
    const old = [at(50, 0), ...Array.from({ length: 5 }, () => passes(20))];
    expect(stationView(counts(old), NOW, HEALTH)).toMatchObject({ parts: 150, verdicts: { error: 50 }, health: { state: 'ok', errorRate: 0 } });
  });

  it('ranks reject codes and labels, most first, ties by code and name, at most five', () => {
    const c: StationCounts = {
      ...counts([{ pass: 0, fail: 14, error: 2 }]),
      rejectCodes: [3, 1, 2, 4, 5, 6].map((code) => ({ code, count: code === 6 ? 5 : 2, ...(code === 1 ? { name: 'crack' } : {}) })),
      labels: [
        { label: 'pore', count: 1 },
        { label: 'crack', count: 3 },
        { label: 'burr', count: 1 },
      ],
    };
    const v = stationView(c, NOW, HEALTH);
    expect(v.topRejectCodes.map((r) => r.code)).toEqual([6, 1, 2, 3, 4]);
    expect(v.topRejectCodes[0]).toEqual({ code: 6, count: 5, share: 5 / 15 });
    expect(v.topRejectCodes[1]).toEqual({ code: 1, name: 'crack', count: 2, share: 2 / 15 });
    expect(v.topLabels.map((l) => [l.label, l.share])).toEqual([
      ['crack', 0.6],
      ['burr', 0.2],
      ['pore', 0.2],
    ]);
    expect(v.yield).toBe(0);
    expect(stationView(counts([passes(0)]), NOW, HEALTH).yield).toBeNull();
  });
});
