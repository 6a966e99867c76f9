import { copyFileSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type ApiServer } from '../../runtime/api/server.js';
import type { HistoryReader } from '../../runtime/history.js';
import { historyFileOf } from '../../runtime/history-file.js';
import { historyReaderFactory } from '../../runtime/registry/builtins.js';
import type { InspectionResult } from '../../runtime/result.js';
import type { RunSummary, Station } from '../../runtime/station.js';
import { HAVE_CHROMIUM, CHROMIUM, launchBrowser, watchedPage, type PageWatch } from '../helpers/browser.js';
import { testRoot } from '../helpers/roots.js';
import { ROOT, silentLog, stationFrom } from '../helpers/station.js';
import { until } from '../helpers/until.js';
import { castingStages } from '../helpers/casting.js';

/*
 * The dashboard in headless Chromium against a real station: the casting classifier on fixture
 * photos, its SQLite history, its API on a real socket. The tests run in order on one page, as an
 * operator would use it: load, watch parts come in, switch lenses, lose the station, get it back.
 */

const ARTIFACTS = path.join(ROOT, 'test-artifacts/dashboard');
if (!HAVE_CHROMIUM) console.warn(`dashboard.browser.test: skipped, ${CHROMIUM} is absent (.ci/run installs it)`);

interface Running {
  readonly station: Station;
  readonly server: ApiServer;
  readonly results: InspectionResult[];
  stop(): Promise<void>;
}

/** Good and defective castings, alternating, copied into the root: the API serves only images inside it. */
function frames(root: string): void {
  const dir = path.join(root, 'frames');
  mkdirSync(dir);
  const pick = (sub: string): string[] => readdirSync(path.join(ROOT, 'fixtures/casting', sub)).filter((f) => f.endsWith('.jpeg')).slice(0, 4);
  const ok = pick('ok_front');
  const def = pick('def_front');
  ok.forEach((f, i) => {
    copyFileSync(path.join(ROOT, 'fixtures/casting/ok_front', f), path.join(dir, `${i}a-${f}`));
    copyFileSync(path.join(ROOT, 'fixtures/casting/def_front', def[i]!), path.join(dir, `${i}b-${def[i]!}`));
  });
}

/** The casting station with its history, at 4 parts a second; its API on `port` (0: a free one). */
async function run(root: string, port = 0, env: Record<string, string> = {}): Promise<Running> {
  const station = stationFrom(
    {
      station: { id: 'dash-01', name: 'Casting check', line: 'L2', hierarchy: { site: 'plant-1', area: 'casting', line: 'L2', cell: 'C3' }, cycleBudgetMs: 1500 },
      source: { name: 'cam0', use: 'core/folder-source@1', config: { dir: 'frames', loop: true, rateHz: 4 } },
      stages: castingStages(),
      sinks: [],
    },
    silentLog,
    root,
  );
  const results: InspectionResult[] = [];
  station.on('result', (r) => void results.push(r));
  await station.start();
  let history: HistoryReader | undefined;
  let server: ApiServer | undefined;
  let done: Promise<RunSummary> | undefined;
  const stop = async (): Promise<void> => {
    station.stop();
    await done?.catch(() => undefined);
    await server?.close();
    await history?.close();
    await station.close();
  };
  try {
    history = await historyReaderFactory(historyFileOf(station.plan)!);
    server = await startApi({ station, settings: { host: '127.0.0.1', port, auth: 'writes', maxUploadMiB: 1 }, log: silentLog, env, history });
    done = station.run();
  } catch (e) {
    await stop();
    throw e;
  }
  return { station, server, results, stop };
}

// Page-side code as strings: the tests are typed without the DOM library.
const visibleLens = (page: Page): Promise<string[]> => page.evaluate("[...document.querySelectorAll('section.lens')].filter((e) => !e.hidden).map((e) => e.id)") as Promise<string[]>;
/**
 * Waits until the page-side expression is true, asking from here: playwright's own waitForFunction
 * evaluates strings inside the page, which the dashboard's CSP (no 'unsafe-eval') rightly refuses.
 */
const pageWaits = (page: Page, expression: string, ms = 20_000): Promise<void> => until(async () => (await page.evaluate(expression)) === true, { ms, what: expression });

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

describe.skipIf(!HAVE_CHROMIUM)('the station dashboard in headless Chromium', () => {
  let root: string;
  let first: Running;
  let browser: Browser;
  let page: Page;
  let watch: PageWatch;
  let origin: string;
  const cleanup: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    root = testRoot('lg-dash-');
    frames(root);
    first = await run(root);
    cleanup.push(() => first.stop());
    origin = first.server.url;
    browser = await launchBrowser();
    cleanup.push(() => browser.close());
    ({ page, watch } = await watchedPage(browser, { width: 1360, height: 900 }));
  }, 90_000);

  afterAll(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
  }, 60_000);

  it('loads with no console error and no failed request, and shows live results as the station decides them', async () => {
    await page.goto(`${origin}/`, { waitUntil: 'load' });
    await page.waitForSelector('#verdict[data-result]', { timeout: 30_000 });
    // live: a part decided after the page was up replaces the one it showed first
    const shownFirst = await page.getAttribute('#verdict', 'data-result');
    const before = first.results.length;
    await pageWaits(page, `document.querySelector('#verdict')?.getAttribute('data-result') !== ${JSON.stringify(shownFirst)}`);
    // one snapshot of the panel: at 4 parts a second it may move on between two reads
    const panel = (await page.evaluate(
      "((v) => ({ id: v.dataset.result, word: v.querySelector('.word').textContent, part: v.querySelector('.part-id').textContent, model: v.querySelector('.part-model').textContent }))(document.querySelector('#verdict'))",
    )) as { id: string; word: string; part: string; model: string };
    expect(first.results.slice(before - 1).map((r) => r.resultId)).toContain(panel.id);
    const r = first.results.find((x) => x.resultId === panel.id)!;
    expect(panel.word).toContain(r.verdict.toUpperCase());
    expect(panel.part).toBe(r.partId);
    expect(panel.model).toBe('casting-cls@1');
    expect(await page.textContent('#station')).toContain('station dash-01');
    await page.waitForSelector('#hierarchy:not([hidden])', { timeout: 10_000 });
    expect(await page.textContent('#hierarchy')).toBe('plant-1 / casting / L2 / C3');
    expect(await page.textContent('#model')).toBe('casting-cls@1');
    await page.waitForSelector('#link[data-stale="false"][data-state="live"]', { timeout: 15_000 });
    expect(await page.textContent('#link')).toContain('LIVE');
    // thumbnails of the last parts, decoded
    await pageWaits(page, "[...document.querySelectorAll('.thumb img')].filter((i) => i.complete && i.naturalWidth > 0).length >= 4");
    expect(await page.$$eval('.thumb figcaption', (els) => els.every((e) => /PASS|FAIL|ERROR/.test(e.textContent ?? '')))).toBe(true);
    await page.waitForSelector('#ready[data-ready="true"]', { timeout: 10_000 });
    expect(watch.errors).toEqual([]);
    expect(watch.failed).toEqual([]);
    // for the picture only: a moment when every thumbnail's part is stored and its image shown
    await pageWaits(page, "document.querySelectorAll('.thumb .noimg').length === 0", 3000).catch(() => undefined);
    await shot(page, 'operator');
  }, 90_000);

  it('draws the defect overlay of a reject, the yield, the Pareto and the thresholds in the quality lens, and finds a part by id', async () => {
    await page.click('#tab-quality');
    expect(await visibleLens(page)).toEqual(['lens-quality']);
    await pageWaits(page, "((img) => img !== null && img.complete && img.naturalWidth > 0 && img.getAttribute('src').endsWith('?overlay=1'))(document.querySelector('#overlay img.overlay-img'))");
    const overlays = watch.requests.filter((u) => u.endsWith('/image?overlay=1'));
    expect(overlays.length).toBeGreaterThan(0);
    const png = await page.evaluate(async (u) => (await fetch(u)).headers.get('content-type'), overlays[0]!);
    expect(png).toBe('image/png');
    // the Pareto names the rule that rejected the defective castings; the threshold is the model's
    await pageWaits(page, "document.querySelector('.pareto')?.textContent?.includes('1 · casting-defect') ?? false");
    expect(await page.textContent('#yield-rate')).toMatch(/^\d+\.\d %$/);
    expect(await page.$$eval('#lens-quality svg.chart rect.bar', (els) => els.length)).toBeGreaterThan(1);
    expect(await page.textContent('#thresholds')).toMatch(/defect\s*0\.4411/);
    // the deploy API's view: the model in use, who put it there, no shadow
    await page.waitForSelector('#model-card .facts', { timeout: 10_000 });
    const modelCard = await page.textContent('#model-card');
    expect(modelCard).toContain('in usecasting-cls@1');
    expect(modelCard).toContain('by station file (start, step model)');
    expect(modelCard).toContain('shadowoff');
    // search by part id, then open the part found
    const wanted = first.results.find((x) => x.verdict === 'pass')!;
    await page.fill('#part-search', wanted.partId);
    await page.press('#part-search', 'Enter');
    await page.waitForSelector('#search-results li button', { timeout: 10_000 });
    expect(await page.$$eval('#search-results li', (els) => els.map((e) => e.textContent))).toEqual(expect.arrayContaining([expect.stringContaining(wanted.partId)]));
    const picked = await page.getAttribute('#search-results li button', 'data-result');
    expect(first.results.find((x) => x.resultId === picked)?.partId).toBe(wanted.partId);
    await page.click('#search-results li button');
    await pageWaits(page, `((img) => img !== null && img.complete && img.naturalWidth > 0 && img.getAttribute('src').includes(${JSON.stringify(picked)}))(document.querySelector('#overlay img'))`, 10_000);
    expect(watch.errors).toEqual([]);
    await shot(page, 'quality');
  }, 60_000);

  it('switches between the three lenses, each under the header with the station id and the model in use', async () => {
    for (const [tab, lens] of [['#tab-it', 'lens-it'], ['#tab-operator', 'lens-operator'], ['#tab-quality', 'lens-quality'], ['#tab-it', 'lens-it']] as const) {
      await page.click(tab);
      expect(await visibleLens(page)).toEqual([lens]);
      expect(await page.getAttribute(tab, 'aria-selected')).toBe('true');
      expect(await page.isVisible('#station')).toBe(true);
      expect(await page.textContent('#station')).toContain('dash-01');
      expect(await page.textContent('#hierarchy')).toBe('plant-1 / casting / L2 / C3');
      expect(await page.textContent('#model')).toBe('casting-cls@1');
      expect(await page.isVisible(`#${lens} .lens-title`)).toBe(true);
    }
    expect(new URL(page.url()).hash).toBe('#it');
    // the IT lens: cycle times against the budget, drops, memory
    await page.waitForSelector('#latency svg .budget', { state: 'attached', timeout: 10_000 });
    expect(await page.textContent('#latency')).toContain('budget 1.50 s');
    expect(await page.textContent('#drops')).toMatch(/^0/);
    expect(await page.textContent('#rss')).toMatch(/MiB$/);
    await shot(page, 'it');
    expect(watch.errors).toEqual([]);
    expect(watch.failed).toEqual([]);
    // a reload keeps the lens the address names (what the unloaded page had in flight is cut: its event stream at least)
    const failedBefore = watch.failed.length;
    await page.reload({ waitUntil: 'load' });
    expect(await visibleLens(page)).toEqual(['lens-it']);
    await page.waitForSelector('#link[data-state="live"]', { timeout: 10_000 });
    await page.click('#tab-operator');
    expect(watch.errors).toEqual([]);
    const cut = watch.failed.slice(failedBefore);
    expect(cut).toContain(`${origin}/api/events: net::ERR_ABORTED`);
    expect(cut.filter((f) => !f.startsWith(`${origin}/`) || !f.endsWith(': net::ERR_ABORTED'))).toEqual([]);
  }, 60_000);

  it('says "no model info" on a station without the deploy API, and shows the model it loaded', async () => {
    const { page: older, watch: seen } = await watchedPage(browser, { width: 1360, height: 900 });
    // An older station: its OpenAPI document lists no /api/models, and the page asks only for routes listed there.
    await older.route('**/api/openapi.json', async (route) => {
      const res = await route.fetch();
      const doc = (await res.json()) as { paths: Record<string, unknown> };
      for (const p of Object.keys(doc.paths)) if (p.startsWith('/api/models')) delete doc.paths[p];
      await route.fulfill({ response: res, json: doc });
    });
    try {
      await older.goto(`${origin}/#quality`, { waitUntil: 'load' });
      await older.waitForSelector('#no-model-info', { timeout: 15_000 });
      expect(await older.textContent('#no-model-info')).toContain('no model info');
      expect(await older.textContent('#model-card')).toContain('model: casting-cls@1');
      expect(await older.textContent('#model')).toBe('casting-cls@1');
      expect(seen.requests.some((u) => u.includes('/api/models'))).toBe(false);
      expect(seen.errors).toEqual([]);
    } finally {
      await older.close();
    }
  }, 40_000);

  it('asks for nothing but the station itself', () => {
    expect(watch.requests.length).toBeGreaterThan(10);
    const elsewhere = watch.requests.filter((u) => new URL(u).origin !== origin);
    expect(elsewhere).toEqual([]);
  });

  it('says the data is stale when the station goes away, and reconnects and refills when it comes back on the same port', async () => {
    await page.click('#tab-operator');
    const port = first.server.port;
    await first.stop();
    await page.waitForSelector('#link[data-stale="true"]', { timeout: 20_000 });
    expect(await page.textContent('#link')).toContain('STALE');
    await shot(page, 'stale');
    const refills = (): number => watch.requests.filter((u) => u === `${origin}/api/results?limit=60`).length;
    const refillsBefore = refills();
    const again = await run(root, port);
    cleanup.push(() => again.stop());
    expect(again.server.port).toBe(port);
    await page.waitForSelector('#link[data-stale="false"][data-state="live"]', { timeout: 30_000 });
    // refilled from the history after the reconnect
    await until(() => refills() > refillsBefore, { ms: 10_000, what: 'the page to ask /api/results again' });
    // the restarted station's parts are shown, from the stream after the reconnect
    await until(
      async () => {
        const shown = await page.getAttribute('#verdict', 'data-result');
        return again.results.some((r) => r.resultId === shown);
      },
      { ms: 20_000, what: 'a part of the restarted station on the page' },
    );
    expect(await page.textContent('#link')).toContain('LIVE');
  }, 90_000);

  it('shows the new model version on the next parts after a hot swap', () => hotSwapShowsTheNewVersion(browser), 120_000);
});

const TOKEN = 'dashboard-hot-swap-token-0123456789';

/**
 * The hot swap, as the "done when" says it: a station on casting-cls/1 with the dashboard
 * open; casting-cls/2 deployed through the API between two parts; the next parts on the page, and
 * the header, name /2, while the parts before keep /1.
 */
async function hotSwapShowsTheNewVersion(browser: Browser): Promise<void> {
  const root = testRoot('lg-dash-swap-');
  frames(root);
  const station = await run(root, 0, { LINEGATE_API_TOKEN: TOKEN });
  const { page, watch } = await watchedPage(browser, { width: 1360, height: 900 });
  try {
    await page.goto(`${station.server.url}/`, { waitUntil: 'load' });
    await page.waitForSelector('#verdict[data-result]', { timeout: 30_000 });
    expect(await page.textContent('#verdict .part-model')).toBe('casting-cls@1');
    expect(await page.textContent('#model')).toBe('casting-cls@1');
    const form = new FormData();
    const dir = path.join(ROOT, 'models/casting-cls/2');
    for (const f of readdirSync(dir)) form.append('file', new Blob([readFileSync(path.join(dir, f))]), f);
    const res = await fetch(`${station.server.url}/api/models/deploy`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: form });
    expect(res.status, await res.clone().text()).toBe(200);
    const report = (await res.json()) as { deployment: { version: string; activatedAt: string } };
    expect(report.deployment.version).toBe('2');
    // the header from `event: model`, the part on show from its own record
    await page.waitForSelector('#verdict .part-model >> text=casting-cls@2', { timeout: 20_000 });
    await until(async () => (await page.textContent('#model')) === 'casting-cls@2', { ms: 10_000, what: 'the header to name casting-cls@2' });
    // no part was judged by /1 after the switch, and none of /2 before it
    const versions = station.results.map((r) => r.model?.version);
    const firstTwo = versions.indexOf('2');
    expect(firstTwo).toBeGreaterThan(0);
    expect(versions.slice(firstTwo).every((v) => v === '2')).toBe(true);
    const titles = await page.$$eval('.thumb', (els) => els.map((e) => e.getAttribute('title') ?? ''));
    expect(titles.some((t) => t.includes('casting-cls@2'))).toBe(true);
    await page.click('#tab-quality');
    await page.waitForSelector('#model-card >> text=casting-cls@2 · deploy by env', { timeout: 10_000 });
    expect(await page.textContent('#model-card')).toContain('possible');
    expect(watch.errors).toEqual([]);
    await shot(page, 'hot-swap');
  } finally {
    await page.close();
    await station.stop();
  }
}
