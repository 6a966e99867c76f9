import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ApiServer } from '../../runtime/api/server.js';
import type { HistoryReader } from '../../runtime/history.js';
import { historyFileOf } from '../../runtime/history-file.js';
import { historyReaderFactory } from '../../runtime/registry/builtins.js';
import type { InspectionResult } from '../../runtime/result.js';
import type { Station } from '../../runtime/station.js';
import { RedisRelay, dropPrefix, uniquePrefix } from '../helpers/redis.js';
import { testRoot } from '../helpers/roots.js';
import { FIXTURE } from '../helpers/samples.js';
import { scratch } from '../helpers/scratch.js';
import { silentLog, stationFrom } from '../helpers/station.js';
import { until } from '../helpers/until.js';
import { stopServed } from '../helpers/served.js';

/*
 * The HTTP API of a station with a queue sink (core/bullmq@1): what the spool holds shows in
 * /metrics, and the archive serves the station's own result records. Redis is reached through a
 * relay the test cuts: while it is down nothing listens on its port.
 */

const PROMTOOL = '/usr/bin/promtool';

let relay: RedisRelay;
beforeAll(async () => {
  relay = await RedisRelay.start();
});
afterAll(() => relay.close());

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
  await relay.up();
});

function queueSink(prefix: string, archive: Record<string, unknown>): Record<string, unknown> {
  cleanup.push(() => dropPrefix(prefix));
  return {
    name: 'queue',
    use: 'core/bullmq@1',
    config: { redis: { url: relay.url, urlEnv: 'LG_TEST_NO_SUCH_VAR', connectTimeoutMs: 500, commandTimeoutMs: 500 }, prefix, archive },
  };
}

/** Starts the station and its API, as `linegate run` does: with `history`, /api/results reads the history file the station writes. */
async function serve(station: Station, o: { history?: boolean } = {}): Promise<ApiServer> {
  await station.start();
  const history: HistoryReader | undefined = o.history === true ? await historyReaderFactory(historyFileOf(station.plan)!) : undefined;
  const server = await ApiServer.create({ station, settings: { host: '127.0.0.1', port: 0, auth: 'writes', maxUploadMiB: 1 }, log: silentLog, env: {}, ...(history === undefined ? {} : { history }) });
  const run = station.run();
  cleanup.push(() => stopServed({ server, station, run, history }));
  return server;
}

async function gauge(server: ApiServer, name: string, step: string): Promise<number | undefined> {
  const text = (await server.inject({ method: 'GET', url: '/metrics' })).body.toString('utf8');
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`step="${step}"`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('the API of a station with a queue sink', () => {
  it('exports the age of the oldest record waiting in the spool: growing while Redis is away, 0 once it took them', async () => {
    await relay.down();
    const station = stationFrom({
      station: { id: 'spool-age' },
      source: { name: 'cam', use: 'test/source@1', config: { probe: 'spool-age-src', count: 0, quietAfter: 5 } },
      stages: [
        { name: 'work', use: 'test/stage@1', config: { probe: 'spool-age' } },
        { name: 'verdict', use: 'test/decide@1', config: { probe: 'spool-age' } },
      ],
      sinks: [queueSink(uniquePrefix(), { images: 'none' })],
      history: false,
    });
    const server = await serve(station);
    const age = (): Promise<number | undefined> => gauge(server, 'linegate_spool_oldest_age_seconds', 'queue');
    await until(async () => ((await gauge(server, 'linegate_spool_bytes', 'queue')) ?? 0) > 0 && ((await age()) ?? 0) > 0, { what: 'results spooled, with an age', ms: 20_000 });
    const first = (await age())!;
    await until(async () => (await age())! > first + 0.2, { what: 'the oldest age to grow while Redis is away', ms: 20_000 });
    expect(station.health().steps.queue?.data).toMatchObject({ oldestPendingAgeS: expect.any(Number) });
    expect(station.health().steps.queue?.detail).toMatch(/unreachable.*the oldest for \d+ s/);

    // promtool takes the exposition with the spool series in it
    if (existsSync(PROMTOOL)) {
      const file = path.join(scratch('lg-metrics-'), 'metrics.txt');
      writeFileSync(file, (await server.inject({ method: 'GET', url: '/metrics' })).body);
      const out = await promisify(execFile)('sh', ['-c', `${PROMTOOL} check metrics < ${file}`]).catch((e: { stdout: string; stderr: string }) => e);
      expect(out.stderr, out.stdout).toBe('');
    }

    await relay.up();
    await until(async () => (await gauge(server, 'linegate_spool_bytes', 'queue')) === 0 && (await age()) === 0, { what: 'the spool to drain and its age to be 0', ms: 30_000 });
    expect(station.health().steps.queue?.data).toMatchObject({ pendingBytes: 0, oldestPendingAgeS: 0 });
  }, 60_000);

  it("serves a hot-folder part's image from the archive by the station's own result record, after its file was moved to done", async () => {
    await relay.down();
    const root = testRoot();
    const inbox = path.join(root, 'inbox');
    mkdirSync(inbox);
    cpSync(FIXTURE, path.join(inbox, 'part-1.jpg'));
    const station = stationFrom(
      {
        station: { id: 'hot-archive', cycleBudgetMs: 2000 },
        source: { name: 'cam', use: 'core/hot-folder@1', config: { dir: 'inbox', settleMs: 50, pollMs: 20 } },
        stages: [
          { name: 'decode', use: 'core/image-decode@1', config: { color: 'GRAY' } },
          { name: 'work', use: 'test/stage@1', config: { probe: 'hot-archive' } },
          { name: 'verdict', use: 'test/decide@1', config: { probe: 'hot-archive' } },
        ],
        sinks: [queueSink(uniquePrefix(), { dir: 'var/archive', images: 'all' })],
      },
      silentLog,
      root,
    );
    // The record the API gives is the one the history stored.
    const server = await serve(station, { history: true });
    const done = path.join(inbox, '.linegate/done/part-1.jpg');
    let record: InspectionResult | undefined;
    await until(
      async () => {
        const page = (await server.inject({ method: 'GET', url: '/api/results?partId=part-1' })).json() as { items: InspectionResult[] };
        record = page.items[0];
        return record !== undefined && existsSync(done);
      },
      { what: 'part-1 in the history and its file in done/', ms: 20_000 },
    );
    const jpeg = readFileSync(FIXTURE);
    const sha = createHash('sha256').update(jpeg).digest('hex');
    expect(record!.frame.sha256).toBe(sha);
    // The frame file is gone from where the record says it was read: only the archive can answer.
    expect(existsSync(record!.frame.ref)).toBe(false);
    const archived = readFileSync(path.join(root, 'var/archive', sha.slice(0, 2), sha.slice(2, 4), `${sha}.jpg`));
    const res = await server.inject({ method: 'GET', url: `/api/results/${record!.resultId}/image` });
    expect(res.status, res.body.toString('utf8').slice(0, 300)).toBe(200);
    expect(res.headers['content-type']).toBe('image/jpeg');
    expect(res.body.equals(archived)).toBe(true);
    expect(res.body.equals(jpeg)).toBe(true);
    expect(readdirSync(path.join(inbox, '.linegate/processing'))).toEqual([]);
  }, 60_000);
});
