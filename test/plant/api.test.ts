import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlantReader } from '../../plugins/sink-bullmq/workers/plant-read.js';
import { countResult } from '../../plugins/sink-bullmq/workers/stats.js';
import { parsePlantOptions } from '../../runtime/plant/options.js';
import { PlantServer } from '../../runtime/plant/server.js';
import type { PlantView } from '../../runtime/plant/view.js';
import { REDIS_URL, RedisRelay, dropPrefix, uniquePrefix } from '../helpers/redis.js';
import { silentLog } from '../helpers/station.js';
import { until } from '../helpers/until.js';
import { CELL_1, CELL_2, MIN, OTHER_LINE, resultOf } from './helpers.js';

/*
 * GET /api/plant over what the stats worker counted in a real Redis, reached through a relay the
 * test cuts: stations grouped site > area > line > cell, filtered by any level, each with its
 * yield, throughput, top reject codes and health; the page stays up while Redis is away.
 */

const NOW = Math.floor(Date.now() / MIN) * MIN + 30_000;
const prefix = uniquePrefix();
let relay: RedisRelay;
let server: PlantServer;
let reader: PlantReader;

type Json = PlantView & { source: { redis: string; prefix: string; state: string }; refreshMs: number };

async function get(path: string): Promise<{ status: number; headers: Headers; json: () => Promise<unknown>; text: () => Promise<string> }> {
  const r = await fetch(new URL(path, server.url), { signal: AbortSignal.timeout(10_000) });
  return { status: r.status, headers: r.headers, json: () => r.json() as Promise<unknown>, text: () => r.text() };
}
const plant = async (query = ''): Promise<Json> => {
  const r = await get(`/api/plant${query}`);
  expect(r.status).toBe(200);
  return (await r.json()) as Json;
};
const ids = (v: PlantView): string[] => [...v.sites.flatMap((s) => s.areas.flatMap((a) => a.lines.flatMap((l) => l.cells.flatMap((c) => c.stations.map((x) => x.station))))), ...v.unplaced.map((x) => x.station)];

beforeAll(async () => {
  relay = await RedisRelay.start();
  const redis = new Redis(REDIS_URL);
  try {
    const count = async (r: Parameters<typeof countResult>[3]): Promise<void> => void expect(await countResult(redis, prefix, 48 * 3_600_000, r, NOW)).toBe('counted');
    // st-a, cell C1 of line L1: 18 parts over the last 3 minutes and a bit, 1 fail, 1 error: ok.
    for (let i = 0; i < 18; i++) await count(resultOf('st-a', CELL_1, NOW - 2 * MIN - 40_000 + i * 9_000, i === 4 ? 'fail' : i === 9 ? 'error' : 'pass'));
    // st-b, cell C2 of line L1: 10 parts in the last 2 minutes, 3 of them errors: too many.
    for (let i = 0; i < 10; i++) await count(resultOf('st-b', CELL_2, NOW - 90_000 + i * 9_000, i < 3 ? 'error' : i < 5 ? 'fail' : 'pass'));
    // st-c, line M4 of another area: its last part 20 minutes ago: stale.
    for (let i = 0; i < 4; i++) await count(resultOf('st-c', OTHER_LINE, NOW - 23 * MIN + i * 60_000, 'pass'));
    // st-old: a station file with `line: L1` only, from before hierarchies.
    const old = resultOf('st-old', undefined, NOW - 10_000, 'pass');
    await count({ ...old, station: { id: 'st-old', line: 'L1' } });
  } finally {
    redis.disconnect();
  }
  reader = new PlantReader({ redis: relay.url, prefix, log: silentLog });
  server = await PlantServer.start({ settings: parsePlantOptions({ redis: relay.url, prefix, port: 0, staleMinutes: 5, maxErrorRate: 0.1, refreshSeconds: 2 }), source: reader, log: silentLog, now: () => NOW });
}, 30_000);

afterAll(async () => {
  await server?.close();
  await reader?.close();
  await relay?.close();
  await dropPrefix(prefix);
});

describe('GET /api/plant', () => {
  it('groups the stations site > area > line > cell, with the unplaced ones apart', async () => {
    const v = await plant();
    expect(v.sites.map((s) => ({ site: s.site, areas: s.areas.map((a) => ({ area: a.area, lines: a.lines.map((l) => ({ line: l.line, cells: l.cells.map((c) => [c.cell, c.stations.map((x) => x.station)]) })) })) }))).toEqual([
      {
        site: 'plant-1',
        areas: [
          { area: 'casting', lines: [{ line: 'L1', cells: [['C1', ['st-a']], ['C2', ['st-b']]] }] },
          { area: 'machining', lines: [{ line: 'M4', cells: [['C1', ['st-c']]] }] },
        ],
      },
    ]);
    expect(v.unplaced.map((s) => [s.station, s.line])).toEqual([['st-old', 'L1']]);
    expect(v.source).toEqual({ redis: relay.url, prefix, state: 'up' });
    expect(v.refreshMs).toBe(2000);
    expect(v.window).toEqual({ minutes: 60, from: new Date(NOW - 30_000 - 59 * MIN).toISOString(), to: new Date(NOW + 30_000).toISOString(), recentMinutes: 5 });
  });

  it("gives each station its yield, throughput, top reject codes, last result and health, and the plant's totals", async () => {
    const v = await plant();
    const a = v.sites[0]!.areas[0]!.lines[0]!.cells[0]!.stations[0]!;
    expect(a).toMatchObject({
      station: 'st-a',
      hierarchy: CELL_1,
      parts: 18,
      verdicts: { pass: 16, fail: 1, error: 1 },
      yield: 16 / 18,
      topRejectCodes: [
        { code: 11, name: 'crack', count: 1, share: 0.5 },
        { code: 901, name: 'LG_ERR_STAGE_FAILED', count: 1, share: 0.5 },
      ],
      topLabels: [{ label: 'crack', count: 1, share: 1 }],
      health: { state: 'ok' },
    });
    // It started 3 minutes ago, partway through that minute: the rate is of the 16 parts since, over 2.5 minutes.
    expect(a.throughputPerMin).toBeCloseTo(16 / 2.5, 6);
    expect(a.partsPerMinute).toHaveLength(60);
    expect(a.partsPerMinute.reduce((t, n) => t + n, 0)).toBe(18);
    expect(a.lastAgeS).toBe(Math.round((NOW - (NOW - 2 * MIN - 40_000 + 17 * 9_000)) / 1000));

    const b = v.sites[0]!.areas[0]!.lines[0]!.cells[1]!.stations[0]!;
    expect(b).toMatchObject({ station: 'st-b', parts: 10, yield: 0.5, health: { state: 'errors', errorRate: 0.3, why: '30 % of the last 10 parts were errors (limit 10 %)' } });
    expect(b.topRejectCodes[0]).toMatchObject({ code: 901, count: 3 });
    const c = v.sites[0]!.areas[1]!.lines[0]!.cells[0]!.stations[0]!;
    expect(c).toMatchObject({ station: 'st-c', parts: 4, yield: 1, throughputPerMin: 0, health: { state: 'stale', why: 'no result for 20 min (stale after 5 min)' } });

    expect(v.totals).toMatchObject({ stations: 4, parts: 33, verdicts: { pass: 26, fail: 3, error: 4 }, health: { ok: 2, stale: 1, errors: 1 } });
    expect(v.totals.yield).toBeCloseTo(26 / 33, 9);
  });

  it('filters by any level of the hierarchy, and lists what each filter can take', async () => {
    expect(ids(await plant('?cell=C2'))).toEqual(['st-b']);
    expect(ids(await plant('?cell=C1'))).toEqual(['st-a', 'st-c']);
    // A station placed by its line alone still shows under that line's filter.
    expect(ids(await plant('?line=L1'))).toEqual(['st-a', 'st-b', 'st-old']);
    expect(ids(await plant('?site=plant-1&area=casting&line=L1&cell=C1'))).toEqual(['st-a']);
    expect(ids(await plant('?site=plant-2'))).toEqual([]);
    // An empty value is "all", as a form sends it.
    expect(ids(await plant('?site=&area=&line=&cell='))).toEqual(['st-a', 'st-b', 'st-c', 'st-old']);

    const v = await plant('?area=casting');
    expect(v.filter).toEqual({ area: 'casting' });
    expect(v.levels).toEqual({ site: ['plant-1'], area: ['casting', 'machining'], line: ['L1'], cell: ['C1', 'C2'] });
    expect(v.totals).toMatchObject({ stations: 2, parts: 28 });
    // A shorter window leaves out the stale station's parts, not the station.
    const short = await plant('?minutes=3');
    expect(short.window.minutes).toBe(3);
    expect(ids(short)).toContain('st-c');
    expect(short.totals.parts).toBe(16 + 10 + 1);
  });

  it('refuses a bad query with LG_ERR_API_BAD_REQUEST, and answers unknown routes with LG_ERR_API_NOT_FOUND', async () => {
    for (const q of ['?cell=%3Cscript%3E', '?minutes=0', '?minutes=1441', '?shift=night']) {
      const r = await get(`/api/plant${q}`);
      expect(r.status, q).toBe(400);
      expect(await r.json(), q).toMatchObject({ error: { code: 'LG_ERR_API_BAD_REQUEST', retryable: false } });
    }
    for (const p of ['/nope', '/../package.json', '/%2e%2e/package.json', '/page/index.html']) {
      const r = await get(p);
      expect(r.status, p).toBe(404);
      expect(await r.json(), p).toMatchObject({ error: { code: 'LG_ERR_API_NOT_FOUND' } });
    }
    const post = await fetch(new URL('/api/plant', server.url), { method: 'POST', body: '{}' });
    expect(post.status).toBe(404);
  });

  it('serves the page and its files with a policy that lets nothing leave the machine', async () => {
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(page.headers.get('content-security-policy')).toContain("connect-src 'self'");
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/plant.js"></script>');
    expect(html).not.toMatch(/https?:\/\//);
    for (const f of ['/plant.js', '/render.js', '/format.js', '/plant.css']) {
      const r = await get(f);
      expect(r.status, f).toBe(200);
      expect(await r.text(), f).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    }
  });

  it('tells a refused password from Redis away, and never shows the password', async () => {
    const u = new URL(REDIS_URL);
    u.username = 'no-such-user';
    u.password = 's3cret-pw';
    const refused = new PlantReader({ redis: u.toString(), prefix, log: silentLog });
    const other = await PlantServer.start({ settings: parsePlantOptions({ redis: u.toString(), prefix, port: 0 }), source: refused, log: silentLog });
    try {
      const r = await fetch(new URL('/api/plant', other.url));
      const text = await r.text();
      expect(r.status).toBe(401);
      expect(JSON.parse(text)).toMatchObject({ error: { code: 'LG_ERR_QUEUE_AUTH', retryable: false }, redis: { state: 'refused', where: expect.stringContaining('no-such-user:***@') } });
      expect(text).not.toContain('s3cret-pw');
      expect(await (await fetch(new URL('/health', other.url))).json()).toMatchObject({ status: 'degraded', redis: { state: 'refused' } });
    } finally {
      await other.close();
      await refused.close();
    }
  });

  it('stays up while Redis is away: 503 LG_ERR_QUEUE_REDIS from /api/plant, /health degraded; and recovers', async () => {
    expect(await (await get('/health')).json()).toEqual({ status: 'ok', redis: { state: 'up', where: relay.url } });
    await relay.down();
    try {
      let body: { error?: { code: string; retryable: boolean }; redis?: { state: string; where: string } } = {};
      await until(
        async () => {
          const r = await get('/api/plant');
          body = (await r.json()) as typeof body;
          return r.status === 503;
        },
        { what: '/api/plant to say Redis is away', ms: 15_000 },
      );
      expect(body).toMatchObject({ error: { code: 'LG_ERR_QUEUE_REDIS', retryable: true }, redis: { state: 'away', where: relay.url } });
      const health = await get('/health');
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'degraded', redis: { state: 'away', error: { code: 'LG_ERR_QUEUE_REDIS' } } });
      expect((await get('/')).status).toBe(200);
    } finally {
      await relay.up();
    }
    await until(async () => (await get('/api/plant')).status === 200, { what: '/api/plant to answer again once Redis is back', ms: 20_000 });
    expect(ids(await plant())).toHaveLength(4);
  }, 45_000);
});
