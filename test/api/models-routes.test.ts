import { copyFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiServer, startApi, type InjectResponse } from '../../runtime/api/server.js';
import type { EffectiveApiSettings } from '../../runtime/api/context.js';
import { DeployReport, ModelsStatus } from '../../runtime/deploy/types.js';
import type { InspectionResult } from '../../runtime/result.js';
import type { RunSummary, Station } from '../../runtime/station.js';
import { ROOT, silentLog, stationFrom } from '../helpers/station.js';
import { scratch } from '../helpers/scratch.js';
import { until } from '../helpers/until.js';
import { castingStages } from '../helpers/casting.js';
import { stopServed } from '../helpers/served.js';

const TOKEN = 'models-route-token-0123456789abcdef';
const OTHER = 'models-other-token-0123456789abcdef';
const ROUTES = ['/api/models/deploy', '/api/models/rollback', '/api/models/shadow', '/api/models/shadow/stop'];
const V2 = path.join(ROOT, 'models/casting-cls/2');

const settings = (o: Partial<EffectiveApiSettings> = {}): EffectiveApiSettings => ({ host: '127.0.0.1', port: 0, auth: 'writes', maxUploadMiB: 1, ...o });

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** A station of probe plugins (no model): what the routes refuse before the station is asked needs nothing more. */
async function light(env: Record<string, string> = { LINEGATE_API_TOKEN: TOKEN }): Promise<ApiServer> {
  const station = stationFrom({
    station: { id: 'models-light', deploy: { maxPackageMiB: 1 } },
    source: { name: 'cam', use: 'test/source@1', config: { probe: 'models-light-src', count: 0, quietAfter: 0 } },
    stages: [
      { name: 'work', use: 'test/stage@1', config: { probe: 'models-light' } },
      { name: 'verdict', use: 'test/decide@1', config: { probe: 'models-light' } },
    ],
    sinks: [],
  });
  const server = await ApiServer.create({ station, settings: settings(), log: silentLog, env });
  cleanup.push(async () => {
    await server.close();
    await station.close();
  });
  return server;
}

interface Part {
  readonly name?: string;
  readonly filename?: string;
  readonly data: Buffer | string;
}

/** A multipart body written by hand: a test must be able to send what no FormData would (a NUL in a name, a cut-off body). */
function multipart(parts: readonly Part[], boundary = 'lg-test-boundary'): { body: Buffer; headers: Record<string, string> } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const disposition = ['form-data', ...(p.name === undefined ? [] : [`name="${p.name}"`]), ...(p.filename === undefined ? [] : [`filename="${p.filename}"`])].join('; ');
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\nContent-Type: application/octet-stream\r\n\r\n`), Buffer.from(p.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, authorization: `Bearer ${TOKEN}` } };
}

const file = (filename: string, data: Buffer | string = '{}'): Part => ({ name: 'file', filename, data });
const error = (r: InjectResponse): { code: string; message: string; issues?: string[] } => (r.json() as { error: { code: string; message: string; issues?: string[] } }).error;

describe('the model deployment routes, before the station is asked', () => {
  it('need the token on every write route (401), and are off without one (403)', async () => {
    const server = await light();
    const { body, headers } = multipart([file('model.json')]);
    for (const url of ROUTES) {
      for (const authorization of [undefined, `Bearer ${OTHER}`]) {
        const r = await server.inject({ method: 'POST', url, headers: { 'content-type': headers['content-type']!, ...(authorization === undefined ? {} : { authorization }) }, body });
        expect(r.status, `${url} ${authorization ?? 'no token'}`).toBe(401);
        expect(error(r).code).toBe('LG_ERR_API_UNAUTHORIZED');
      }
    }
    const off = await light({});
    for (const url of ROUTES) {
      const r = await off.inject({ method: 'POST', url, headers, body });
      expect(r.status, url).toBe(403);
      expect(error(r).code).toBe('LG_ERR_API_WRITES_OFF');
    }
  });

  it('refuse a body that is not well-formed multipart, or not multipart at all', async () => {
    const server = await light();
    const auth = { authorization: `Bearer ${TOKEN}` };
    const good = multipart([file('model.json')]);
    for (const url of ['/api/models/deploy', '/api/models/shadow']) {
      const noBoundary = await server.inject({ method: 'POST', url, headers: { ...auth, 'content-type': 'multipart/form-data' }, body: good.body });
      expect(noBoundary.status).toBe(400);
      expect(error(noBoundary)).toMatchObject({ code: 'LG_ERR_API_BAD_REQUEST', message: expect.stringContaining('without a boundary') });
      const cut = await server.inject({ method: 'POST', url, headers: good.headers, body: good.body.subarray(0, good.body.length - 30) });
      expect(cut.status).toBe(400);
      expect(error(cut).message).toContain('cut short');
      const noFiles = multipart([{ name: 'calibration', data: 'keep' }]);
      const empty = await server.inject({ method: 'POST', url, headers: noFiles.headers, body: noFiles.body });
      expect(empty.status).toBe(400);
      expect(error(empty).message).toContain('no file part');
      const json = await server.inject({ method: 'POST', url, headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
      expect(json.status).toBe(415);
      expect(error(json).code).toBe('LG_ERR_API_MEDIA_TYPE');
    }
  });

  it('refuse file names that could leave or hide in the package folder, files sent twice, and too many files', async () => {
    const server = await light();
    const cases: [string, Part[], RegExp][] = [
      ['a parent folder', [file('../model.onnx')], /has a folder in it/],
      ['a dot-dot name', [file('model..onnx')], /has "\.\." in it/],
      ['a sub-folder', [file('sub/model.onnx')], /has a folder in it/],
      ['a backslash', [file('sub\\model.onnx')], /has a folder in it/],
      ['a NUL', [file('model.onnx\0.txt')], /control character/],
      ['a hidden file', [file('.env')], /is hidden/],
      ['a long name', [file(`${'m'.repeat(129)}`)], /129 characters; at most 128/],
      ['an empty name', [file('')], /empty file name/],
      ['a file twice', [file('model.json'), file('model.json')], /"model\.json" is sent twice/],
      ['too many files', Array.from({ length: 33 }, (_, i) => file(`f${i}.txt`)), /33 files; a package has at most 32/],
      ['an unknown field', [file('model.json'), { name: 'version', data: '3' }], /unknown field\(s\) "version"/],
    ];
    for (const [what, parts, why] of cases) {
      const { body, headers } = multipart(parts);
      const r = await server.inject({ method: 'POST', url: '/api/models/deploy', headers, body });
      expect(r.status, what).toBe(400);
      expect(error(r).code, what).toBe('LG_ERR_API_BAD_REQUEST');
      expect(error(r).message, what).toMatch(why);
    }
    // Every problem at once, not the first only.
    const { body, headers } = multipart([file('../a'), file('.b'), file('model.json'), file('model.json')]);
    const all = error(await server.inject({ method: 'POST', url: '/api/models/deploy', headers, body })).message;
    expect(all).toMatch(/folder in it.*hidden.*sent twice/);
    const bad = multipart([file('model.json'), { name: 'calibration', data: 'maybe' }]);
    const calibration = await server.inject({ method: 'POST', url: '/api/models/deploy', headers: bad.headers, body: bad.body });
    expect(calibration.status).toBe(400);
    expect(error(calibration).message).toContain('field calibration must be leave or keep');
    const shadow = multipart([file('model.json'), { name: 'calibration', data: 'keep' }]);
    expect(error(await server.inject({ method: 'POST', url: '/api/models/shadow', headers: shadow.headers, body: shadow.body })).message).toContain('only file parts are taken');
  });

  it("refuse a package larger than the station's deploy.maxPackageMiB (413) before reading it", async () => {
    const server = await light();
    const { body, headers } = multipart([file('model.json'), file('model.onnx', Buffer.alloc(1024 * 1024 + 100 * 1024, 1))]);
    const r = await server.inject({ method: 'POST', url: '/api/models/deploy', headers, body });
    expect(r.status).toBe(413);
    expect(error(r).code).toBe('LG_ERR_API_TOO_LARGE');
  });

  it('are in the OpenAPI document with their schemas', async () => {
    const server = await light();
    const doc = (await server.inject({ method: 'GET', url: '/api/openapi.json' })).json() as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: { properties?: Record<string, unknown> } }> }>; security: unknown[] }>> };
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/models', ...ROUTES]));
    expect(Object.keys(doc.paths['/api/models']!.get!.responses['200']!.content!['application/json']!.schema.properties!)).toEqual(expect.arrayContaining(['active', 'history', 'canRollback', 'thresholds', 'calibration', 'shadow']));
    expect(Object.keys(doc.paths['/api/models/deploy']!.post!.responses['200']!.content!['application/json']!.schema.properties!)).toEqual(expect.arrayContaining(['deployment', 'previous', 'thresholds', 'warnings']));
    for (const url of ROUTES) expect(doc.paths[url]!.post!.security, url).toEqual([{ bearer: [] }]);
  });
});

/* ---------------------------------------------------------------------------------------------- */

interface Live {
  readonly url: string;
  readonly station: Station;
  readonly results: InspectionResult[];
  readonly drops: InspectionResult[];
  readonly run: Promise<RunSummary>;
}

/** The casting station on a looped folder, casting-cls/1 serving, its API listening with two named tokens. */
async function liveCasting(): Promise<Live> {
  const station = stationFrom({
    station: { id: 'models-live', cycleBudgetMs: 5000, maxInFlight: 1 },
    source: { name: 'cam', use: 'core/folder-source@1', config: { dir: 'fixtures/casting', loop: true, rateHz: 10 } },
    stages: castingStages(),
    sinks: [],
  });
  const tokens = path.join(scratch('lg-models-tokens-'), 'tokens');
  writeFileSync(tokens, `# test\nalice ${TOKEN}\nmes ${OTHER}\n`);
  await station.start();
  const server = await startApi({ station, settings: settings({ tokenFile: tokens }), log: silentLog, env: {} });
  const results: InspectionResult[] = [];
  const drops: InspectionResult[] = [];
  station.on('result', (r) => void results.push(r));
  station.on('drop', (r) => void drops.push(r));
  const run = station.run();
  cleanup.push(() => stopServed({ server, station, run }));
  return { url: server.url, station, results, drops, run };
}

/** A package folder as the CLI uploads it: every file beside model.json. */
async function form(dir: string, fields: Record<string, string> = {}): Promise<FormData> {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  for (const name of readdirSync(dir)) f.append('file', new Blob([readFileSync(path.join(dir, name))]), name);
  return f;
}

/** casting-cls/2 copied, then broken by `edit`. */
function brokenCopy(edit: (dir: string) => void): string {
  const dir = scratch('lg-broken-pkg-');
  for (const name of readdirSync(V2)) copyFileSync(path.join(V2, name), path.join(dir, name));
  edit(dir);
  return dir;
}

const post = (live: Live, url: string, body?: FormData, token = TOKEN): Promise<Response> => fetch(`${live.url}${url}`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { body }) });
const versionOf = (r: InspectionResult): string | undefined => r.model?.version;

/** Results from the `from`-th on, once `n` of them are there. */
async function next(live: Live, from: number, n: number): Promise<InspectionResult[]> {
  await until(() => live.results.length >= from + n, { ms: 30_000, what: `${n} results after the ${from}th` });
  return live.results.slice(from);
}

/**
 * The versions of the results decided after a switch was answered: the part in flight at the switch
 * (at most one, maxInFlight: 1) still ends with the model that took it, and names it; every later
 * part names the new one.
 */
function afterSwitch(results: readonly InspectionResult[], from: string, to: string): string[] {
  const versions = results.map((r) => versionOf(r) ?? 'none');
  return versions[0] === from ? versions.slice(1) : versions.map((v) => (v === to ? v : `${v} (expected ${to})`));
}

/** Collects the event stream's `event: model` payloads until stopped. */
function modelEvents(url: string): { readonly seen: ModelsStatus[]; readonly ready: Promise<Response>; stop(): void } {
  const seen: ModelsStatus[] = [];
  const ac = new AbortController();
  // fetch resolves with the headers, which the hub writes as it takes the client on.
  const ready = fetch(`${url}/api/events`, { signal: ac.signal });
  void (async () => {
    const res = await ready;
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let at: number;
      while ((at = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, at).split('\n');
        buffer = buffer.slice(at + 2);
        const data = event.find((l) => l.startsWith('data: '));
        if (event.includes('event: model') && data !== undefined) seen.push(ModelsStatus.parse(JSON.parse(data.slice(6))));
      }
    }
  })().catch(() => undefined);
  return { seen, ready, stop: () => ac.abort() };
}

describe('live model deployment through the API (a real station)', () => {
  it('switches casting-cls/1 to /2 between parts with no frame dropped, records who, streams the change, and rolls back to /1', { timeout: 120_000 }, async () => {
    const live = await liveCasting();
    await next(live, 0, 3);
    const events = modelEvents(live.url);
    cleanup.push(async () => events.stop());
    await events.ready;

    const deployed = await post(live, '/api/models/deploy', await form(V2));
    expect(deployed.status).toBe(200);
    const report = DeployReport.parse(await deployed.json());
    expect(report.deployment).toMatchObject({ name: 'casting-cls', version: '2', action: 'deploy', by: 'alice' });
    expect(report.previous).toMatchObject({ name: 'casting-cls', version: '1' });
    const later = afterSwitch(await next(live, live.results.length, 6), '1', '2');
    expect(later.length).toBeGreaterThanOrEqual(5);
    expect(later).toEqual(later.map(() => '2'));

    // In the order parts were taken: /1 up to one part, /2 from the next; none dropped, none missing.
    const bySequence = [...live.results].sort((a, b) => a.sequence - b.sequence);
    const versions = bySequence.map(versionOf);
    const first2 = versions.indexOf('2');
    expect(first2).toBeGreaterThan(0);
    expect(versions.slice(0, first2).every((v) => v === '1')).toBe(true);
    expect(versions.slice(first2).every((v) => v === '2')).toBe(true);
    expect(bySequence.map((r) => r.sequence)).toEqual(bySequence.map((_, i) => bySequence[0]!.sequence + i));
    expect(live.drops).toEqual([]);
    expect(live.results.filter((r) => r.verdict === 'error').map((r) => r.reasons)).toEqual([]);

    const status = ModelsStatus.parse(await (await fetch(`${live.url}/api/models`)).json());
    expect(status.active).toMatchObject({ version: '2', by: 'alice', action: 'deploy' });
    expect(status.history[0]).toMatchObject({ version: '2' });
    expect(status.canRollback).toBe(true);
    await until(() => events.seen.some((s) => s.active?.version === '2'), { what: 'an `event: model` naming /2 on the event stream' });

    const rolled = await post(live, '/api/models/rollback', undefined, OTHER);
    expect(rolled.status).toBe(200);
    expect(DeployReport.parse(await rolled.json()).deployment).toMatchObject({ version: '1', action: 'rollback', by: 'mes' });
    const back = afterSwitch(await next(live, live.results.length, 4), '2', '1');
    expect(back.length).toBeGreaterThanOrEqual(3);
    expect(back).toEqual(back.map(() => '1'));
    const all = [...live.results].sort((a, b) => a.sequence - b.sequence).map(versionOf).join('');
    expect(all).toMatch(/^1+2+1+$/);
    expect(live.drops).toEqual([]);
  });

  it('refuses a package whose model.onnx no longer matches its sha256, and one whose model.json declares the wrong input size, while /1 keeps serving', { timeout: 120_000 }, async () => {
    const live = await liveCasting();
    await next(live, 0, 2);
    const corrupt = brokenCopy((dir) => {
      const onnx = readFileSync(path.join(dir, 'model.onnx'));
      onnx.writeUInt8(onnx.readUInt8(onnx.length - 10) ^ 0xff, onnx.length - 10);
      writeFileSync(path.join(dir, 'model.onnx'), onnx);
    });
    const wrongSize = brokenCopy((dir) => {
      const manifest = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as { input: { width: number; height: number } };
      manifest.input.width = 256;
      manifest.input.height = 256;
      writeFileSync(path.join(dir, 'model.json'), JSON.stringify(manifest, null, 2));
    });
    for (const [dir, code] of [
      [corrupt, 'LG_ERR_MODEL_HASH'],
      [wrongSize, 'LG_ERR_MODEL_INPUT'],
    ] as const) {
      const r = await post(live, '/api/models/deploy', await form(dir));
      expect(r.status, code).toBe(400);
      const body = (await r.json()) as { error: { code: string; issues?: string[] } };
      expect([body.error.code, ...(body.error.issues ?? [])].join('\n'), code).toContain(code);
      const since = live.results.length;
      const still = await next(live, since, 3);
      expect(still.map(versionOf), code).toEqual(still.map(() => '1'));
    }
    const status = ModelsStatus.parse(await (await fetch(`${live.url}/api/models`)).json());
    expect(status.active).toMatchObject({ name: 'casting-cls', version: '1' });
    expect(live.results.every((r) => versionOf(r) === '1')).toBe(true);
    expect(live.drops).toEqual([]);
  });
});
