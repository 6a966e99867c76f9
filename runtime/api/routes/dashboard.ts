import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { LinegateError, messageOf } from '../../errors.js';
import type { HistoryReader } from '../../history.js';
import type { InspectionResult, Verdict } from '../../result.js';
import type { ApiContext } from '../context.js';
import { defineRoute, type RouteReply, type RouteSpec } from '../route.js';
import { ErrorBody, NoQuery, SummaryBody } from '../schemas.js';
import { readyBody } from './health.js';

/*
 * The station's dashboard: static front-end files (runtime/api/dashboard/, plain ES modules, no
 * build step) and GET /api/summary, the aggregates the page would otherwise have to pull thousands
 * of results for. Everything the page loads comes from this server: its CSP allows only 'self'.
 */

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};
/** Flat folder, plain names: each file is a route of its own, so a request names a route, never a path. */
const ASSET_NAME = /^[a-z0-9][a-z0-9-]*\.(html|js|css|svg)$/;
const HEADERS: Readonly<Record<string, string>> = {
  // no-cache: revalidated on every load, so a station upgraded in place serves its new page at once.
  'cache-control': 'no-cache',
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

interface Asset {
  readonly bytes: Buffer;
  readonly contentType: string;
}

/**
 * The front-end folder. From the sources (tsx, vitest) it is beside this file's folder; from the
 * build (dist/runtime/api/routes/) it is the same folder of the sources, which ship with the build:
 * serving it from there means an edited page is never hidden behind a stale copy in dist/.
 */
export function dashboardDir(here: string = import.meta.dirname): string | undefined {
  const candidates = [path.resolve(here, '../dashboard'), path.resolve(here, '../../../../runtime/api/dashboard')];
  return candidates.find((d) => existsSync(path.join(d, 'index.html')));
}

/** Every servable file of the folder, read once (a few small files): the allow-list the routes answer from. */
export function loadAssets(dir: string | undefined): ReadonlyMap<string, Asset> {
  const out = new Map<string, Asset>();
  if (dir === undefined) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isFile() || !ASSET_NAME.test(e.name)) continue;
    out.set(e.name, { bytes: readFileSync(path.join(dir, e.name)), contentType: TYPES[path.extname(e.name)]! });
  }
  return out;
}

const KIND: Readonly<Record<string, string>> = { '.js': 'script', '.css': 'style sheet', '.svg': 'icon', '.html': 'page' };
const notFound = { description: 'the dashboard files are not installed', schema: ErrorBody };

/**
 * GET / (the page), one GET /dashboard/<file> per file of the folder (the route table is the
 * allow-list: a path that names no file never reaches a handler), and GET /api/summary.
 */
export function dashboardRoutes(c: ApiContext, dir: string | undefined = dashboardDir()): RouteSpec[] {
  let assets: ReadonlyMap<string, Asset>;
  try {
    assets = loadAssets(dir);
  } catch (e) {
    // The API (health, results) is worth more than the page: serve it without one, and say why.
    c.log.warn({ dir, err: messageOf(e) }, 'the dashboard files cannot be read: GET / answers 404');
    assets = new Map();
  }
  if (!assets.has('index.html')) c.log.warn({ dir }, 'the dashboard files are not installed: GET / answers 404');
  const serve = (name: string) => async (): Promise<RouteReply> => {
    const a = assets.get(name);
    if (a === undefined) throw new LinegateError('LG_ERR_API_NOT_FOUND', [`the dashboard is not installed (no ${name} in ${dir ?? 'runtime/api/dashboard'})`]);
    return { status: 200, bytes: a.bytes, contentType: a.contentType, headers: HEADERS };
  };
  const files = [...assets.entries()].filter(([name]) => name !== 'index.html');
  const tally = new WindowTally();
  return [
    defineRoute({
      method: 'GET',
      url: '/',
      summary: "The station's dashboard (operator, quality and IT lenses); never needs a token, the data it reads follows api.auth.",
      access: 'open',
      query: NoQuery,
      responses: { 200: { description: 'the page', contentType: 'text/html' }, 404: notFound },
      handle: serve('index.html'),
    }),
    ...files.map(([name, a]) =>
      defineRoute({
        method: 'GET',
        url: `/dashboard/${name}`,
        summary: `The dashboard's ${KIND[path.extname(name)] ?? 'file'} ${name}.`,
        access: 'open',
        query: NoQuery,
        responses: { 200: { description: name, contentType: a.contentType.split(';')[0]! } },
        handle: serve(name),
      }),
    ),
    defineRoute({
      method: 'GET',
      url: '/api/summary',
      summary: "The dashboard's aggregates over the last hour (yield over time, reject Pareto, latency histogram against the cycle budget, thresholds) with the health record, lane depths and memory.",
      access: 'read',
      query: NoQuery,
      responses: { 200: { description: 'the summary', schema: SummaryBody }, 401: { description: 'token needed (api.auth: all)', schema: ErrorBody } },
      handle: async () => ({ status: 200, json: await summary(c, tally) }),
    }),
  ];
}

async function summary(c: ApiContext, tally: WindowTally): Promise<SummaryBody> {
  const now = Date.now();
  await tally.refresh(c.history, now);
  const s = c.station.plan.settings;
  const mem = process.memoryUsage();
  return {
    station: { id: s.id, ...(s.name === undefined ? {} : { name: s.name }), ...(s.line === undefined ? {} : { line: s.line }), cycleBudgetMs: s.cycleBudgetMs, ...(s.hierarchy === undefined ? {} : { hierarchy: s.hierarchy }) },
    generatedAt: new Date(now).toISOString(),
    ready: await readyBody(c),
    ...tally.aggregate(now, s.cycleBudgetMs),
    lanes: { ...c.station.laneDepths() },
    events: { clients: c.events.clients, dropped: c.events.dropped },
    process: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, heapTotalBytes: mem.heapTotal, uptimeS: Math.round((now - c.startedAt) / 1000) },
  };
}

/** What the summary keeps of a result: a few numbers and strings, not the record. */
interface Row {
  readonly id: string;
  readonly at: number;
  readonly verdict: Verdict;
  readonly rejectCode: number;
  readonly code: string;
  readonly labels: readonly string[];
  readonly ms: number;
}

const WINDOW_MS = 60 * 60_000;
/** Results reach the history through a background lane: one decided a little earlier may land after a later one. */
const OVERLAP_MS = 30_000;
/** An hour at 10 parts/s is 36 000 rows of ~100 bytes: bounded even for a much faster line. */
const MAX_ROWS = 50_000;
/** Small pages: the history reads synchronously, and a page of records is parsed in one go on the station's event loop. */
const PAGE = 100;
const BUCKETS_S = [10, 30, 60, 120, 300];
const MAX_BUCKETS = 40;

type Aggregates = Pick<SummaryBody, 'window' | 'yield' | 'pareto' | 'latency' | 'thresholds'>;

/**
 * The last hour of results as rows, kept between requests: a request reads only what the history
 * got since the one before (plus an overlap), so a dashboard polling every few seconds costs a page
 * of rows, not an hour of records. Refreshes run one at a time.
 */
class WindowTally {
  #rows: Row[] = [];
  readonly #ids = new Set<string>();
  #newest = 0;
  #thresholds: { at: number; values: Record<string, number> } = { at: 0, values: {} };
  /** Rows decided before this were left out for MAX_ROWS. */
  #keptFrom = 0;
  #busy: Promise<void> = Promise.resolve();

  refresh(history: HistoryReader, now: number): Promise<void> {
    const run = this.#busy.then(() => this.#refresh(history, now));
    this.#busy = run.catch(() => undefined);
    return run;
  }

  async #refresh(history: HistoryReader, now: number): Promise<void> {
    const floor = now - WINDOW_MS;
    const since = new Date(Math.max(floor, this.#newest - OVERLAP_MS)).toISOString();
    let cursor: string | undefined;
    let read = 0;
    do {
      const page = await history.query({ since }, cursor === undefined ? { limit: PAGE } : { limit: PAGE, cursor });
      for (const r of page.items) this.#add(r);
      cursor = page.next;
      read += page.items.length;
      // The history reads synchronously: let the frame loop run between pages of a first, long read.
      if (cursor !== undefined) await new Promise((resolve) => setImmediate(resolve));
    } while (cursor !== undefined && read < MAX_ROWS);
    const old = this.#rows.filter((r) => r.at < floor);
    if (old.length > 0 || this.#rows.length > MAX_ROWS) {
      this.#rows.sort((a, b) => a.at - b.at);
      const drop = Math.max(old.length, this.#rows.length - MAX_ROWS);
      for (const r of this.#rows.splice(0, drop)) this.#ids.delete(r.id);
      if (drop > old.length) this.#keptFrom = this.#rows[0]?.at ?? now;
    }
    if (cursor !== undefined) this.#keptFrom = Math.max(this.#keptFrom, this.#rows.reduce((m, r) => Math.min(m, r.at), now));
  }

  #add(r: InspectionResult): void {
    if (this.#ids.has(r.resultId)) return;
    const at = Date.parse(r.time.decidedAt);
    const fired = r.defects.filter((d) => d.rule !== undefined).map((d) => d.label);
    const labels = r.verdict === 'pass' ? [] : [...new Set(fired.length > 0 ? fired : r.defects.slice(0, 1).map((d) => d.label))];
    this.#ids.add(r.resultId);
    this.#rows.push({ id: r.resultId, at, verdict: r.verdict, rejectCode: r.rejectCode, code: r.reasons[0]?.code ?? '(none)', labels, ms: r.timings.totalMs });
    this.#newest = Math.max(this.#newest, at);
    if (r.thresholds !== undefined && at >= this.#thresholds.at) this.#thresholds = { at, values: r.thresholds };
  }

  aggregate(now: number, budgetMs: number): Aggregates {
    const rows = this.#rows;
    const oldest = rows.reduce((m, r) => Math.min(m, r.at), now);
    const bucketS = BUCKETS_S.find((b) => (now - oldest) / 1000 / b <= MAX_BUCKETS) ?? BUCKETS_S.at(-1)!;
    const first = Math.floor(oldest / 1000 / bucketS) * bucketS * 1000;
    const buckets = Array.from({ length: Math.floor((now - first) / 1000 / bucketS) + 1 }, (_, i) => ({ at: new Date(first + i * bucketS * 1000).toISOString(), pass: 0, fail: 0, error: 0 }));
    const counts = { pass: 0, fail: 0, error: 0 };
    const codes = new Map<string, { rejectCode: number; code: string; count: number }>();
    const labels = new Map<string, number>();
    for (const r of rows) {
      counts[r.verdict]++;
      const b = buckets[Math.floor((r.at - first) / 1000 / bucketS)];
      if (b !== undefined) b[r.verdict]++;
      if (r.verdict === 'pass') continue;
      const key = `${r.rejectCode} ${r.code}`;
      const e = codes.get(key) ?? { rejectCode: r.rejectCode, code: r.code, count: 0 };
      e.count++;
      codes.set(key, e);
      for (const l of r.labels) labels.set(l, (labels.get(l) ?? 0) + 1);
    }
    const parts = rows.length;
    return {
      window: { since: new Date(Math.max(oldest, now - WINDOW_MS)).toISOString(), until: new Date(now).toISOString(), parts, capped: this.#keptFrom > now - WINDOW_MS, newest: this.#newest === 0 ? null : new Date(this.#newest).toISOString() },
      yield: { ...counts, rate: parts === 0 ? null : counts.pass / parts, bucketS, buckets: buckets.slice(-MAX_BUCKETS - 1) },
      pareto: {
        byCode: [...codes.values()].sort((a, b) => b.count - a.count || a.rejectCode - b.rejectCode).slice(0, 12),
        byLabel: [...labels].map(([label, count]) => ({ label, count })).sort((a, b) => b.count - a.count || (a.label < b.label ? -1 : 1)).slice(0, 12),
      },
      latency: latency(rows.map((r) => r.ms), budgetMs),
      thresholds: { ...this.#thresholds.values },
    };
  }
}

/** Bins on a 1-2-5 scale up to the budget, the budget as the last edge, then one bin past it. */
export function latency(values: readonly number[], budgetMs: number): SummaryBody['latency'] {
  const edges: number[] = [];
  for (let decade = 1; decade < budgetMs; decade *= 10) for (const m of [1, 2, 5]) if (decade * m < budgetMs) edges.push(decade * m);
  edges.push(budgetMs);
  const bins = edges.map((to, i) => ({ fromMs: i === 0 ? 0 : edges[i - 1]!, toMs: to as number | null, count: 0 }));
  bins.push({ fromMs: budgetMs, toMs: null, count: 0 });
  for (const v of values) {
    const i = edges.findIndex((to) => v <= to);
    bins[i < 0 ? bins.length - 1 : i]!.count++;
  }
  // A typed array sorts numbers natively: an hour of parts in a few ms, not tens.
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number | null => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
  return { budgetMs, bins, overBudget: bins.at(-1)!.count, p50Ms: at(0.5), p95Ms: at(0.95), maxMs: sorted.length === 0 ? null : sorted[sorted.length - 1]! };
}
