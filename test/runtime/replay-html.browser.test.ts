import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnail } from '../../plugins/preprocess-image-decode/thumbnail.js';
import { renderReplayHtml } from '../../runtime/replay/html.js';
import { sampleReplay } from '../helpers/replay-sample.js';
import { scratch } from '../helpers/scratch.js';

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
// A data scientist's machine may have no Chromium: say so rather than fail.
if (!HAVE_CHROMIUM) console.warn(`replay-html.browser.test: skipped, ${CHROMIUM} is absent (install chromium to run it)`);

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe.skipIf(!HAVE_CHROMIUM)(`the replay HTML report in headless Chromium${HAVE_CHROMIUM ? '' : ` (skipped: ${CHROMIUM} is absent)`}`, () => {
  let browser: Browser;
  let page: Page;
  let dir: string;
  let fileUrl: string;
  const requests: string[] = [];
  const failed: string[] = [];
  const errors: string[] = [];

  beforeAll(async () => {
    dir = scratch('lg-replay-browser-');
    const { report, media } = sampleReplay(scratch('lg-replay-set-'));
    const file = path.join(dir, 'report.html');
    writeFileSync(file, await renderReplayHtml(report, media));
    fileUrl = pathToFileURL(file).href;
    // launch() gives Chromium a fresh temporary profile of its own and removes it on close.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 45_000 });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('request', (r) => requests.push(r.url()));
    page.on('requestfailed', (r) => failed.push(`${r.url().slice(0, 80)}: ${r.failure()?.errorText ?? '?'}`));
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(fileUrl, { waitUntil: 'load' });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('makes no request but for the file itself and its data: images, and none fails', () => {
    expect(failed).toEqual([]);
    expect(requests.filter((u) => u !== fileUrl && !u.startsWith('data:'))).toEqual([]);
    expect(requests).toContain(fileUrl);
    expect(errors).toEqual([]);
  });

  it('decodes every image', async () => {
    const images = (await page.evaluate('[...document.images].map((i) => ({ complete: i.complete, width: i.naturalWidth }))')) as { complete: boolean; width: number }[];
    expect(images).toHaveLength(5);
    for (const img of images) expect(img).toMatchObject({ complete: true, width: expect.any(Number) });
    expect(images.every((i) => i.width > 0)).toBe(true);
  });

  it('lays out the ROC and histogram charts with a real size', async () => {
    for (const id of ['#roc', '#histogram']) {
      const box = await page.locator(id).boundingBox();
      expect(box, id).not.toBeNull();
      expect(box!.width, id).toBeGreaterThan(200);
      expect(box!.height, id).toBeGreaterThan(150);
    }
  });

  it('lays each box overlay exactly over its image', async () => {
    const tiles = page.locator('.pic:has(.overlay)');
    expect(await tiles.count()).toBeGreaterThanOrEqual(3);
    for (let i = 0; i < (await tiles.count()); i++) {
      const img = await tiles.nth(i).locator('img').boundingBox();
      const svg = await tiles.nth(i).locator('svg.overlay').boundingBox();
      expect(img).not.toBeNull();
      expect(svg).toEqual(img);
    }
  });

  it('pages through the overkills with no script: one page of 24 shown, another on a click', async () => {
    const { report, media } = sampleReplay(scratch('lg-replay-pages-'));
    const overkills = Array.from({ length: 50 }, (_, i) => ({ ...report.results[2]!, score: 0.3 + i / 100 }));
    const file = path.join(dir, 'pages.html');
    writeFileSync(file, await renderReplayHtml({ ...report, results: overkills }, media, { thumbnail: (data) => thumbnail(data, 24) }));
    const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await p.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      const visible = (): Promise<number> => p.locator('.tile:visible').count();
      expect(await p.locator('.tile').count()).toBe(50);
      expect(await visible()).toBe(24);
      await p.locator('label[for="ovk-p2"]').click();
      expect(await visible()).toBe(2);
      expect(await p.locator('.tile.p2:visible').count()).toBe(2);
      await p.locator('label[for="ovk-p1"]').click();
      expect(await p.locator('.tile.p1:visible').count()).toBe(24);
    } finally {
      await p.close();
    }
  });

  it('renders a page that is not blank', async () => {
    const shot = path.join(dir, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    const png = readFileSync(shot);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const { width, height } = await sharp(png).metadata();
    expect(width).toBe(1280);
    expect(height).toBeGreaterThan(1500);
    const stats = await sharp(png).stats();
    for (const c of stats.channels.slice(0, 3)) {
      expect(c.min).toBeLessThan(60);
      expect(c.max).toBeGreaterThan(200);
      expect(c.stdev).toBeGreaterThan(10);
    }
  });
});
