import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { compileStation } from '../runtime/compile/compile.js';
import { loadDataFile } from '../runtime/config/load.js';
import { builtinRegistry } from '../runtime/registry/builtins.js';
import { Station } from '../runtime/station.js';
import { ROOT } from '../test/helpers/station.js';
import { benchRedis } from './pipeline.js';

const MiB = 1024 * 1024;
const r1 = (v: number): number => Math.round(v * 10) / 10;
const r2 = (v: number): number => Math.round(v * 100) / 100;

export interface SoakOptions {
  /** Frames after the warm-up: the growth is measured over these. */
  readonly frames: number;
  readonly warmup: number;
  /** A memory sample every this many frames. */
  readonly every: number;
}

interface Sample {
  readonly frames: number;
  readonly s: number;
  /** After a full GC: garbage not yet collected is not a leak. */
  readonly rssMb: number;
  readonly heapMb: number;
  readonly externalMb: number;
  readonly arrayBuffersMb: number;
  /** Linux: the RSS split into anonymous memory (heaps, malloc arenas) and mapped files (code of the native libraries). */
  readonly anonMb?: number;
  readonly fileMb?: number;
  /** Bytes the queue sink's spool holds that Redis has not taken. */
  readonly spoolPendingKb: number;
  /** Parts waiting for a slot, and parts waiting for the durable sinks. */
  readonly queued: number;
  readonly settling: number;
}

/** RssAnon and RssFile from /proc/self/status, where there is one. */
function rssSplit(): { anonMb?: number; fileMb?: number } {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const kb = (k: string): number | undefined => {
      const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status);
      return m === null ? undefined : Number(m[1]);
    };
    const anon = kb('RssAnon');
    const file = kb('RssFile');
    return anon === undefined || file === undefined ? {} : { anonMb: r1(anon / 1024), fileMb: r1(file / 1024) };
  } catch {
    return {};
  }
}

/** A full, synchronous GC, so that a sample measures what is kept, not what is not collected yet. */
function fullGc(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (() => void) | undefined;
  return typeof gc === 'function' ? () => gc() : () => undefined;
}

/** How the RSS curve after the warm-up behaves: the second half's slope against the first's. */
function shape(curve: readonly Sample[], start: Sample): { firstHalfMbPer10k: number; secondHalfMbPer10k: number; verdict: string } {
  const after = curve.filter((c) => c.frames >= start.frames);
  const mid = after[Math.floor(after.length / 2)]!;
  const end = after.at(-1)!;
  const slope = (a: Sample, b: Sample): number => (b.frames === a.frames ? 0 : ((b.rssMb - a.rssMb) / (b.frames - a.frames)) * 10_000);
  const first = slope(start, mid);
  const second = slope(mid, end);
  const growth = (end.rssMb - start.rssMb) / start.rssMb;
  const verdict = Math.abs(growth) < 0.02 ? 'flat' : second <= Math.max(0.25 * first, 0.5) ? 'levels off' : 'still growing';
  return { firstHalfMbPer10k: r2(first), secondHalfMbPer10k: r2(second), verdict };
}

/**
 * The casting station (stations/casting.yaml: decode, model, decoder, rules,
 * JSONL) with the queue sink added (core/bullmq@1 with its defaults: fsync'd
 * spool, archive of sampled images) and its folder source looped, for
 * `warmup + frames` frames. RSS after a full GC every `every` frames; the
 * growth is from the end of the warm-up to the last frame. The warm-up must
 * outlast the start-up peak: RSS climbs to ~255 MB in the first ~1000 frames
 * (the durable-sink back-pressure fills to its 256 parts) and falls back to
 * ~220 MB by frame ~3000 as the allocators return memory. Writes
 * bench/results/soak.json.
 */
export async function benchSoak(o: SoakOptions): Promise<Record<string, unknown>> {
  const gc = fullGc();
  const file = path.join(ROOT, 'stations/casting.yaml');
  const { data } = await loadDataFile(file);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lg-bench-soak-'));
  const prefix = benchRedis.prefix();
  const spec = data as { source: { config: Record<string, unknown> }; sinks: { name: string; config: Record<string, unknown> }[] };
  spec.source.config = { ...spec.source.config, loop: true };
  // The history is on by default, so the soak keeps it (its thread and SQLite's memory count), in the temp folder.
  (spec as { history?: unknown }).history = { dir: path.join(dir, 'history') };
  spec.sinks = [
    ...spec.sinks.map((s) => (s.name === 'archive' ? { ...s, config: { ...s.config, dir: path.join(dir, 'results') } } : s)),
    {
      name: 'queue',
      use: 'core/bullmq@1',
      config: { prefix, spool: { dir: path.join(dir, 'spool') }, archive: { dir: path.join(dir, 'archive') }, sampling: { goodLabels: ['ok_front'] } },
    } as (typeof spec.sinks)[number],
  ];
  const station = new Station(compileStation(spec, file, builtinRegistry()), pino({ level: 'silent' }));
  const total = o.warmup + o.frames;
  const curve: Sample[] = [];
  let finished = 0;
  let t0 = 0;
  const sample = (): Sample => {
    gc();
    const m = process.memoryUsage();
    const h = station.health();
    const frames = h.frames.data as { queued?: number; settle?: { waiting?: number } } | undefined;
    const queue = h.steps.queue?.data as { pendingBytes?: number } | undefined;
    return {
      frames: finished,
      s: r1((performance.now() - t0) / 1000),
      rssMb: r1(m.rss / MiB),
      heapMb: r1(m.heapUsed / MiB),
      externalMb: r1(m.external / MiB),
      arrayBuffersMb: r1(m.arrayBuffers / MiB),
      ...rssSplit(),
      spoolPendingKb: Math.round((queue?.pendingBytes ?? 0) / 1024),
      queued: frames?.queued ?? 0,
      settling: frames?.settle?.waiting ?? 0,
    };
  };
  // Sampled between parts, from the result event: the GC pause then delays one part, not a measurement.
  station.on('result', () => {
    finished++;
    if (finished % o.every === 0 || finished === o.warmup) curve.push(sample());
  });
  let summary;
  let verdicts: Record<string, number> = {};
  try {
    await station.start();
    t0 = performance.now();
    curve.push(sample());
    summary = await station.run({ maxFrames: total });
    verdicts = { pass: summary.pass, fail: summary.fail, error: summary.error, dropped: summary.dropped, undelivered: summary.undelivered };
    if (curve.at(-1)!.frames !== finished) curve.push(sample());
  } finally {
    await station.close();
    await benchRedis.drop(prefix);
    rmSync(dir, { recursive: true, force: true });
  }
  const seconds = (performance.now() - t0) / 1000;
  const start = curve.find((c) => c.frames >= o.warmup) ?? curve[0]!;
  const end = curve.at(-1)!;
  const result = { frames: total, rssStartMb: start.rssMb, rssEndMb: end.rssMb, growthPct: r2(((end.rssMb - start.rssMb) / start.rssMb) * 100) };
  mkdirSync(path.join(import.meta.dirname, 'results'), { recursive: true });
  writeFileSync(path.join(import.meta.dirname, 'results', 'soak.json'), `${JSON.stringify(result)}\n`);
  return {
    ...result,
    warmupFrames: o.warmup,
    measuredFrames: end.frames - start.frames,
    seconds: Math.round(seconds),
    fps: r2(total / seconds),
    verdicts,
    peakRssMb: Math.max(...curve.map((c) => c.rssMb)),
    heapGrowthMb: r1(end.heapMb - start.heapMb),
    ...(end.anonMb === undefined || start.anonMb === undefined ? {} : { anonGrowthMb: r1(end.anonMb - start.anonMb), fileGrowthMb: r1(end.fileMb! - start.fileMb!) }),
    externalGrowthMb: r1(end.externalMb - start.externalMb),
    curve: { ...shape(curve, start), samples: curve },
    target: { growthPct: 10, met: result.growthPct < 10 },
  };
}

