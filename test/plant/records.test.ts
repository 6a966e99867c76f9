import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiServer } from '../../runtime/api/server.js';
import { historyFileOf } from '../../runtime/history-file.js';
import { historyReaderFactory } from '../../runtime/registry/builtins.js';
import { InspectionResult } from '../../runtime/result.js';
import { dropPrefix, jobsOf, uniquePrefix, REDIS_URL } from '../helpers/redis.js';
import { testRoot } from '../helpers/roots.js';
import { silentLog, stationFrom } from '../helpers/station.js';
import { until } from '../helpers/until.js';
import { stopServed } from '../helpers/served.js';

/*
 * One record everywhere: a station with a place in the plant puts the same hierarchy in the
 * result the API serves, the job on the results queue, the JSONL line and the history row.
 */

const PLACE = { site: 'plant-1', area: 'casting', line: 'L2', cell: 'C3' };
const PARTS = 4;

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

describe('the hierarchy in every record of a placed station', () => {
  it('is the same in the API result, the queued job, the JSONL line and the history row', async () => {
    const prefix = uniquePrefix();
    cleanup.push(() => dropPrefix(prefix));
    const root = testRoot();
    const station = stationFrom(
      {
        station: { id: 'placed-01', hierarchy: PLACE },
        source: { name: 'cam', use: 'test/source@1', config: { probe: 'plant-records', count: PARTS, quietAfter: PARTS } },
        stages: [
          { name: 'work', use: 'test/stage@1', config: { probe: 'plant-records' } },
          { name: 'verdict', use: 'test/decide@1', config: { probe: 'plant-records' } },
        ],
        sinks: [
          { name: 'queue', use: 'core/bullmq@1', config: { redis: { url: REDIS_URL }, prefix, archive: { images: 'none' } } },
          { name: 'archive', use: 'core/jsonl-sink@1', config: { dir: 'var/results' } },
        ],
      },
      silentLog,
      root,
    );
    await station.start();
    const history = await historyReaderFactory(historyFileOf(station.plan)!);
    const server = await ApiServer.create({ station, settings: { host: '127.0.0.1', port: 0, auth: 'writes', maxUploadMiB: 1 }, log: silentLog, env: {}, history });
    const run = station.run();
    cleanup.push(() => stopServed({ server, station, run, history }));

    // From the API (its page reads the history file).
    let items: InspectionResult[] = [];
    await until(
      async () => {
        items = ((await server.inject({ method: 'GET', url: '/api/results?limit=100' })).json() as { items: InspectionResult[] }).items;
        return items.length === PARTS;
      },
      { what: `${PARTS} results in the history`, ms: 20_000 },
    );
    for (const r of items) expect(r.station).toEqual({ id: 'placed-01', line: 'L2', hierarchy: PLACE });
    const one = (await server.inject({ method: 'GET', url: `/api/results/${items[0]!.resultId}` })).json() as InspectionResult;
    expect(one.station).toEqual({ id: 'placed-01', line: 'L2', hierarchy: PLACE });

    // The OpenAPI document describes it, from the same zod schema.
    const doc = (await server.inject({ method: 'GET', url: '/api/openapi.json' })).json() as { components: { schemas: { InspectionResult: { properties: { station: { properties: Record<string, unknown> } } } } } };
    expect(doc.components.schemas.InspectionResult.properties.station.properties).toHaveProperty('hierarchy');

    // From the queue.
    let jobs: Awaited<ReturnType<typeof jobsOf>> = [];
    await until(async () => (jobs = await jobsOf(prefix, 'results')).length === PARTS, { what: `${PARTS} jobs on the results queue`, ms: 20_000 });
    for (const j of jobs) expect(InspectionResult.parse(j.data).station).toEqual({ id: 'placed-01', line: 'L2', hierarchy: PLACE });
    expect(new Set(jobs.map((j) => j.id))).toEqual(new Set(items.map((r) => r.resultId)));

    // From the JSONL file.
    await until(() => readdirSync(path.join(root, 'var/results')).some((f) => readFileSync(path.join(root, 'var/results', f), 'utf8').trim().split('\n').length === PARTS), { what: 'the JSONL lines' });
    const file = readdirSync(path.join(root, 'var/results')).find((f) => f.startsWith('placed-01'))!;
    const lines = readFileSync(path.join(root, 'var/results', file), 'utf8').trim().split('\n').map((l) => InspectionResult.parse(JSON.parse(l)));
    for (const r of lines) expect(r.station.hierarchy).toEqual(PLACE);

    // From the history row itself: the record column is the whole result.
    const db = new Database(historyFileOf(station.plan)!, { readonly: true });
    try {
      const rows = db.prepare('SELECT record FROM results').pluck().all() as string[];
      expect(rows).toHaveLength(PARTS);
      for (const row of rows) expect((JSON.parse(row) as InspectionResult).station.hierarchy).toEqual(PLACE);
    } finally {
      db.close();
    }
  }, 60_000);
});
