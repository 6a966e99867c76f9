import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { QUEUES } from '../../plugins/sink-bullmq/jobs.js';
import { startWorker, type WorkerHandle } from '../../plugins/sink-bullmq/workers/index.js';
import { PlantReader } from '../../plugins/sink-bullmq/workers/plant-read.js';
import { parsePlantOptions } from '../../runtime/plant/options.js';
import type { InspectionResult } from '../../runtime/result.js';
import { PlantServer } from '../../runtime/plant/server.js';
import { HAVE_CHROMIUM, launchBrowser, watchedPage, type PageWatch } from '../helpers/browser.js';
import { linegate } from '../helpers/cli.js';
import type { StationData } from '../helpers/demo.js';
import { REDIS_URL, RedisRelay, dropPrefix, redisConnection, uniquePrefix } from '../helpers/redis.js';
import { sharedPki, testRoot } from '../helpers/roots.js';
import { ROOT, silentLog } from '../helpers/station.js';
import { until } from '../helpers/until.js';

/*
 * The plant page in headless Chromium over the two demo stations as they ship (stations/demo.yaml
 * and stations/demo-02.yaml: the simulated PLC, the casting model), run for real on one Redis
 * prefix, counted by a real stats worker. Redis is reached through a relay the test cuts.
 * Screenshots go to test-artifacts/plant/; LINEGATE_UPDATE_DOCS=1 also refreshes docs/plant.png.
 */

if (!HAVE_CHROMIUM) console.warn('plant page browser test: skipped, /usr/bin/chromium is absent (install chromium to run it)');

const ARTIFACTS = path.join(ROOT, 'test-artifacts/plant');
const FRAMES = 12;

/** A shipped demo station in `root`, its queue on REDIS_URL under `prefix`, its PLC four times as fast. */
function demoStation(root: string, name: string, prefix: string): string {
  const s = parse(readFileSync(path.join(ROOT, 'stations', name), 'utf8')) as StationData;
  for (const sink of s.sinks) {
    if (sink.use === 'core/bullmq@1') Object.assign((sink.config ??= {}), { prefix, redis: { url: REDIS_URL } });
    if (sink.use === 'core/opcua-plc@1') Object.assign((sink.config ??= {}), { security: { pki: sharedPki() }, simulate: { triggerRateHz: 20 } });
  }
  const file = path.join(root, 'stations', name.replace(/\.yaml$/, '.json'));
  writeFileSync(file, JSON.stringify(s));
  return file;
}

async function shot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

describe.skipIf(!HAVE_CHROMIUM)('the plant page in headless Chromium, over the two demo stations on one Redis', () => {
  const prefix = uniquePrefix();
  let relay: RedisRelay;
  let worker: WorkerHandle;
  let reader: PlantReader;
  let server: PlantServer;
  let browser: Browser;
  let page: Page;
  let watch: PageWatch;
  /** Results each station put on the queue before its run ended. */
  const queued = new Map<string, number>();

  beforeAll(async () => {
    worker = await startWorker('stats', { redis: REDIS_URL, prefix, closeTimeoutMs: 2000 }, silentLog);
    const root = testRoot('lg-plant-demo-');
    const spooled: Record<string, unknown> = {};
    for (const name of ['demo.yaml', 'demo-02.yaml']) {
      const r = await linegate(['run', demoStation(root, name, prefix), '--max-frames', String(FRAMES), '--no-pretty']);
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      const line = r.lastJson<{ summary: unknown; health?: { steps?: { queue?: { data?: { pendingBytes?: number } } } } }>();
      spooled[name] = { summary: line.summary, pendingBytes: line.health?.steps?.queue?.data?.pendingBytes };
    }
    // Every result both stations queued, counted: the queue drained, each job done once.
    const queue = new Queue(QUEUES.results, { connection: redisConnection(), prefix });
    let seen = {};
    try {
      await until(
        async () => {
          const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
          const done = c.completed ?? 0;
          seen = { ...c, processed: worker.processed(), failedByWorker: worker.failed(), runs: spooled };
          // Every job the runs queued has been taken (nothing more comes: a result a run left in its spool
          // at exit waits for its next start). processed() may pass `done`: a job handed out twice (a
          // stalled lock on a busy machine) is counted once.
          return c.waiting === 0 && c.active === 0 && c.delayed === 0 && done > 0 && worker.processed() >= done;
        },
        { what: 'the stats worker to count every queued result', ms: 30_000 },
      ).catch((e: unknown) => {
        throw new Error(`${e instanceof Error ? e.message : String(e)}: ${JSON.stringify(seen)}`);
      });
      expect(await queue.getJobCounts('failed'), JSON.stringify(seen)).toEqual({ failed: 0 });
      for (const j of await queue.getJobs(['completed'], 0, -1)) {
        const id = (j.data as InspectionResult).station.id;
        queued.set(id, (queued.get(id) ?? 0) + 1);
      }
    } finally {
      await queue.close();
    }
    expect([...queued.keys()].sort(), JSON.stringify(seen)).toEqual(['demo-01', 'demo-02']);

    relay = await RedisRelay.start();
    reader = new PlantReader({ redis: relay.url, prefix, log: silentLog });
    server = await PlantServer.start({ settings: parsePlantOptions({ redis: relay.url, prefix, port: 0, refreshSeconds: 1, maxErrorRate: 0.5 }), source: reader, log: silentLog });
    browser = await launchBrowser();
    ({ page, watch } = await watchedPage(browser, { width: 1280, height: 800 }));
    await page.goto(server.url, { waitUntil: 'load' });
    await page.locator('article.station').nth(1).waitFor({ timeout: 20_000 });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await reader?.close();
    await relay?.close();
    await worker?.close();
    await dropPrefix(prefix);
  });

  it('loads with no console error, and asks nothing of any other machine', async () => {
    expect(watch.errors).toEqual([]);
    expect(watch.failed).toEqual([]);
    expect(watch.requests.filter((u) => !u.startsWith(server.url) && !u.startsWith('data:'))).toEqual([]);
    expect(await page.locator('#source').textContent()).toBe(`${prefix} @ ${relay.url}`);
    expect(await page.locator('#banner').isHidden()).toBe(true);
  });

  it('shows both demo stations under their line, each in its cell, with its parts and yield', async () => {
    const line = page.locator('section.line[data-site="demo-plant"][data-area="casting"][data-line="L1"]');
    expect(await line.count()).toBe(1);
    expect(await line.locator('h4').textContent()).toMatch(/^Line L1\s*2 stations · yield \d/);
    expect(await line.locator('.cell[data-cell="C1"] article.station').evaluateAll((a) => a.map((e) => e.getAttribute('data-station')))).toEqual(['demo-01']);
    expect(await line.locator('.cell[data-cell="C2"] article.station').evaluateAll((a) => a.map((e) => e.getAttribute('data-station')))).toEqual(['demo-02']);
    for (const id of ['demo-01', 'demo-02']) {
      const card = line.locator(`article[data-station="${id}"]`);
      const metrics = await card.locator('.metric').evaluateAll((ms) => Object.fromEntries(ms.map((m) => [m.querySelector('.label')?.textContent, m.querySelector('.value')?.textContent])));
      expect(Number(metrics.parts), id).toBeGreaterThan(0);
      expect(metrics, id).toMatchObject({ parts: String(queued.get(id)), yield: expect.stringMatching(/^\d+(\.\d)? %$/) });
      expect(await card.locator('.last').textContent(), id).toMatch(/^last result \d+ s ago/);
      expect(await card.locator('svg.spark rect').count(), id).toBeGreaterThan(0);
    }
    expect(await page.locator('#totals .metric').first().textContent()).toBe('2stations');
    const file = await shot(page, 'plant.png');
    if (process.env.LINEGATE_UPDATE_DOCS === '1') copyFileSync(file, path.join(ROOT, 'docs/plant.png'));
  });

  it('narrows to one station when a cell is chosen, and keeps the choice in the URL', async () => {
    await page.locator('select[name="cell"]').selectOption('C2');
    await until(async () => (await page.locator('article.station').count()) === 1, { what: 'one station card after choosing cell C2' });
    expect(await page.locator('article.station').getAttribute('data-station')).toBe('demo-02');
    expect(new URL(page.url()).searchParams.get('cell')).toBe('C2');
    await shot(page, 'plant-cell-C2.png');
    await page.locator('#clear').click();
    await until(async () => (await page.locator('article.station').count()) === 2, { what: 'both cards back after "All stations"' });
    expect(watch.errors).toEqual([]);
  });

  it('says when Redis is away, keeps the last counts on screen, and recovers when it is back', async () => {
    const before = watch.errors.length;
    await relay.down();
    try {
      await page.locator('#banner').waitFor({ state: 'visible', timeout: 20_000 });
      expect(await page.locator('#banner').textContent()).toMatch(/^Redis is away \(redis:\/\/127\.0\.0\.1:\d+\/?\): LG_ERR_QUEUE_REDIS /);
      expect(await page.locator('#status').getAttribute('data-state')).toBe('away');
      expect(await page.locator('#status').textContent()).toMatch(/^showing counts as of /);
      expect(await page.locator('article.station').count()).toBe(2);
      await shot(page, 'plant-redis-away.png');
    } finally {
      await relay.up();
    }
    await page.locator('#banner').waitFor({ state: 'hidden', timeout: 30_000 });
    expect(await page.locator('#status').getAttribute('data-state')).toBe('up');
    // The browser reports each 503 answer as a failed resource load; nothing else went wrong.
    expect(watch.errors.slice(before).filter((e) => !/status of 503/.test(e))).toEqual([]);
  }, 60_000);
});
