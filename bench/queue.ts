import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { compileStation } from '../runtime/compile/compile.js';
import type { SinkInstance } from '../runtime/contract.js';
import { Histogram } from '../runtime/observability/histogram.js';
import { Station } from '../runtime/station.js';
import { bullmqSink } from '../plugins/sink-bullmq/index.js';
import { testRegistry } from '../test/helpers/probe-plugins.js';
import { contextFor, frameOf, sampleResult } from '../test/helpers/samples.js';
import { ROOT } from '../test/helpers/station.js';
import { dropPrefix, jobsOf, uniquePrefix } from '../test/helpers/redis.js';

const log = pino({ level: 'silent' });
const r2 = (v: number): number => Math.round(v * 100) / 100;
const AWAY = 'redis://127.0.0.1:1';
const UP = 'redis://127.0.0.1:6379';

async function sink(url: string, prefix: string, dir: string): Promise<SinkInstance> {
  const config = bullmqSink.manifest.config.parse({ redis: { url, urlEnv: 'LG_BENCH_NO_SUCH_VAR' }, prefix, spool: { dir: path.join(dir, 'spool') }, archive: { dir: path.join(dir, 'archive') } });
  return bullmqSink.init(config, contextFor(new AbortController().signal));
}

/** Writes one after another, as the station's lane for a background sink does. */
async function writes(s: SinkInstance, n: number): Promise<{ perSecond: number; p50Ms: number; p99Ms: number; statuses: Record<string, number> }> {
  const ctx = contextFor(new AbortController().signal);
  const image = frameOf().image;
  const h = new Histogram();
  const statuses: Record<string, number> = {};
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    // a fail every tenth part: a sample job and an archived image too
    const r = i % 10 === 0 ? sampleResult({ sequence: i }) : sampleResult({ sequence: i, verdict: 'pass', rejectCode: 0, reasons: [], defects: [] });
    const t = performance.now();
    const status = (await s.write(r, ctx, image)) ?? 'delivered';
    h.record(performance.now() - t);
    statuses[status] = (statuses[status] ?? 0) + 1;
  }
  return { perSecond: r2(n / ((performance.now() - t0) / 1000)), p50Ms: r2(h.quantile(0.5)), p99Ms: r2(h.quantile(0.99)), statuses };
}

/** The critical path (a test PLC sink) with and without a queue sink whose Redis is away. */
async function criticalPath(withQueue: boolean, dir: string, prefix: string): Promise<{ fps: number; p50: number; p99: number }> {
  process.env.LG_BENCH_REDIS = AWAY;
  const station = new Station(
    compileStation(
      {
        station: { id: 'bench-queue', maxInFlight: 1, queueSize: 2 },
        source: { name: 'cam', use: 'core/folder-source@1', config: { dir: 'fixtures/casting', loop: true } },
        stages: [
          { name: 'work', use: 'test/stage@1', config: {} },
          { name: 'verdict', use: 'test/decide@1', config: {} },
        ],
        sinks: [
          { name: 'plc', use: 'test/sink@1', critical: true, config: {} },
          ...(withQueue ? [{ name: 'queue', use: 'core/bullmq@1', config: { redis: { urlEnv: 'LG_BENCH_REDIS' }, prefix, spool: { dir: path.join(dir, 'station-spool') }, archive: { dir: path.join(dir, 'station-archive'), images: 'all' } } }] : []),
        ],
      },
      path.join(ROOT, 'stations/bench.yaml'),
      testRegistry(),
    ),
    log,
  );
  const s = await station.run({ maxFrames: 2000 });
  await station.close();
  return { fps: s.fps, p50: s.latencyMs.p50, p99: s.latencyMs.p99 };
}

/**
 * core/bullmq@1: writes with Redis up (delivered), with Redis away (spooled,
 * fsync'd), the drain of that spool when Redis is back, and what a queue sink
 * with Redis away costs the critical path of a station.
 */
export async function benchQueue(n: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lg-bench-queue-'));
  const prefix = uniquePrefix();
  try {
    const up = await sink(UP, prefix, path.join(dir, 'a'));
    const delivered = await writes(up, n);
    await up.flush?.();
    await up.close?.();

    const away = await sink(AWAY, prefix, path.join(dir, 'b'));
    const spooled = await writes(away, n);
    await away.close?.();
    const before = (await jobsOf(prefix, 'results')).length;
    const t0 = performance.now();
    const back = await sink(UP, prefix, path.join(dir, 'b'));
    while ((await jobsOf(prefix, 'results')).length < before + n) await new Promise((r) => setTimeout(r, 20));
    const drainMs = performance.now() - t0;
    await back.close?.();

    await criticalPath(false, dir, prefix); // warm-up
    const without = await criticalPath(false, dir, prefix);
    const withQueue = await criticalPath(true, dir, prefix);
    return {
      writes: n,
      delivered,
      spooled,
      drain: { records: n, ms: Math.round(drainMs), perSecond: r2(n / (drainMs / 1000)) },
      criticalPath: { without, withQueueRedisAway: withQueue },
      ratios: {
        spooledVsDeliveredWritesPerSecond: r2(spooled.perSecond / delivered.perSecond),
        criticalP99WithQueueVsWithout: r2(withQueue.p99 / without.p99),
        criticalFpsWithQueueVsWithout: r2(withQueue.fps / without.fps),
      },
    };
  } finally {
    await dropPrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  }
}
