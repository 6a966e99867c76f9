import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's Chromium (`.ci/run` installs it when missing); browser tests skip, and say so, only when it is absent. */
export const CHROMIUM = '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);

// No sandbox: CI runs as root; no GPU: there is none; no /dev/shm limit surprises in containers.
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'];

/** A fresh headless Chromium with a temporary profile of its own (removed on close). */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 45_000 });
}

/** What a page did: console errors, uncaught exceptions, failed requests, and every URL it asked for. */
export interface PageWatch {
  readonly errors: string[];
  readonly failed: string[];
  readonly requests: string[];
}

/** A new page whose console errors, page errors, failed requests and requested URLs are recorded. */
export async function watchedPage(browser: Browser, viewport = { width: 1280, height: 900 }): Promise<{ page: Page; watch: PageWatch }> {
  const page = await browser.newPage({ viewport });
  const watch: PageWatch = { errors: [], failed: [], requests: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') watch.errors.push(m.text());
  });
  page.on('pageerror', (e) => watch.errors.push(`pageerror: ${e.message}`));
  page.on('request', (r) => watch.requests.push(r.url()));
  page.on('requestfailed', (r) => watch.failed.push(`${r.url()}: ${r.failure()?.errorText ?? '?'}`));
  return { page, watch };
}
