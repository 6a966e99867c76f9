import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LinegateProcess, ROOT, RssSampler, cleanUp, note, logLines, pidOf, sleep, tempRoot, writeStation } from './harness.js';
import { RSS_MAX_MIB, alarms, brief, expectAccounted, expectOnceEach, expectRssBounded, expectUndecidableRejected, lastJsonLine, readJsonl, type RunLine } from './invariants.js';

/**
 * Fault 7: a camera three times faster than the station, for a minute. The
 * casting station's own capacity on this machine is measured first (a block
 * run, as fast as it goes); then a folder source paced at 3x that feeds the
 * same station with drop-oldest. Every frame must be accounted (inspected or
 * dropped, each dropped one an `error` result with 904 in the JSONL), drops
 * logged a line per health window, not per frame, health degraded while
 * dropping, the inspection rate held up, and RSS flat.
 */

afterEach(cleanUp);

/** LG_FAULTS_OVERLOAD_S shortens the minute on a slow day; the default is what the case is about. */
const SECONDS = Number(process.env.LG_FAULTS_OVERLOAD_S ?? 60);
const WINDOW_MS = 5000;

function station(root: string, name: string, source: string, dropPolicy: string): string {
  return writeStation(
    root,
    `station: { id: fault-overload, root: ${ROOT}, cycleBudgetMs: 500, maxInFlight: 1, queueSize: 2, dropPolicy: ${dropPolicy}, healthWindowMs: ${WINDOW_MS} }
source: ${source}
stages:
  - { name: decode, use: core/image-decode@1, config: { color: GRAY } }
  - { name: model, use: core/onnx-model@1, config: { model: models/casting-cls/1 } }
  - { name: classify, use: core/classify-decode@1 }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ id: casting-defect, label: defect, rejectCode: 1 }] } }
sinks:
  - { name: results, use: core/jsonl-sink@1, config: { dir: ${path.join(root, `results-${name}`)} } }
`,
    `${name}.yaml`,
  );
}

describe('fault: a source at three times the station capacity for a minute', () => {
  it('accounts every frame, drops the oldest with one log line per window, shows degraded health, keeps inspecting at capacity and keeps RSS flat', async () => {
    const root = tempRoot('overload');

    // What the station inspects per second here, now: as fast as the pipeline takes frames, nothing dropped.
    const measure = new LinegateProcess(['run', station(root, 'capacity', `{ name: cam0, use: core/folder-source@1, config: { dir: fixtures/casting, loop: true } }`, 'block'), '--no-pretty', '--max-frames', '600']);
    const measured = await measure.exited;
    expect(measured.code, measure.stderr.slice(-2000)).toBe(0);
    const capacity = lastJsonLine<RunLine>(measure.stdout, 'capacity run').summary.fps;
    expect(capacity, 'measured capacity').toBeGreaterThan(5);
    const rateHz = Math.round(capacity * 3);

    const run = new LinegateProcess(['run', station(root, 'overload', `{ name: cam0, use: core/folder-source@1, config: { dir: fixtures/casting, loop: true, rateHz: ${rateHz} } }`, 'drop-oldest'), '--no-pretty']);
    const rss = new RssSampler(await pidOf(run), 500);
    await waitStarted(run);
    const startedAt = Date.now();
    await sleep(SECONDS * 1000);
    run.signal('SIGINT');
    const stoppedAt = Date.now();
    const exit = await run.exited;
    rss.stop();
    expect(exit.code, `linegate run exited ${exit.code}:\n${run.stderr.slice(-3000)}`).toBe(0);
    const context = `capacity ${capacity} fps, source ${rateHz} Hz for ${SECONDS} s`;
    const figures = lastJsonLine<RunLine>(run.stdout, 'linegate run').summary;
    note('overload', { capacityFps: capacity, sourceHz: rateHz, seconds: (stoppedAt - startedAt) / 1000, takenPerS: Math.round((figures.frames / ((stoppedAt - startedAt) / 1000)) * 10) / 10, frames: figures.frames, dropped: figures.dropped, inspectedPerS: Math.round(((figures.frames - figures.dropped) / ((stoppedAt - startedAt) / 1000)) * 10) / 10, rssMaxMiB: Math.round(rss.maxMiB) });

    const { summary, health } = lastJsonLine<RunLine>(run.stdout, 'linegate run');
    expectAccounted(summary);
    expect(summary.dropped, `frames dropped (${context}): ${JSON.stringify(summary)}`).toBeGreaterThan(0);
    const seconds = (stoppedAt - startedAt) / 1000;
    // The overload really happened: the loop took (and dropped) frames well past what it can inspect. On this
    // 2-core machine one core runs the source, the drops and the sinks, so the loop takes fewer than the 3x
    // offered (the figures line says how many); what matters here is that it took more than it could inspect.
    const taken = summary.frames / seconds;
    expect.soft(taken, `frames per second taken from the source (${context}): no overload reached the loop`).toBeGreaterThan(capacity * 1.2);
    // Dropping costs the pipeline little: it still inspects at least half its measured capacity.
    const inspected = summary.frames - summary.dropped;
    expect.soft(inspected / seconds, `parts inspected per second under overload (${context}, ${taken.toFixed(0)} frames/s taken)`).toBeGreaterThan(capacity * 0.5);

    // Health said so at the end of the flood (the stop came while it was dropping).
    expect(health.frames?.status, `health.frames at the stop: ${JSON.stringify(health.frames)}`).toBe('degraded');
    expect(health.frames?.detail).toMatch(/dropping/);
    expect(health.frames?.data?.dropped, 'health counts the same drops as the summary').toBe(summary.dropped);

    // Every frame in the JSONL: inspected ones with their verdict, dropped ones as 904.
    const { results, broken } = readJsonl(path.join(root, 'results-overload'));
    expect(broken).toEqual([]);
    expect(results.length, `JSONL lines vs frames (${context})`).toBe(summary.frames);
    expectOnceEach('JSONL by result id', results, (r) => r.resultId);
    expectOnceEach('JSONL by sequence', results, (r) => String(r.sequence));
    const dropped = results.filter((r) => r.reasons.some((x) => x.code === 'LG_ERR_FRAME_DROPPED'));
    expect(dropped.length, 'dropped frames in the JSONL vs the summary').toBe(summary.dropped);
    expect(dropped.filter((r) => !(r.verdict === 'error' && r.rejectCode === 904)).map(brief), 'dropped frames not rejected with 904').toEqual([]);
    expectUndecidableRejected(results);

    // Drops in aggregate lines: one per health window, whose counts add up to the summary's.
    const log = logLines(run.stderr);
    const dropLines = log.filter((l) => l.code === 'LG_ERR_FRAME_DROPPED' || /dropp(ed|ing) .*frame/.test(l.msg));
    const windows = Math.ceil(seconds / (WINDOW_MS / 1000));
    expect(dropLines.length, `drop lines in ${seconds.toFixed(0)} s: ${dropLines.slice(0, 3).map((l) => l.msg).join(' | ')}`).toBeLessThanOrEqual(windows + 2);
    expect(dropLines.length).toBeGreaterThanOrEqual(Math.min(2, windows));
    expect(dropLines.reduce((n, l) => n + (typeof l.dropped === 'number' ? l.dropped : 0), 0), 'the drop lines\' counts add up to the summary').toBe(summary.dropped);
    const noisy = alarms(log, { from: startedAt, to: stoppedAt });
    expect(noisy.length, `warn/error lines during the flood: ${[...new Set(noisy.map((l) => l.msg))].slice(0, 5).join(' | ')}`).toBeLessThanOrEqual(2 * windows + 5);

    // Memory: flat under a minute of drops (no image, result or timer kept per dropped frame).
    expectRssBounded(rss.samples, { maxMiB: RSS_MAX_MIB, growth: 1.3 });
  });
});

/** Until the station reports it started (its source then starts pacing). */
async function waitStarted(run: LinegateProcess): Promise<void> {
  const end = Date.now() + 60_000;
  while (!/"msg":"station started"/.test(run.stderr)) {
    if (Date.now() > end) throw new Error(`the station did not start:\n${run.stderr.slice(-2000)}`);
    await sleep(25);
  }
}
