import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startApi, type ApiServer } from '../../runtime/api/server.js';
import { InspectionResult } from '../../runtime/result.js';
import type { RunSummary, Station } from '../../runtime/station.js';
import type { Logger } from '../../runtime/contract.js';
import { ROOT, capturingLog, silentLog, stationFrom } from '../helpers/station.js';
import { scratch } from '../helpers/scratch.js';
import { until } from '../helpers/until.js';
import { stopServed } from '../helpers/served.js';

const TOKEN = 'listen-test-token-0123456789abcdef';
const JPEG_DIR = path.join(ROOT, 'fixtures/casting/ok_front');
const JPEG = readFileSync(path.join(JPEG_DIR, readdirSync(JPEG_DIR).find((f) => /\.jpe?g$/.test(f))!));
const PROMTOOL = '/usr/bin/promtool';

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function running(station: Station, o: { heartbeatMs?: number; maxBufferedBytes?: number; log?: Logger } = {}): Promise<{ server: ApiServer; run: Promise<RunSummary> }> {
  await station.start();
  const server = await startApi({ station, settings: { host: '127.0.0.1', port: 0, auth: 'writes', maxUploadMiB: 4 }, log: o.log ?? silentLog, env: { LINEGATE_API_TOKEN: TOKEN }, events: { heartbeatMs: o.heartbeatMs ?? 50, ...(o.maxBufferedBytes === undefined ? {} : { maxBufferedBytes: o.maxBufferedBytes }) } });
  const run = station.run();
  cleanup.push(() => stopServed({ server, station, run }));
  return { server, run };
}

/** Reads a server-sent-event stream over a real socket until `want` results arrived. */
function sse(url: string, want: number): Promise<{ results: InspectionResult[]; heartbeats: number }> {
  return new Promise((resolve, reject) => {
    const results: InspectionResult[] = [];
    let heartbeats = 0;
    let buffer = '';
    const req = http.get(url, (res) => {
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let at: number;
        while ((at = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          if (event.includes('event: heartbeat')) heartbeats++;
          const data = event.split('\n').find((l) => l.startsWith('data: '));
          if (data !== undefined && event.includes('event: result')) results.push(InspectionResult.parse(JSON.parse(data.slice(6))));
        }
        if (results.length >= want && heartbeats > 0) {
          req.destroy();
          resolve({ results, heartbeats });
        }
      });
    });
    req.on('error', (e) => (results.length >= want ? undefined : reject(e)));
  });
}

const liveStation = (id: string): Station =>
  stationFrom({
    station: { id },
    source: { name: 'cam', use: 'test/source@1', config: { probe: `${id}-src`, count: 0, intervalMs: 20 } },
    stages: [
      { name: 'work', use: 'test/stage@1', config: { probe: id } },
      { name: 'verdict', use: 'test/decide@1', config: { probe: id } },
    ],
    sinks: [{ name: 'queue', use: 'test/sink@1', config: { probe: `${id}-sink` } }],
  });

describe('the station API on a real listener', () => {
  it('streams results to a real SSE client, with heartbeats, while the station runs', async () => {
    const { server } = await running(liveStation('sse-live'));
    const { results, heartbeats } = await sse(`${server.url}/api/events`, 5);
    expect(results.length).toBeGreaterThanOrEqual(5);
    expect(heartbeats).toBeGreaterThan(0);
    const seqs = results.map((r) => r.sequence);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    // what was streamed is what /api/results serves
    const listed = (await (await fetch(`${server.url}/api/results?limit=500`)).json()) as { items: InspectionResult[] };
    expect(listed.items.map((r) => r.resultId)).toEqual(expect.arrayContaining(results.map((r) => r.resultId)));
  });

  it('drops an event-stream client that does not read: the server closes its socket, counts and logs it, and the station goes on', async () => {
    // Results of ~66 kB (a long frame ref) fill the kernel's socket buffers (a few MB on loopback) within a second or two.
    const station = stationFrom({
      station: { id: 'sse-slow' },
      source: { name: 'cam', use: 'test/source@1', config: { probe: 'sse-slow-src', count: 0, intervalMs: 10, refPad: 32 * 1024 } },
      stages: [
        { name: 'work', use: 'test/stage@1', config: { probe: 'sse-slow' } },
        { name: 'verdict', use: 'test/decide@1', config: { probe: 'sse-slow' } },
      ],
      sinks: [{ name: 'queue', use: 'test/sink@1', config: { probe: 'sse-slow-sink' } }],
      history: false,
    });
    const { log, entries } = capturingLog();
    const { server } = await running(station, { maxBufferedBytes: 256 * 1024, log });
    const metric = async (name: string): Promise<number | undefined> => parseExposition(await (await fetch(`${server.url}/metrics`)).text()).find((s) => s.name === name)?.value;
    // A raw client that sends its request and then never reads a byte.
    const client = net.connect(server.port, '127.0.0.1');
    client.on('error', () => undefined); // a reset is as good as a close here
    client.pause();
    const closed = once(client, 'close');
    cleanup.push(async () => void client.destroy());
    await once(client, 'connect');
    client.write('GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
    const dropLine = (): boolean => entries().some((e) => e.level === 40 && /event-stream client reads too slowly: dropped/.test(e.msg ?? ''));
    // Connected (or, on a slow machine, already dropped: the next wait then returns at once).
    await until(async () => (await metric('linegate_event_clients')) === 1 || dropLine(), { what: 'the client to be connected', ms: 10_000 });
    await until(dropLine, { what: 'the hub to drop the client that does not read', ms: 30_000 });
    expect(await metric('linegate_event_clients')).toBe(0);
    expect(await metric('linegate_event_clients_dropped_total')).toBe(1);
    const line = entries().find((e) => /reads too slowly/.test(e.msg ?? ''))!;
    expect(line.bufferedBytes as number).toBeGreaterThan(0);
    // The server closed the socket: once the client reads again it gets what the kernel held, then the end.
    client.resume();
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the server did not close the socket')), 15_000))]);
    // ... and the station never waited for it.
    const before = station.health().frames.data?.arrived as number;
    await until(() => (station.health().frames.data?.arrived as number) > before + 20, { ms: 20_000 });
    expect(station.health().status).toBe('ok');
  }, 60_000);

  it('serves /metrics that parse back and pass promtool check metrics', async () => {
    const { server } = await running(liveStation('metrics-live'));
    await until(async () => ((await (await fetch(`${server.url}/api/results`)).json()) as { items: unknown[] }).items.length >= 4);
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const samples = parseExposition(text);
    const pass = samples.find((s) => s.name === 'linegate_results_total' && s.labels.verdict === 'pass');
    expect(pass?.value).toBeGreaterThan(0);
    expect(samples.some((s) => s.name === 'linegate_stage_duration_seconds_bucket' && s.labels.step === 'work')).toBe(true);
    expect(samples.some((s) => s.name === 'linegate_cycle_duration_seconds_count')).toBe(true);
    expect(samples.find((s) => s.name === 'linegate_station_up')?.value).toBe(1);
    expect(samples.some((s) => s.name === 'linegate_sink_lane_depth' && s.labels.sink === 'queue')).toBe(true);
    if (!existsSync(PROMTOOL)) {
      console.warn(`skipping promtool check: ${PROMTOOL} is absent (apt-get install prometheus)`);
      return;
    }
    const file = path.join(scratch('lg-metrics-'), 'metrics.txt');
    writeFileSync(file, text);
    const out = await promisify(execFile)('sh', ['-c', `${PROMTOOL} check metrics < ${file}`]).catch((e: { stdout: string; stderr: string; code: number }) => e);
    expect(out.stderr, out.stdout).toBe('');
  });

  it('takes frames pushed over HTTP by core/http-source@1 and answers with the verdict within the wait', async () => {
    const station = stationFrom({
      station: { id: 'http-src' },
      source: { name: 'cam', use: 'core/http-source@1', config: { queueSize: 2 } },
      stages: [
        { name: 'decode', use: 'core/image-decode@1', config: { color: 'GRAY' } },
        { name: 'work', use: 'test/stage@1', config: { probe: 'http-src' } },
        { name: 'verdict', use: 'test/decide@1', config: { probe: 'http-src' } },
      ],
      sinks: [{ name: 'queue', use: 'test/sink@1', config: { probe: 'http-src-sink' } }],
    });
    const { server } = await running(station);
    const url = `${server.url}/api/steps/cam/frames`;
    const post = (q: string, token = TOKEN): Promise<Response> => fetch(`${url}?${q}`, { method: 'POST', headers: { 'content-type': 'image/jpeg', authorization: `Bearer ${token}` }, body: JPEG });
    expect((await post('partId=A-1', 'wrong-token-wrong-token-wrong')).status).toBe(401);
    await until(async () => (await post('partId=A-1&waitMs=5000')).status !== 503);
    const decided = await post('partId=A-2&waitMs=5000');
    expect(decided.status).toBe(200);
    const body = (await decided.json()) as { resultId: string; verdict: string; decided: boolean; partId: string };
    expect(body).toMatchObject({ decided: true, partId: 'A-2' });
    const stored = await fetch(`${server.url}/api/results/${body.resultId}`);
    expect(stored.status).toBe(200);
    expect(((await stored.json()) as InspectionResult).partId).toBe('A-2');
    const accepted = await post('partId=A-3');
    expect([200, 202]).toContain(accepted.status);
    const a = (await accepted.json()) as { resultId: string };
    await until(async () => (await fetch(`${server.url}/api/results/${a.resultId}`)).status === 200);
    // the OpenAPI document lists the plugin's route
    const doc = (await (await fetch(`${server.url}/api/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(doc.paths['/api/steps/cam/frames']).toBeDefined();
  });
});

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** A strict parser of the text exposition format 0.0.4: every line a comment, HELP/TYPE, or a sample; it throws on anything else. */
function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  const typed = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta !== null) {
      if (meta[1] === 'TYPE') {
        expect(['counter', 'gauge', 'histogram', 'summary', 'untyped']).toContain(meta[3]);
        if (meta[3] === 'counter') expect(meta[2]).toMatch(/_total$/);
        typed.set(meta[2]!, meta[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)(?: -?\d+)?$/.exec(line);
    if (m === null) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    const base = m[1]!.replace(/_(bucket|sum|count)$/, '');
    expect(typed.has(m[1]!) || typed.has(base), `${m[1]} has no TYPE`).toBe(true);
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}
