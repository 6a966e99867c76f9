import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { EffectiveApiSettings } from '../../runtime/api/context.js';
import { RecentResults } from '../../runtime/api/recent.js';
import { dashboardDir, latency, loadAssets } from '../../runtime/api/routes/dashboard.js';
import { SummaryBody } from '../../runtime/api/schemas.js';
import { ApiServer, type InjectResponse } from '../../runtime/api/server.js';
import { uuidv7 } from '../../runtime/execute/outcome.js';
import { InspectionResult } from '../../runtime/result.js';
import type { Station } from '../../runtime/station.js';
import { sampleResult } from '../helpers/samples.js';
import { scratch } from '../helpers/scratch.js';
import { ROOT, silentLog, stationFrom } from '../helpers/station.js';

const DIR = path.join(ROOT, 'runtime/api/dashboard');
const settings: EffectiveApiSettings = { host: '127.0.0.1', port: 0, auth: 'writes', maxUploadMiB: 1 };

let open: { server: ApiServer; station: Station }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.server.close();
    await o.station.close();
  }
  open = [];
});

async function served(history?: RecentResults, id = 'dash-route'): Promise<ApiServer> {
  const station = stationFrom({
    station: { id, cycleBudgetMs: 500, line: 'L7', hierarchy: { site: 'plant-9', area: 'paint', line: 'L7', cell: 'C1' } },
    source: { name: 'cam', use: 'test/source@1', config: { probe: `${id}-src`, count: 0, quietAfter: 0 } },
    stages: [
      { name: 'work', use: 'test/stage@1', config: { probe: id } },
      { name: 'verdict', use: 'test/decide@1', config: { probe: id } },
    ],
    sinks: [{ name: 'queue', use: 'test/sink@1', config: { probe: `${id}-sink` } }],
    history: false,
  });
  await station.start();
  const server = await ApiServer.create({ station, settings, log: silentLog, env: {}, ...(history === undefined ? {} : { history }) });
  open.push({ server, station });
  return server;
}

/** The whole answer to a request line sent as written, dot segments and all. */
function raw(port: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

const code = (r: InjectResponse): string => (r.json() as { error: { code: string } }).error.code;

/** A result decided `secondsAgo` before now (sampleResult's record, every fourth part a crack). */
function result(n: number, secondsAgo: number, o: Partial<InspectionResult> = {}): InspectionResult {
  const at = new Date(Date.now() - secondsAgo * 1000).toISOString();
  const fail = n % 4 === 0;
  return InspectionResult.parse(
    sampleResult({
      resultId: uuidv7(Date.parse(at)),
      station: { id: 'dash-route' },
      partId: `part-${n}`,
      sequence: n,
      time: { capturedAt: at, decidedAt: at },
      source: { step: 'cam', plugin: 'test/source@1', ref: `mem://${n}` },
      frame: { ref: `mem://${n}` },
      verdict: fail ? 'fail' : 'pass',
      rejectCode: fail ? 3 : 0,
      reasons: fail ? [{ code: 'crack-rule', message: 'crack', rejectCode: 3 }] : [],
      defects: fail ? [{ label: 'crack', score: 0.9, rule: 'crack-rule' }, { label: 'dent', score: 0.2 }] : [{ label: 'crack', score: 0.1 }],
      scores: {},
      thresholds: { crack: 0.5, dent: 0.7 },
      timings: { totalMs: 3 + n, stages: {} },
      ...o,
    }),
  );
}

describe('the dashboard static routes', () => {
  it('serves the page at / with its content type, no-cache and a CSP that allows only the station itself', async () => {
    const server = await served();
    const r = await server.inject({ method: 'GET', url: '/' });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.headers['cache-control']).toBe('no-cache');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    const csp = String(r.headers['content-security-policy']);
    expect(csp).toContain("default-src 'self'");
    // every source list names the station only: no host, no scheme, no inline code
    for (const directive of csp.split(';').map((d) => d.trim().split(/\s+/))) {
      for (const value of directive.slice(1)) expect(["'self'", "'none'"], directive.join(' ')).toContain(value);
    }
    expect(r.body.toString()).toBe(readFileSync(path.join(DIR, 'index.html'), 'utf8'));
  });

  it('serves every file the page and its modules refer to, each with its own content type', async () => {
    const server = await served();
    const html = readFileSync(path.join(DIR, 'index.html'), 'utf8');
    const wanted = new Set([...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!));
    for (const file of readdirSync(DIR).filter((f) => f.endsWith('.js'))) {
      for (const m of readFileSync(path.join(DIR, file), 'utf8').matchAll(/^import .* from '\.\/([^']+)';$/gm)) wanted.add(`/dashboard/${m[1]!}`);
    }
    expect(wanted.size).toBeGreaterThan(8);
    const types: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
    for (const url of wanted) {
      const r = await server.inject({ method: 'GET', url });
      expect(r.status, url).toBe(200);
      expect(r.headers['content-type'], url).toBe(types[path.extname(url)]);
      expect(r.headers['cache-control'], url).toBe('no-cache');
      expect(r.body.equals(readFileSync(path.join(DIR, path.basename(url)))), url).toBe(true);
    }
  });

  it('refuses path traversal, encoded or not, and answers 404 for a file that is not in the folder', async () => {
    const server = await served();
    const tries = [
      '/dashboard/../../package.json',
      '/dashboard/..%2f..%2fpackage.json',
      '/dashboard/..%2F..%2F..%2Fpackage.json',
      '/dashboard/%2e%2e/%2e%2e/package.json',
      '/dashboard/%2e%2e%2f%2e%2e%2fpackage.json',
      '/dashboard/%252e%252e%252fpackage.json',
      '/dashboard/..\\..\\package.json',
      '/dashboard/....//....//package.json',
      '/dashboard/app.js%00.png',
      '/dashboard/%2fetc%2fpasswd',
      '/dashboard//etc/passwd',
      '/dashboard/',
      '/dashboard/nope.js',
      '/dashboard/App.js',
      '/dashboard/app.ts',
      '/dashboard/index.html/../../../package.json',
      '/../package.json',
    ];
    for (const url of tries) {
      const r = await server.inject({ method: 'GET', url });
      expect([400, 404], url).toContain(r.status);
      expect(code(r), url).toMatch(/^LG_ERR_API_(NOT_FOUND|BAD_REQUEST)$/);
      const body = r.body.toString();
      expect(body, url).not.toContain('"devDependencies"');
      expect(body, url).not.toContain('root:');
    }
    // inject() normalises dot segments as a browser would; a raw client sends them as written
    await server.listen();
    for (const url of tries) {
      const reply = await raw(server.port, url);
      expect(reply, url).toMatch(/^HTTP\/1\.1 (400|404) /);
      expect(reply, url).not.toContain('"devDependencies"');
    }
  });

  it('takes only plain files with an allowed name into the allow-list: no folder, link, hidden or TypeScript file', () => {
    const dir = scratch('lg-dash-assets-');
    writeFileSync(path.join(dir, 'index.html'), '<!doctype html>');
    writeFileSync(path.join(dir, 'app.js'), '');
    writeFileSync(path.join(dir, 'style.css'), '');
    writeFileSync(path.join(dir, 'icon.svg'), '');
    writeFileSync(path.join(dir, '.hidden.js'), '');
    writeFileSync(path.join(dir, 'server.ts'), '');
    writeFileSync(path.join(dir, 'notes.md'), '');
    writeFileSync(path.join(dir, 'Upper.js'), '');
    mkdirSync(path.join(dir, 'sub.js'));
    symlinkSync(path.join(ROOT, 'package.json'), path.join(dir, 'linked.js'));
    const assets = loadAssets(dir);
    expect([...assets.keys()].sort()).toEqual(['app.js', 'icon.svg', 'index.html', 'style.css']);
    expect(assets.get('icon.svg')!.contentType).toBe('image/svg+xml');
    expect(loadAssets(undefined).size).toBe(0);
  });

  it('finds the front-end folder from the sources and from the built dist/', async () => {
    expect(dashboardDir()).toBe(DIR);
    expect(dashboardDir(path.join(ROOT, 'dist/runtime/api/routes'))).toBe(DIR);
    expect(dashboardDir(scratch('lg-dash-nowhere-'))).toBeUndefined();
    // the compiled module itself (test/setup/global.ts built dist/), as `linegate run` loads it
    const built = (await import(pathToFileURL(path.join(ROOT, 'dist/runtime/api/routes/dashboard.js')).href)) as { dashboardDir(): string | undefined };
    expect(built.dashboardDir()).toBe(DIR);
  });

  it('answers GET / with a coded 404, and keeps the API up, when the files are not installed', async () => {
    const server = await served();
    // a server made from the same station, pointed at an empty folder, through the route factory
    const { dashboardRoutes } = await import('../../runtime/api/routes/dashboard.js');
    const routes = dashboardRoutes({ log: silentLog } as Parameters<typeof dashboardRoutes>[0], scratch('lg-dash-empty-'));
    expect(routes.map((r) => r.url)).toEqual(['/', '/api/summary']);
    await expect(routes[0]!.handle({ query: {}, params: {}, body: undefined, contentType: undefined, signal: new AbortController().signal })).rejects.toMatchObject({ code: 'LG_ERR_API_NOT_FOUND' });
    expect((await server.inject({ method: 'GET', url: '/health' })).status).toBe(200);
  });

  it('lists the page, each file and the summary in the OpenAPI document', async () => {
    const server = await served();
    const doc = (await server.inject({ method: 'GET', url: '/api/openapi.json' })).json() as { paths: Record<string, { get?: { security: unknown[] } }> };
    expect(doc.paths['/']?.get?.security).toEqual([]);
    expect(doc.paths['/dashboard/app.js']?.get).toBeDefined();
    expect(doc.paths['/api/summary']?.get).toBeDefined();
  });
});

describe('GET /api/summary', () => {
  it('gives yield per time bucket, the reject Pareto by code and label, the latency histogram against the budget, thresholds and health', async () => {
    const history = new RecentResults();
    for (let n = 1; n <= 12; n++) history.add(result(n, 130 - n * 10));
    const server = await served(history);
    const r = await server.inject({ method: 'GET', url: '/api/summary' });
    expect(r.status).toBe(200);
    const s = SummaryBody.parse(r.json());
    expect(s.station).toEqual({ id: 'dash-route', line: 'L7', cycleBudgetMs: 500, hierarchy: { site: 'plant-9', area: 'paint', line: 'L7', cell: 'C1' } });
    expect(s.window).toMatchObject({ parts: 12, capped: false });
    expect(s.yield).toMatchObject({ pass: 9, fail: 3, error: 0, rate: 9 / 12 });
    expect(s.yield.buckets.reduce((n, b) => n + b.pass + b.fail + b.error, 0)).toBe(12);
    expect(s.yield.bucketS).toBe(10);
    expect(s.pareto.byCode).toEqual([{ rejectCode: 3, code: 'crack-rule', count: 3 }]);
    // only the label that fired counts, not the dent beside it
    expect(s.pareto.byLabel).toEqual([{ label: 'crack', count: 3 }]);
    expect(s.latency.budgetMs).toBe(500);
    expect(s.latency.bins.reduce((n, b) => n + b.count, 0)).toBe(12);
    expect(s.latency).toMatchObject({ overBudget: 0, maxMs: 15, p50Ms: 10 });
    expect(s.thresholds).toEqual({ crack: 0.5, dent: 0.7 });
    expect(s.ready).toMatchObject({ station: 'dash-route', ready: true });
    expect(s.lanes).toHaveProperty('queue');
    expect(s.process.rssBytes).toBeGreaterThan(0);
  });

  it('counts what the history got since the last request once, and leaves out what is older than an hour', async () => {
    const history = new RecentResults();
    history.add(result(1, 2 * 3600));
    for (let n = 2; n <= 5; n++) history.add(result(n, 60));
    const server = await served(history);
    const first = SummaryBody.parse((await server.inject({ method: 'GET', url: '/api/summary' })).json());
    expect(first.window.parts).toBe(4);
    for (let n = 6; n <= 9; n++) history.add(result(n, 1, { verdict: 'error', rejectCode: 902, reasons: [{ code: 'LG_ERR_STAGE_TIMEOUT', message: 'late' }], defects: [], timings: { totalMs: 900, stages: {} } }));
    const second = SummaryBody.parse((await server.inject({ method: 'GET', url: '/api/summary' })).json());
    expect(second.window.parts).toBe(8);
    expect(second.yield).toMatchObject({ error: 4 });
    expect(second.pareto.byCode[0]).toEqual({ rejectCode: 902, code: 'LG_ERR_STAGE_TIMEOUT', count: 4 });
    expect(second.latency.overBudget).toBe(4);
    const third = SummaryBody.parse((await server.inject({ method: 'GET', url: '/api/summary' })).json());
    expect(third.window.parts).toBe(8);
  });

  it('bins cycle times on a 1-2-5 scale up to the budget, with one bin past it', () => {
    const l = latency([0.5, 3, 40, 499, 500, 501, 2000], 500);
    expect(l.bins.map((b) => b.toMs)).toEqual([1, 2, 5, 10, 20, 50, 100, 200, 500, null]);
    expect(l.bins.map((b) => b.count)).toEqual([1, 0, 1, 0, 0, 1, 0, 0, 2, 2]);
    expect(l).toMatchObject({ overBudget: 2, maxMs: 2000, p50Ms: 499 });
    expect(latency([], 250)).toMatchObject({ p50Ms: null, p95Ms: null, maxMs: null, overBudget: 0 });
    expect(latency([], 250).bins.map((b) => b.toMs)).toEqual([1, 2, 5, 10, 20, 50, 100, 200, 250, null]);
  });
});
