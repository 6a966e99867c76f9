import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { LinegateProcess } from '../helpers/child.js';
import { linegate } from '../helpers/cli.js';
import { REDIS_URL, uniquePrefix } from '../helpers/redis.js';

/* `linegate plant`: misuse is a coded error and exit 2; a run serves until SIGTERM and exits 0. */

describe('linegate plant', () => {
  it('refuses misuse with a coded error and exit 2, before it listens or connects', async () => {
    for (const [args, code, where] of [
      [['--port', '99999'], 'LG_ERR_CLI_USAGE', /--port/],
      [['--minutes', 'ten'], 'LG_ERR_CLI_USAGE', /--minutes/],
      [['--shift', 'night'], 'LG_ERR_CLI_USAGE', /unknown option '--shift'/],
      [['--redis', 'http://127.0.0.1:6379'], 'LG_ERR_PLANT_OPTIONS', /option redis: must be a redis:\/\/ or rediss:\/\/ URL/],
      [['--prefix', 'two words'], 'LG_ERR_PLANT_OPTIONS', /option prefix: no spaces or braces/],
      [['--minutes', '2000'], 'LG_ERR_PLANT_OPTIONS', /option minutes/],
      [['--max-error-rate', '1.5'], 'LG_ERR_PLANT_OPTIONS', /option maxErrorRate/],
    ] as const) {
      const r = await linegate(['plant', ...args, '--no-pretty']);
      expect(r.code, args.join(' ')).toBe(2);
      const errors = r.logs().filter((l) => l.level >= 50);
      expect(errors.map((l) => l.code), args.join(' ')).toEqual([code]);
      expect(errors[0]!.msg, args.join(' ')).toMatch(where);
    }
  });

  it('says when its port is taken: LG_ERR_PLANT_LISTEN, exit 1', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      const r = await linegate(['plant', '--port', String(port), '--redis', REDIS_URL, '--prefix', uniquePrefix(), '--no-pretty']);
      expect(r.code).toBe(1);
      expect(r.logs().filter((l) => l.level >= 50).map((l) => [l.code, l.msg])).toEqual([['LG_ERR_PLANT_LISTEN', expect.stringMatching(new RegExp(`127\\.0\\.0\\.1:${port}: .*EADDRINUSE`))]]);
    } finally {
      taken.close();
    }
  });

  it('serves the page until SIGTERM, then exits 0 with one JSON line', async () => {
    const p = new LinegateProcess(['plant', '--port', '0', '--prefix', uniquePrefix(), '--no-pretty'], { env: { LINEGATE_REDIS_URL: REDIS_URL } });
    const [, url] = await p.waitFor(/plant page listening on (http:\/\/127\.0\.0\.1:\d+\/)/, 30_000);
    const health = await fetch(new URL('/health', url), { signal: AbortSignal.timeout(10_000) });
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', redis: { state: 'up' } });
    const page = await fetch(url!, { signal: AbortSignal.timeout(10_000) });
    expect(await page.text()).toContain('linegate <span>plant</span>');
    p.signal('SIGTERM');
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(p.lastJson<{ plant: { url: string; requests: number } }>()).toEqual({ plant: { url, requests: 2 } });
  }, 45_000);
});
