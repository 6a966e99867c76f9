import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiServer, type InjectResponse } from '../../runtime/api/server.js';
import type { EffectiveApiSettings } from '../../runtime/api/context.js';
import { RecentResults } from '../../runtime/api/recent.js';
import { ImageStore } from '../../runtime/api/images.js';
import { InspectionResult, resultJsonSchema } from '../../runtime/result.js';
import { uuidv7 } from '../../runtime/execute/outcome.js';
import type { Station } from '../../runtime/station.js';
import { ROOT, silentLog, stationFrom } from '../helpers/station.js';
import { scratch } from '../helpers/scratch.js';

const TOKEN = 'a-long-enough-test-token-0123456789';
const JPEG = readFileSync(path.join(ROOT, 'fixtures/casting/def_front', readdirFirst('fixtures/casting/def_front')));

function readdirFirst(dir: string): string {
  return readdirSync(path.join(ROOT, dir)).filter((f) => f.endsWith('.jpeg') || f.endsWith('.jpg'))[0]!;
}

const settings = (o: Partial<EffectiveApiSettings> = {}): EffectiveApiSettings => ({ host: '127.0.0.1', port: 0, auth: 'writes', maxUploadMiB: 1, ...o });

let open: { server: ApiServer; station: Station }[] = [];
afterEach(async () => {
  for (const o of open) {
    await o.server.close();
    await o.station.close();
  }
  open = [];
});

function lightStation(id = 'api-test', extra: Record<string, unknown> = {}): Station {
  return stationFrom({
    station: { id, cycleBudgetMs: 2000 },
    source: { name: 'cam', use: 'test/source@1', config: { probe: `${id}-src`, count: 0, quietAfter: 0 } },
    stages: [
      { name: 'decode', use: 'core/image-decode@1', config: { color: 'GRAY' } },
      { name: 'work', use: 'test/stage@1', config: { probe: id } },
      { name: 'verdict', use: 'test/decide@1', config: { probe: id } },
    ],
    sinks: [{ name: 'queue', use: 'test/sink@1', config: { probe: `${id}-sink` } }],
    ...extra,
  });
}

async function served(o: { env?: Record<string, string>; auth?: 'writes' | 'all'; history?: RecentResults; images?: ImageStore; station?: Station } = {}): Promise<{ server: ApiServer; station: Station }> {
  const station = o.station ?? lightStation();
  await station.start();
  const server = await ApiServer.create({ station, settings: settings(o.auth === undefined ? {} : { auth: o.auth }), log: silentLog, env: o.env ?? {}, ...(o.history === undefined ? {} : { history: o.history }), ...(o.images === undefined ? {} : { images: o.images }) });
  open.push({ server, station });
  return { server, station };
}

/** A result as a station would record it; `n` orders them in time. */
function result(n: number, o: Partial<InspectionResult> = {}): InspectionResult {
  const at = new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString();
  return InspectionResult.parse({
    schemaVersion: 1,
    resultId: uuidv7(Date.parse(at)),
    station: { id: 'api-test' },
    partId: `part-${n}`,
    sequence: n,
    time: { capturedAt: at, decidedAt: at },
    source: { step: 'cam', plugin: 'test/source@1', ref: `mem://${n}` },
    frame: { ref: `mem://${n}` },
    model: null,
    verdict: n % 3 === 0 ? 'fail' : 'pass',
    rejectCode: n % 3 === 0 ? 7 : 0,
    reasons: n % 3 === 0 ? [{ code: 'odd', message: 'odd part', rejectCode: 7 }] : [],
    defects: n % 3 === 0 ? [{ label: 'crack', score: 0.9, box: { x: 10, y: 10, w: 40, h: 30 } }] : [],
    scores: {},
    timings: { totalMs: 5, stages: { work: 3 } },
    delivery: {},
    ...o,
  });
}

const json = <T>(r: InjectResponse): T => r.json() as T;
const bearer = (t = TOKEN): Record<string, string> => ({ authorization: `Bearer ${t}` });

describe('the station API (inject)', () => {
  it('answers /health always and /ready with the health record, 503 when the station is not up', async () => {
    const { server, station } = await served();
    expect(json<{ alive: boolean }>(await server.inject({ method: 'GET', url: '/health' })).alive).toBe(true);
    const ready = await server.inject({ method: 'GET', url: '/ready' });
    expect(ready.status).toBe(200);
    expect(json<{ ready: boolean; state: string; disk: { ok: boolean } }>(ready)).toMatchObject({ ready: true, state: 'READY', disk: { ok: true } });
    await station.close();
    const down = await server.inject({ method: 'GET', url: '/ready' });
    expect(down.status).toBe(503);
    expect(json<{ ready: boolean; state: string; status: string }>(down)).toMatchObject({ ready: false, state: 'CLOSED', status: 'down' });
  });

  it('shows the compiled plan with secrets redacted', async () => {
    const station = stationFrom({
      station: { id: 'redact-test' },
      source: { name: 'cam', use: 'test/source@1', config: { probe: 'redact', count: 1 } },
      stages: [
        { name: 'work', use: 'test/stage@1', config: { probe: 'redact' } },
        { name: 'verdict', use: 'test/decide@1', config: { probe: 'redact' } },
      ],
      sinks: [{ name: 'queue', use: 'core/bullmq@1', config: { redis: { url: 'redis://admin:hunter2@127.0.0.1:6399' }, prefix: 'lg-redact-test' } }],
    });
    // Not started: the plan alone is what the route shows (no Redis needed).
    const server = await ApiServer.create({ station, settings: settings(), log: silentLog, env: {} });
    open.push({ server, station });
    const r = await server.inject({ method: 'GET', url: '/api/station' });
    expect(r.status).toBe(200);
    const text = r.body.toString();
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('admin:');
    expect(text).toContain('redis://[redacted]@127.0.0.1:6399');
    expect(json<{ settings: { cycleBudgetMs: number }; api: { writes: boolean } }>(r)).toMatchObject({ settings: { cycleBudgetMs: 1000 }, api: { writes: false } });
  });

  it('lists results newest first with filters and cursor paging, and gets one by id', async () => {
    const history = new RecentResults();
    const all = Array.from({ length: 12 }, (_, i) => result(i + 1));
    for (const r of all) history.add(r);
    const { server } = await served({ history });
    const page1 = json<{ items: InspectionResult[]; next?: string }>(await server.inject({ method: 'GET', url: '/api/results?limit=5' }));
    expect(page1.items.map((r) => r.partId)).toEqual(['part-12', 'part-11', 'part-10', 'part-9', 'part-8']);
    const page2 = json<{ items: InspectionResult[]; next?: string }>(await server.inject({ method: 'GET', url: `/api/results?limit=5&cursor=${page1.next}` }));
    expect(page2.items.map((r) => r.partId)).toEqual(['part-7', 'part-6', 'part-5', 'part-4', 'part-3']);
    const page3 = json<{ items: InspectionResult[]; next?: string }>(await server.inject({ method: 'GET', url: `/api/results?limit=5&cursor=${page2.next}` }));
    expect(page3.items.map((r) => r.partId)).toEqual(['part-2', 'part-1']);
    expect(page3.next).toBeUndefined();

    const fails = json<{ items: InspectionResult[] }>(await server.inject({ method: 'GET', url: '/api/results?verdict=fail&label=crack&code=odd&rejectCode=7' }));
    expect(fails.items.map((r) => r.partId)).toEqual(['part-12', 'part-9', 'part-6', 'part-3']);
    const part = json<{ items: InspectionResult[] }>(await server.inject({ method: 'GET', url: '/api/results?partId=part-4' }));
    expect(part.items).toHaveLength(1);
    const range = json<{ items: InspectionResult[] }>(await server.inject({ method: 'GET', url: `/api/results?since=${all[2]!.time.decidedAt}&until=${all[5]!.time.decidedAt}` }));
    expect(range.items.map((r) => r.partId)).toEqual(['part-5', 'part-4', 'part-3']);

    const one = await server.inject({ method: 'GET', url: `/api/results/${all[3]!.resultId}` });
    expect(one.status).toBe(200);
    expect(InspectionResult.parse(one.json()).partId).toBe('part-4');
    const missing = await server.inject({ method: 'GET', url: `/api/results/${uuidv7()}` });
    expect(missing.status).toBe(404);
    expect(json<{ error: { code: string } }>(missing).error.code).toBe('LG_ERR_API_NOT_FOUND');
  });

  it('serves an archived image by its sha256, and the defects drawn on it with ?overlay=1', async () => {
    const archive = scratch('lg-api-archive-');
    const sha = createHash('sha256').update(JPEG).digest('hex');
    mkdirSync(path.join(archive, sha.slice(0, 2), sha.slice(2, 4)), { recursive: true });
    writeFileSync(path.join(archive, sha.slice(0, 2), sha.slice(2, 4), `${sha}.jpg`), JPEG);
    const history = new RecentResults();
    const withImage = result(3, { frame: { ref: 'mem://3', sha256: sha } });
    const without = result(4);
    history.add(withImage);
    history.add(without);
    const { server } = await served({ history, images: new ImageStore([archive], scratch('lg-api-root-')) });
    const img = await server.inject({ method: 'GET', url: `/api/results/${withImage.resultId}/image` });
    expect(img.status).toBe(200);
    expect(img.headers['content-type']).toBe('image/jpeg');
    expect(img.body.equals(JPEG)).toBe(true);
    const overlay = await server.inject({ method: 'GET', url: `/api/results/${withImage.resultId}/image?overlay=1` });
    expect(overlay.status).toBe(200);
    expect(overlay.headers['content-type']).toBe('image/png');
    expect(overlay.body.subarray(1, 4).toString()).toBe('PNG');
    const none = await server.inject({ method: 'GET', url: `/api/results/${without.resultId}/image` });
    expect(none.status).toBe(404);
    expect(json<{ error: { code: string } }>(none).error.code).toBe('LG_ERR_API_NO_IMAGE');
  });

  it('inspects an uploaded image through the station stages with the sinks off, only with the token', async () => {
    const station = lightStation('inspect-test');
    const { server } = await served({ env: { LINEGATE_API_TOKEN: TOKEN }, station });
    const seen: InspectionResult[] = [];
    station.on('result', (r) => void seen.push(r));
    const none = await server.inject({ method: 'POST', url: '/api/inspect', headers: { 'content-type': 'image/jpeg' }, body: JPEG });
    expect(none.status).toBe(401);
    const wrong = await server.inject({ method: 'POST', url: '/api/inspect', headers: { 'content-type': 'image/jpeg', ...bearer('x'.repeat(TOKEN.length)) }, body: JPEG });
    expect(wrong.status).toBe(401);
    const ok = await server.inject({ method: 'POST', url: '/api/inspect?partId=P-1', headers: { 'content-type': 'image/jpeg', ...bearer() }, body: JPEG });
    expect(ok.status).toBe(200);
    const r = InspectionResult.parse(ok.json());
    expect(r).toMatchObject({ partId: 'P-1', verdict: 'pass', delivery: {}, source: { step: 'api' } });
    expect(Object.keys(r.timings.stages)).toEqual(['decode', 'work', 'verdict']);
    // multipart works too
    const boundary = 'XyZ123';
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`),
      JPEG,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const mp = await server.inject({ method: 'POST', url: '/api/inspect', headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, ...bearer() }, body });
    expect(mp.status).toBe(200);
    // the probe stage finds a defect on odd sequence numbers: the second one-off inspection is a fail
    expect(InspectionResult.parse(mp.json())).toMatchObject({ verdict: 'fail', rejectCode: 7, sequence: 1 });
    // no sink and no station event heard of them
    expect(seen).toEqual([]);
  });

  it('turns the write routes off (403) when no token is configured', async () => {
    const { server } = await served();
    const r = await server.inject({ method: 'POST', url: '/api/inspect', headers: { 'content-type': 'image/jpeg', ...bearer() }, body: JPEG });
    expect(r.status).toBe(403);
    expect(json<{ error: { code: string } }>(r).error.code).toBe('LG_ERR_API_WRITES_OFF');
  });

  it('refuses bad ids, path traversal, bad JSON, bad media types, oversized bodies and bad or missing tokens on every route', async () => {
    const { server } = await served({ env: { LINEGATE_API_TOKEN: TOKEN }, auth: 'all' });
    const code = (r: InjectResponse): string => json<{ error: { code: string } }>(r).error.code;
    // every route but /health needs the token with auth: all
    for (const route of server.routes) {
      const url = route.url.replace(':id', uuidv7());
      const r = await server.inject({ method: route.method, url });
      if (route.access === 'open') expect(r.status, url).toBe(200);
      else {
        expect(r.status, `${route.method} ${url}`).toBe(401);
        expect(code(r)).toBe('LG_ERR_API_UNAUTHORIZED');
        const wrong = await server.inject({ method: route.method, url, headers: bearer(`${TOKEN}x`) });
        expect(wrong.status, `${route.method} ${url} wrong token`).toBe(401);
      }
    }
    const h = bearer();
    for (const url of ['/api/results/../../etc/passwd', '/api/results/..%2F..%2Fetc%2Fpasswd', '/api/results/..%2F..%2Fetc%2Fpasswd/image', '/api/results/not-a-uuid', '/api/results/%00/image']) {
      const r = await server.inject({ method: 'GET', url, headers: h });
      expect([400, 404], url).toContain(r.status);
      expect(code(r), url).toMatch(/^LG_ERR_API_(BAD_REQUEST|NOT_FOUND)$/);
      expect(r.body.toString()).not.toContain('root:');
    }
    expect(code(await server.inject({ method: 'GET', url: '/api/results/not-a-uuid', headers: h }))).toBe('LG_ERR_API_BAD_REQUEST');
    expect((await server.inject({ method: 'GET', url: '/api/results?verdict=maybe', headers: h })).status).toBe(400);
    expect((await server.inject({ method: 'GET', url: '/api/results?limit=100000', headers: h })).status).toBe(400);
    expect((await server.inject({ method: 'GET', url: '/api/results?unknown=1', headers: h })).status).toBe(400);
    expect((await server.inject({ method: 'GET', url: '/api/results?since=yesterday', headers: h })).status).toBe(400);
    const badJson = await server.inject({ method: 'POST', url: '/api/inspect', headers: { ...h, 'content-type': 'application/json' }, body: '{"a":' });
    expect(badJson.status).toBe(400);
    expect(code(badJson)).toBe('LG_ERR_API_BAD_REQUEST');
    const goodJson = await server.inject({ method: 'POST', url: '/api/inspect', headers: { ...h, 'content-type': 'application/json' }, body: '{}' });
    expect(goodJson.status).toBe(415);
    const octet = await server.inject({ method: 'POST', url: '/api/inspect', headers: { ...h, 'content-type': 'application/octet-stream' }, body: JPEG });
    expect(octet.status).toBe(415);
    const big = await server.inject({ method: 'POST', url: '/api/inspect', headers: { ...h, 'content-type': 'image/jpeg' }, body: Buffer.alloc(1024 * 1024 + 1, 0xff) });
    expect(big.status).toBe(413);
    expect(code(big)).toBe('LG_ERR_API_TOO_LARGE');
    const bigJson = await server.inject({ method: 'POST', url: '/api/inspect', headers: { ...h, 'content-type': 'application/json' }, body: `{"a":"${'x'.repeat(1024 * 1024)}"}` });
    expect(bigJson.status).toBe(413);
    const notImage = await server.inject({ method: 'POST', url: '/api/inspect', headers: { ...h, 'content-type': 'image/png' }, body: Buffer.from('not an image') });
    expect(notImage.status).toBe(400);
    const nowhere = await server.inject({ method: 'GET', url: '/../../etc/passwd', headers: h });
    expect(nowhere.status).toBe(404);
    expect(code(nowhere)).toBe('LG_ERR_API_NOT_FOUND');
    const shortToken = ApiServer.create({ station: lightStation('short-token'), settings: settings(), log: silentLog, env: { LINEGATE_API_TOKEN: 'short' } });
    await expect(shortToken).rejects.toMatchObject({ code: 'LG_ERR_API_TOKEN' });
  });

  it('reads the token from api.tokenFile, never from the station file', async () => {
    const dir = scratch('lg-api-token-');
    writeFileSync(path.join(dir, 'token'), `${TOKEN}\n`);
    const station = lightStation('token-file');
    await station.start();
    const server = await ApiServer.create({ station, settings: settings({ tokenFile: path.join(dir, 'token') }), log: silentLog, env: {} });
    open.push({ server, station });
    const r = await server.inject({ method: 'POST', url: '/api/inspect', headers: { 'content-type': 'image/jpeg', ...bearer() }, body: JPEG });
    expect(r.status).toBe(200);
    await expect(ApiServer.create({ station, settings: settings({ tokenFile: path.join(dir, 'missing') }), log: silentLog, env: {} })).rejects.toMatchObject({ code: 'LG_ERR_API_TOKEN' });
  });

  it('writes a new token into api.tokenFile on a first start with generateToken (mode 0600), and keeps an existing one', async () => {
    const dir = scratch('lg-api-gen-');
    const file = path.join(dir, 'secrets', 'token');
    const station = lightStation('token-gen');
    await station.start();
    const first = await ApiServer.create({ station, settings: settings({ tokenFile: file, generateToken: true }), log: silentLog, env: {} });
    open.push({ server: first, station });
    const token = readFileSync(file, 'utf8').trim();
    expect(token.length).toBeGreaterThanOrEqual(40);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const h = { 'content-type': 'image/jpeg' };
    expect((await first.inject({ method: 'POST', url: '/api/inspect', headers: h, body: JPEG })).status).toBe(401);
    expect((await first.inject({ method: 'POST', url: '/api/inspect', headers: { ...h, authorization: `Bearer ${token}` }, body: JPEG })).status).toBe(200);
    // A second start reads the same token: nothing a client already holds is invalidated.
    const second = await ApiServer.create({ station, settings: settings({ tokenFile: file, generateToken: true }), log: silentLog, env: {} });
    open.push({ server: second, station });
    expect(readFileSync(file, 'utf8').trim()).toBe(token);
    expect((await second.inject({ method: 'POST', url: '/api/inspect', headers: { ...h, authorization: `Bearer ${token}` }, body: JPEG })).status).toBe(200);
  });

  it('publishes an OpenAPI 3.1 document with every route, the result schema as `linegate schema result` prints it, and resolvable refs', async () => {
    const { server } = await served();
    const doc = json<{ openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown> }>>; components: { schemas: Record<string, unknown> } }>(await server.inject({ method: 'GET', url: '/api/openapi.json' }));
    expect(doc.openapi).toBe('3.1.0');
    for (const r of server.routes) {
      const p = r.url.replace(/:(\w+)/g, '{$1}');
      expect(doc.paths[p]?.[r.method.toLowerCase()], `${r.method} ${p}`).toBeDefined();
    }
    const { $schema: _s, ...result } = resultJsonSchema();
    expect(doc.components.schemas.InspectionResult).toEqual(result);
    // every $ref points at something in the document
    const refs: string[] = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) k === '$ref' && typeof x === 'string' ? refs.push(x) : walk(x);
    };
    walk(doc);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      expect(ref.startsWith('#/')).toBe(true);
      const target = ref.slice(2).split('/').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
      expect(target, ref).toBeDefined();
    }
    expect(JSON.stringify(doc)).not.toContain('"$defs"');
  });
});
