/**
 * The invariants every fault case checks, whatever the fault: read from what
 * a user sees (the run's summary line, the PLC's report, the JSONL files,
 * Redis itself, the log), never from linegate's insides. Each check names what
 * broke and shows the evidence, so a failing case is a bug report.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import type { InspectionResult } from '../../runtime/result.js';
import type { RunSummary } from '../../runtime/station.js';
import type { SimReport, TriggerRecord } from '../../plugins/opcua-plc/sim.js';
import type { LogLine } from './harness.js';

export interface HealthView {
  readonly status: 'ok' | 'degraded' | 'down';
  readonly state?: string;
  readonly detail?: string;
  readonly frames?: { readonly status: string; readonly detail?: string; readonly data?: Record<string, unknown> };
  readonly steps: Record<string, { readonly status: string; readonly detail?: string; readonly data?: Record<string, unknown> }>;
}

/** `linegate run`'s one stdout line. */
export interface RunLine {
  readonly summary: RunSummary;
  readonly health: HealthView;
}

/** The last JSON line of a process's stdout (the run summary, the plc-sim report), with the output shown when there is none. */
export function lastJsonLine<T>(stdout: string, what: string): T {
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  if (line === undefined) throw new Error(`${what}: no JSON line on stdout; stdout was:\n${stdout.slice(-2000)}`);
  return JSON.parse(line) as T;
}

/** Every frame counted once: pass + fail + error + dropped + undelivered = frames. */
export function expectAccounted(s: RunSummary): void {
  expect(s.pass + s.fail + s.error + s.dropped + s.undelivered, `summary does not add up: ${JSON.stringify(s)}`).toBe(s.frames);
}

/**
 * The PLC's own books: every trigger got exactly one answer for its own part
 * (no echo mismatch, no second answer, no answer outside a trigger, no
 * verdict left over from the previous part), and every trigger is accounted:
 * latched verdicts + time-outs (+ echo mismatches and invalid verdicts, both
 * required to be 0) = triggers. `timeouts` is what the fault explains (0 by default).
 */
export function expectPlcBooks(r: SimReport, o: { timeouts?: number | { max: number } } = {}): void {
  const show = JSON.stringify({ ...r, lastCycles: r.lastCycles.filter((c) => c.outcome !== 'ok' || c.answers !== 1) });
  expect({ echoMismatches: r.echoMismatches, duplicateAnswers: r.duplicateAnswers, strayResults: r.strayResults, staleLatches: r.staleLatches, invalidVerdicts: r.invalidVerdicts, validStuck: r.validStuck }, `PLC saw wrong answers: ${show}`).toEqual({
    echoMismatches: 0,
    duplicateAnswers: 0,
    strayResults: 0,
    staleLatches: 0,
    invalidVerdicts: 0,
    validStuck: 0,
  });
  const t = o.timeouts ?? 0;
  if (typeof t === 'number') expect(r.timeouts, `PLC time-outs: ${show}`).toBe(t);
  else expect(r.timeouts, `PLC time-outs: ${show}`).toBeLessThanOrEqual(t.max);
  const latched = r.verdicts[0] + r.verdicts[1] + r.verdicts[2] + r.verdicts[3];
  expect(latched + r.timeouts + r.echoMismatches + r.invalidVerdicts, `PLC triggers not all accounted: ${show}`).toBe(r.triggers);
  expect(r.verdicts[0], `PLC latched "undefined" (0) verdicts: ${show}`).toBe(0);
  for (const c of r.lastCycles.filter((x) => x.outcome === 'ok')) {
    expect({ partId: c.partId, answers: c.answers, echo: c.echo }, `cycle ${c.partId}/${c.counter}`).toEqual({ partId: c.partId, answers: 1, echo: { partId: c.partId, counter: c.counter } });
  }
}

const VERDICT_CODE = { pass: 1, fail: 2, error: 3 } as const;

/**
 * The PLC's cycles against linegate's results: each cycle the PLC latched is
 * answered by exactly one result for that very trigger (same part id and
 * counter, raised after `since`), delivered to the PLC, with the verdict,
 * reject code and score the PLC latched. A verdict from another part (a stale
 * one with the same part id, after a PLC restart) fails here even when the
 * echo matches.
 */
export function expectCyclesAnsweredByOwnResult(cycles: readonly TriggerRecord[], results: readonly InspectionResult[], since: number, plcSink = 'plc'): void {
  const mine = results.filter((r) => r.trigger !== undefined && Date.parse(r.trigger.raisedAt) >= since);
  for (const c of cycles.filter((x) => x.outcome === 'ok')) {
    const answering = mine.filter((r) => r.partId === c.partId && r.trigger!.counter === c.counter && r.delivery[plcSink]?.status === 'delivered');
    expect(answering.length, `PLC cycle ${c.partId}/${c.counter} (latched verdict ${c.verdict}, code ${c.rejectCode}) is answered by ${answering.length} delivered results: ${JSON.stringify(answering.map(brief))}`).toBe(1);
    const r = answering[0]!;
    expect({ verdict: VERDICT_CODE[r.verdict], rejectCode: r.rejectCode }, `PLC cycle ${c.partId}/${c.counter} latched what another result said`).toEqual({ verdict: c.verdict, rejectCode: c.rejectCode });
    if (c.score !== undefined && r.verdict !== 'error') {
      const score = r.scores.defect ?? Math.max(0, ...r.defects.map((d) => d.score));
      expect(Math.abs(score - c.score), `PLC cycle ${c.partId}/${c.counter}: latched score ${c.score}, its result's ${score}`).toBeLessThan(1e-4);
    }
  }
  const latched = new Set(cycles.filter((x) => x.outcome === 'ok').map((c) => `${c.partId}/${c.counter}`));
  const delivered = mine.filter((r) => r.delivery[plcSink]?.status === 'delivered');
  const unknown = delivered.filter((r) => !latched.has(`${r.partId}/${r.trigger!.counter}`));
  expect(unknown.map(brief), 'results linegate counts as delivered that the PLC never latched').toEqual([]);
}

/** Every part linegate could not judge is rejected with a code: an `error` verdict always carries 900-999 and a coded reason. */
export function expectUndecidableRejected(results: readonly InspectionResult[]): void {
  const bad = results.filter((r) => r.verdict === 'error' && !(r.rejectCode >= 900 && r.rejectCode <= 999 && r.reasons.some((x) => /^LG_ERR_/.test(x.code))));
  expect(bad.map(brief), 'error verdicts without a 9xx reject code and a coded reason').toEqual([]);
}

/** Lines of every *.jsonl under `dir`; lines that do not parse (torn, interleaved) are returned apart. */
export function readJsonl(dir: string): { results: InspectionResult[]; broken: string[] } {
  const results: InspectionResult[] = [];
  const broken: string[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.jsonl')).sort()) {
    for (const line of readFileSync(path.join(dir, name), 'utf8').split('\n')) {
      if (line === '') continue;
      try {
        results.push(JSON.parse(line) as InspectionResult);
      } catch {
        broken.push(`${name}: ${line.slice(0, 200)}`);
      }
    }
  }
  return { results, broken };
}

/** Keys seen more than once, and the `expected` keys never seen. */
export function onceEach<T>(items: readonly T[], key: (t: T) => string, expected?: readonly string[]): { duplicates: string[]; missing: string[]; extra: string[] } {
  const seen = new Map<string, number>();
  for (const t of items) seen.set(key(t), (seen.get(key(t)) ?? 0) + 1);
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} x${n}`);
  const want = new Set(expected ?? []);
  const missing = expected === undefined ? [] : expected.filter((k) => !seen.has(k));
  const extra = expected === undefined ? [] : [...seen.keys()].filter((k) => !want.has(k));
  return { duplicates, missing, extra };
}

/** Exactly once each, by `key`: no duplicates, and (given `expected`) none missing and none extra. */
export function expectOnceEach<T>(what: string, items: readonly T[], key: (t: T) => string, expected?: readonly string[]): void {
  const { duplicates, missing, extra } = onceEach(items, key, expected);
  expect({ duplicates, missing, extra }, `${what}: not exactly once each (${items.length} items)`).toEqual({ duplicates: [], missing: [], extra: [] });
}

export interface QueuedJob {
  readonly id: string;
  readonly data: InspectionResult;
}

/**
 * Every job of `<prefix>:<queue>` as stored in Redis (job hashes, whatever
 * their state), and the ids in its wait list in order: read with ioredis, not
 * through linegate or BullMQ.
 */
export async function readQueue(url: string, prefix: string, queue = 'results'): Promise<{ jobs: QueuedJob[]; waiting: string[] }> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: true });
  try {
    await redis.connect();
    const base = `${prefix}:${queue}:`;
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${base}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch.filter((k) => /^[0-9a-f-]{36}$/.test(k.slice(base.length))));
    } while (cursor !== '0');
    const jobs: QueuedJob[] = [];
    for (const k of keys) {
      const data = await redis.hget(k, 'data');
      if (data !== null) jobs.push({ id: k.slice(base.length), data: JSON.parse(data) as InspectionResult });
    }
    // BullMQ pushes new jobs on the left of the wait list: reversed, oldest first.
    const waiting = (await redis.lrange(`${base}wait`, 0, -1)).reverse();
    return { jobs, waiting };
  } finally {
    redis.disconnect();
  }
}

/** How many jobs `<prefix>:<queue>` holds (any state), without reading them; 0 when Redis does not answer. */
export async function countJobs(url: string, prefix: string, queue = 'results'): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 1000, lazyConnect: true, retryStrategy: () => null });
  try {
    await redis.connect();
    const base = `${prefix}:${queue}`;
    const [wait, active, paused, completed, failed, delayed, prioritized] = await Promise.all([
      redis.llen(`${base}:wait`),
      redis.llen(`${base}:active`),
      redis.llen(`${base}:paused`),
      redis.zcard(`${base}:completed`),
      redis.zcard(`${base}:failed`),
      redis.zcard(`${base}:delayed`),
      redis.zcard(`${base}:prioritized`),
    ]);
    return wait + active + paused + completed + failed + delayed + prioritized;
  } catch {
    return 0;
  } finally {
    redis.disconnect();
  }
}

/**
 * The RSS any station process of the suite may reach: about twice what the casting station with a
 * PLC link, a queue sink and onnxruntime takes here (~150-250 MiB). A decompression bomb decoded,
 * or a minute of dropped frames each holding its image, goes far past it.
 */
export const RSS_MAX_MIB = 512;

/**
 * RSS stays bounded: never above `maxMiB`, and no steady climb: the median of
 * the last quarter of the samples is at most `growth` times the median of the
 * second quarter (after start-up and warm-up).
 */
export function expectRssBounded(samples: readonly { at: number; kib: number }[], o: { maxMiB: number; growth?: number; minSamples?: number }): void {
  expect(samples.length, 'too few RSS samples: the process was hardly seen running').toBeGreaterThanOrEqual(o.minSamples ?? 4);
  const mib = samples.map((s) => s.kib / 1024);
  const max = Math.max(...mib);
  const show = `RSS MiB over the run: ${summariseRss(mib)}`;
  expect(max, show).toBeLessThan(o.maxMiB);
  if (o.growth !== undefined && mib.length >= 20) {
    const q = Math.floor(mib.length / 4);
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const early = median(mib.slice(q, 2 * q));
    const late = median(mib.slice(3 * q));
    expect(late / early, `RSS keeps climbing: ${show}`).toBeLessThan(o.growth);
  }
}

function summariseRss(mib: readonly number[]): string {
  const step = Math.max(1, Math.floor(mib.length / 12));
  return mib
    .filter((_, i) => i % step === 0)
    .map((v) => v.toFixed(0))
    .join(' ');
}

/** Log lines at warn or above (level >= 40) within [from, to] (epoch ms), optionally only those matching `re`. */
export function alarms(log: readonly LogLine[], o: { from?: number; to?: number; re?: RegExp } = {}): LogLine[] {
  return log.filter((l) => l.level >= 40 && l.time >= (o.from ?? 0) && l.time <= (o.to ?? Infinity) && (o.re === undefined || o.re.test(JSON.stringify(l))));
}

/** A result in a line of evidence. */
export function brief(r: InspectionResult): Record<string, unknown> {
  return {
    partId: r.partId,
    sequence: r.sequence,
    trigger: r.trigger === undefined ? undefined : `${r.trigger.counter}@${r.trigger.raisedAt}`,
    verdict: r.verdict,
    rejectCode: r.rejectCode,
    reasons: r.reasons.map((x) => x.code),
    delivery: Object.fromEntries(Object.entries(r.delivery).map(([k, d]) => [k, d.error === undefined ? d.status : `${d.status} ${d.error.slice(0, 80)}`])),
  };
}
