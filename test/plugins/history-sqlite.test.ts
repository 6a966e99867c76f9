import { statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { PluginContext, SinkInstance } from '../../runtime/contract.js';
import { uuidv7 } from '../../runtime/execute/outcome.js';
import type { HistoryFilter, HistoryReader } from '../../runtime/history.js';
import { historyFileName } from '../../runtime/history-file.js';
import { InspectionResult } from '../../runtime/result.js';
import { historyReaderFactory } from '../../runtime/registry/builtins.js';
import { historySink } from '../../plugins/history-sqlite/index.js';
import { pageQuery } from '../../plugins/history-sqlite/reader.js';
import { HistorySink } from '../../plugins/history-sqlite/sink.js';
import { HistoryWriter } from '../../plugins/history-sqlite/writer.js';
import { contextFor, sampleResult } from '../helpers/samples.js';
import { capturingLog, silentLog, stationFrom } from '../helpers/station.js';
import { testRoot } from '../helpers/roots.js';

const DAY_MS = 86_400_000;
/** A day ago, to the second: inside every retention the sinks run at their start. */
const T0 = Math.floor(Date.now() / 1000) * 1000 - DAY_MS;

/** Result i, decided i seconds after T0: every third fails on a crack, every fifth is an error. */
function result(i: number, o: { at?: number; part?: string; pad?: number } = {}): InspectionResult {
  const at = new Date(o.at ?? T0 + i * 1000).toISOString();
  const kind = i % 5 === 0 ? 'error' : i % 3 === 0 ? 'fail' : 'pass';
  return sampleResult({
    resultId: uuidv7(Date.parse(at)),
    partId: o.part ?? `part-${i}`,
    sequence: i,
    time: { capturedAt: at, decidedAt: at },
    station: { id: 'hist-01' },
    verdict: kind,
    rejectCode: kind === 'pass' ? 0 : kind === 'fail' ? 3 : 906,
    reasons: kind === 'pass' ? [] : kind === 'fail' ? [{ code: 'crack-rule', message: 'crack', rejectCode: 3 }] : [{ code: 'LG_ERR_IMAGE_DECODE', message: 'bad image' }],
    defects: kind === 'fail' ? [{ label: 'crack', score: 0.9, rule: 'crack-rule' }, ...(i % 2 === 0 ? [{ label: 'pit', score: 0.4 }] : [])] : [],
    scores: o.pad === undefined ? {} : { pad: 0, ...Object.fromEntries(Array.from({ length: o.pad }, (_, k) => [`s${k}`, k / o.pad!])) },
    model: { name: 'casting-cls', version: '1', sha256: 'a'.repeat(64) },
  });
}

const open: (SinkInstance | HistoryReader | HistoryWriter)[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) await ('dead' in o ? o.close(2000) : o.close?.());
});

function ctxAt(root: string): PluginContext {
  return { ...contextFor(new AbortController().signal, root), stationId: 'hist-01', step: 'history' };
}

async function sinkAt(root: string, config: Record<string, unknown> = {}): Promise<SinkInstance> {
  const sink = await historySink.init(historySink.manifest.config.parse(config), ctxAt(root));
  open.push(sink);
  return sink;
}

async function readerOf(file: string): Promise<HistoryReader> {
  const r = await historyReaderFactory(file);
  open.push(r);
  return r;
}

/** Every page of a query, following the cursor. */
async function all(reader: HistoryReader, filter: HistoryFilter, limit = 7): Promise<InspectionResult[]> {
  const out: InspectionResult[] = [];
  let cursor: string | undefined;
  do {
    const page = await reader.query(filter, { limit, ...(cursor === undefined ? {} : { cursor }) });
    out.push(...page.items);
    cursor = page.next;
  } while (cursor !== undefined);
  return out;
}

const newestFirst = (rs: readonly InspectionResult[]): string[] => [...rs].sort((a, b) => (a.time.decidedAt < b.time.decidedAt ? 1 : -1)).map((r) => r.resultId);

async function writeAll(sink: SinkInstance, rs: readonly InspectionResult[], ctx: PluginContext): Promise<void> {
  // As a lane drains: the count behind each write, the last one with none.
  for (const [i, r] of rs.entries()) await sink.write(r, ctx, undefined, { behind: rs.length - 1 - i });
}

describe('core/history@1 and its reader', () => {
  it('finds results by part, verdict, reason code, reject code, label and time, newest first, on every page', async () => {
    const root = testRoot();
    const sink = await sinkAt(root);
    const rs = Array.from({ length: 60 }, (_, i) => result(i, { part: `part-${i % 20}` }));
    await writeAll(sink, rs, ctxAt(root));
    const reader = await readerOf(historyFileName(root, 'var/history', 'hist-01'));
    const cases: [HistoryFilter, (r: InspectionResult) => boolean][] = [
      [{}, () => true],
      [{ partId: 'part-3' }, (r) => r.partId === 'part-3'],
      [{ verdict: 'fail' }, (r) => r.verdict === 'fail'],
      [{ verdict: 'error' }, (r) => r.verdict === 'error'],
      [{ code: 'crack-rule' }, (r) => r.reasons.some((x) => x.code === 'crack-rule')],
      [{ code: 'LG_ERR_IMAGE_DECODE' }, (r) => r.reasons.some((x) => x.code === 'LG_ERR_IMAGE_DECODE')],
      [{ rejectCode: 906 }, (r) => r.rejectCode === 906],
      [{ label: 'pit' }, (r) => r.defects.some((d) => d.label === 'pit')],
      [{ code: 'crack-rule', label: 'pit' }, (r) => r.defects.some((d) => d.label === 'pit')],
      [{ since: new Date(T0 + 10_000).toISOString(), until: new Date(T0 + 30_000).toISOString() }, (r) => r.sequence >= 10 && r.sequence < 30],
      [{ verdict: 'fail', partId: 'part-13', since: new Date(T0 + 20_000).toISOString() }, (r) => r.verdict === 'fail' && r.partId === 'part-13' && r.sequence >= 20],
      [{ partId: 'no-such-part' }, () => false],
    ];
    for (const [filter, want] of cases) {
      const expected = newestFirst(rs.filter(want));
      expect(expected.length > 0 || filter.partId === 'no-such-part', JSON.stringify(filter)).toBe(true);
      expect((await all(reader, filter)).map((r) => r.resultId), JSON.stringify(filter)).toEqual(expected);
    }
    expect(await reader.get(rs[7]!.resultId)).toEqual(rs[7]);
    expect(await reader.get(uuidv7())).toBeUndefined();
    expect(await reader.stats()).toMatchObject({ rows: 60, oldest: rs[0]!.time.decidedAt, newest: rs[59]!.time.decidedAt, bytes: expect.any(Number) });
  });

  it('pages with its cursor without repeating or skipping a result while newer ones are inserted between pages', async () => {
    const root = testRoot();
    const sink = await sinkAt(root);
    const ctx = ctxAt(root);
    const first = Array.from({ length: 25 }, (_, i) => result(i));
    await writeAll(sink, first, ctx);
    const reader = await readerOf(historyFileName(root, 'var/history', 'hist-01'));
    const seen: string[] = [];
    let cursor: string | undefined;
    let n = 100;
    do {
      const page = await reader.query({}, { limit: 6, ...(cursor === undefined ? {} : { cursor }) });
      seen.push(...page.items.map((r) => r.resultId));
      cursor = page.next;
      await writeAll(sink, [result(n++)], ctx); // newer than anything paged
    } while (cursor !== undefined);
    expect(seen).toEqual(newestFirst(first));
    expect((await reader.stats()).rows).toBe(25 + (n - 100));
  });

  it('refuses a cursor it did not give out, a bad instant and a limit out of range with LG_ERR_HISTORY_QUERY', async () => {
    const root = testRoot();
    await writeAll(await sinkAt(root), [result(1)], ctxAt(root));
    const reader = await readerOf(historyFileName(root, 'var/history', 'hist-01'));
    await expect(reader.query({}, { limit: 5, cursor: 'not-a-cursor' })).rejects.toMatchObject({ code: 'LG_ERR_HISTORY_QUERY' });
    await expect(reader.query({ since: 'yesterday' }, { limit: 5 })).rejects.toMatchObject({ code: 'LG_ERR_HISTORY_QUERY' });
    await expect(reader.query({}, { limit: 0 })).rejects.toMatchObject({ code: 'LG_ERR_HISTORY_QUERY' });
  });

  it('reads every filter from an index in paging order, never sorting what matched', async () => {
    const root = testRoot();
    await writeAll(await sinkAt(root), [result(1)], ctxAt(root));
    const db = new Database(historyFileName(root, 'var/history', 'hist-01'), { readonly: true });
    try {
      const after = [new Date(T0).toISOString(), 'x'] as const;
      for (const f of [{}, { partId: 'p' }, { verdict: 'fail' }, { rejectCode: 3 }, { code: 'c' }, { label: 'l' }, { code: 'c', label: 'l', verdict: 'fail' }, { since: after[0] }] as HistoryFilter[]) {
        const { sql, params } = pageQuery(f, after, 10);
        const plan = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[];
        const text = plan.map((p) => p.detail).join(' | ');
        expect(text, JSON.stringify(f)).not.toMatch(/TEMP B-TREE/);
        expect(text, JSON.stringify(f)).toMatch(/USING (COVERING )?INDEX|USING PRIMARY KEY/);
      }
    } finally {
      db.close();
    }
  });

  it('commits a lane batch in one go: writes with results behind them are pending until the one that empties the lane', async () => {
    const root = testRoot();
    const sink = await sinkAt(root, { batchSize: 100 });
    const ctx = ctxAt(root);
    const reader = await readerOf(historyFileName(root, 'var/history', 'hist-01'));
    expect(await sink.write(result(1), ctx, undefined, { behind: 2 })).toBe('pending');
    expect(await sink.write(result(2), ctx, undefined, { behind: 1 })).toBe('pending');
    expect((await reader.stats()).rows).toBe(0);
    expect(await sink.write(result(3), ctx, undefined, { behind: 0 })).toBe('delivered');
    expect((await reader.stats()).rows).toBe(3);
  });

  it('keeps one row for a result written again (a part inspected again after a crash keeps its result id), across a restart', async () => {
    const root = testRoot();
    const r = result(5); // an error verdict: one reason code
    const sink = await sinkAt(root);
    await sink.write(r, ctxAt(root));
    await sink.write(r, ctxAt(root));
    await sink.close?.();
    const again = await sinkAt(root);
    await again.write(r, ctxAt(root));
    const reader = await readerOf(historyFileName(root, 'var/history', 'hist-01'));
    expect((await reader.stats()).rows).toBe(1);
    expect(await all(reader, { code: 'LG_ERR_IMAGE_DECODE' })).toHaveLength(1);
    expect(again.health?.()).toMatchObject({ status: 'ok', data: { written: 0 } });
  });

  it('deletes results past maxAgeDays, with their codes and labels, and keeps the rest', async () => {
    const root = testRoot();
    const file = path.join(root, 'h.sqlite');
    const sink = new HistorySink({ file, step: 'history', pluginId: 'core/history@1', maxAgeDays: 30, maxBytes: 0, batchSize: 50, retentionEveryMs: 3_600_000, closeMs: 5000, log: silentLog });
    open.push(sink);
    await sink.start();
    const now = T0 + 100 * DAY_MS;
    const old = Array.from({ length: 30 }, (_, i) => result(i * 3, { at: now - 40 * DAY_MS + i * 1000 })); // every one fails (i*3)
    const recent = Array.from({ length: 10 }, (_, i) => result(i * 3 + 1, { at: now - DAY_MS + i * 1000 }));
    await writeAll(sink, [...old, ...recent], ctxAt(root));
    const run = await sink.retain(now);
    expect(run).toMatchObject({ byAge: 30, bySize: 0 });
    const reader = await readerOf(file);
    expect((await all(reader, {})).map((r) => r.resultId)).toEqual(newestFirst(recent));
    expect(await all(reader, { label: 'crack' })).toEqual([]);
    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT (SELECT count(*) FROM result_codes) + (SELECT count(*) FROM result_labels) AS n').get()).toEqual({ n: recent.filter((r) => r.verdict !== 'pass').length });
    db.close();
    expect(sink.health()).toMatchObject({ status: 'ok', data: { retention: { byAge: 30 } } });
  });

  it('deletes the oldest results past maxMiB, down to 90 %, and gives the space back to the file system', async () => {
    const root = testRoot();
    const file = path.join(root, 'h.sqlite');
    const maxBytes = 2 * 1024 * 1024;
    const sink = new HistorySink({ file, step: 'history', pluginId: 'core/history@1', maxAgeDays: 365, maxBytes, batchSize: 500, retentionEveryMs: 3_600_000, closeMs: 5000, log: silentLog });
    await sink.start();
    const rs = Array.from({ length: 3000 }, (_, i) => result(i, { pad: 60 })); // ~2.5 kB each
    await writeAll(sink, rs, ctxAt(root));
    const run = await sink.retain(T0 + DAY_MS);
    expect(run!.bySize).toBeGreaterThan(0);
    expect(run!.byAge).toBe(0);
    expect(run!.usedBytes).toBeLessThanOrEqual(maxBytes * 0.9);
    await sink.close();
    await sink.close();
    // Closed, checkpointed: the file is what the rows use, not its largest size.
    expect(statSync(file).size).toBeLessThanOrEqual(maxBytes);
    const reader = await readerOf(file);
    const kept = await reader.stats();
    expect(kept.rows).toBeLessThan(3000);
    expect(kept.newest).toBe(rs[2999]!.time.decidedAt);
    expect(kept.oldest).toBe(rs[3000 - kept.rows]!.time.decidedAt);
  });

  it('is degraded with LG_ERR_DISK_FULL while the file cannot grow, keeps the rows it could not write, and recovers by itself', async () => {
    const root = testRoot();
    const file = path.join(root, 'h.sqlite');
    const { log, entries } = capturingLog();
    const sink = new HistorySink({
      file,
      step: 'history',
      pluginId: 'core/history@1',
      maxAgeDays: 365,
      maxBytes: 0,
      batchSize: 10,
      retentionEveryMs: 3_600_000,
      closeMs: 5000,
      log,
      // A file that may not grow past 40 pages: SQLite says SQLITE_FULL, as it does on a full disk.
      open: (f) => HistoryWriter.open({ file: f, maxPageCount: 40 }),
    });
    open.push(sink);
    await sink.start();
    const ctx = ctxAt(root);
    let failure: unknown;
    let refused = result(0);
    for (let i = 0; i < 500 && failure === undefined; i++) {
      refused = result(i, { pad: 40 });
      failure = await sink.write(refused, ctx).then(() => undefined, (e: unknown) => e);
    }
    expect(failure).toMatchObject({ code: 'LG_ERR_DISK_FULL' });
    expect(sink.health()).toMatchObject({ status: 'degraded', data: { code: 'LG_ERR_DISK_FULL', uncommitted: 1 } });
    // Room again (rows deleted by another connection free pages within the limit): the next write takes the held row with it.
    const db = new Database(file);
    db.prepare('DELETE FROM results WHERE seq <= 20').run();
    db.close();
    await expect(sink.write(result(1000, { pad: 40 }), ctx)).resolves.toBe('delivered');
    expect(sink.health()).toMatchObject({ status: 'ok', data: { uncommitted: 0, lost: 0 } });
    const reader = await readerOf(file);
    expect(await reader.get(refused.resultId)).toEqual(refused);
    // Write faults are thrown to the station, which logs its sink's failing state once: none at warn from here.
    expect(entries().filter((e) => /history/.test(e.msg ?? '') && e.level >= 40)).toEqual([]);
  });
});

describe('core/history@1 in a station', () => {
  it('is on by default, and a history folder that cannot be made leaves verdicts untouched and health degraded', async () => {
    const root = testRoot();
    writeFileSync(path.join(root, 'var', 'blocked'), 'a file where the folder should be');
    const station = stationFrom(
      {
        station: { id: 'hist-blocked' },
        source: { name: 'cam', use: 'test/source@1', config: { probe: 'hist-blocked', count: 8 } },
        stages: [
          { name: 'work', use: 'test/stage@1', config: { probe: 'hist-blocked' } },
          { name: 'verdict', use: 'test/decide@1', config: { probe: 'hist-blocked' } },
        ],
        sinks: [{ name: 'plc', use: 'test/sink@1', critical: true, config: { probe: 'hist-blocked' } }],
        history: { dir: 'var/blocked/history' },
      },
      silentLog,
      root,
    );
    const summary = await station.run();
    expect(summary).toMatchObject({ frames: 8, undelivered: 0 });
    expect(summary.pass + summary.fail).toBe(8);
    expect(station.health().steps.history).toMatchObject({ status: 'degraded', detail: expect.stringContaining('LG_ERR_HISTORY_WRITE') });
    await station.close();
  });

  it('writes every result of a run to <root>/var/history/<station>.sqlite', async () => {
    const root = testRoot();
    const station = stationFrom(
      {
        station: { id: 'hist-on' },
        source: { name: 'cam', use: 'test/source@1', config: { probe: 'hist-on', count: 12 } },
        stages: [
          { name: 'work', use: 'test/stage@1', config: { probe: 'hist-on' } },
          { name: 'verdict', use: 'test/decide@1', config: { probe: 'hist-on' } },
        ],
        sinks: [{ name: 'plc', use: 'test/sink@1', critical: true, config: { probe: 'hist-on' } }],
      },
      silentLog,
      root,
    );
    await station.run();
    await station.close();
    const reader = await readerOf(path.join(root, 'var/history/hist-on.sqlite'));
    const rows = await all(reader, {}, 100);
    expect(rows).toHaveLength(12);
    for (const r of rows) expect(InspectionResult.safeParse(r).success).toBe(true);
  });
});

