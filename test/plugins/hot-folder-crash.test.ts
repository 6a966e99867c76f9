import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LinegateProcess, killAll } from '../helpers/child.js';
import { REDIS_URL, dropPrefix, jobsOf, uniquePrefix } from '../helpers/redis.js';
import { scratch } from '../helpers/scratch.js';
import { ROOT } from '../helpers/station.js';
import { until } from '../helpers/until.js';

/**
 * The finding: 500 images in a hot folder, `linegate run` SIGKILLed midway and
 * started again; every file ended in done/ and in the JSONL file, but only 383
 * reached the results queue (the queue sink's in-memory lane died with the
 * process, after the hot folder had settled the files). Now a file is settled
 * only once every durable sink holds its result, and a file inspected again
 * after the crash gets the same result id: every file once in the queue and
 * once in the JSONL file, none lost, none twice.
 *
 * Here 200 files, killed once 60 are done (the finding's 500 took 15 s of the
 * suite for the same property); the fault suite's crash-restart case kills
 * twice, at the instant the hot folder settles a file.
 */

const FILES = 200;
const redisUrl = process.env.LINEGATE_REDIS_URL ?? REDIS_URL;
const prefix = uniquePrefix();
afterEach(killAll);
afterAll(() => dropPrefix(prefix));

const FIXTURES = ['ok_front', 'def_front'].flatMap((d) => readdirSync(path.join(ROOT, 'fixtures/casting', d)).map((f) => path.join(ROOT, 'fixtures/casting', d, f)));

function stationIn(dir: string): string {
  const inbox = path.join(dir, 'inbox');
  mkdirSync(inbox);
  for (let i = 0; i < FILES; i++) copyFileSync(FIXTURES[i % FIXTURES.length]!, path.join(inbox, `part-${String(i).padStart(4, '0')}.jpg`));
  const file = path.join(dir, 'station.yaml');
  writeFileSync(
    file,
    `station: { id: crash-01, sinkTimeoutMs: 5000 }
source: { name: cam, use: core/hot-folder@1, config: { dir: inbox, settleMs: 0, pollMs: 20 } }
stages:
  - { name: decode, use: core/image-decode@1 }
  - { name: quality, use: core/image-quality@1 }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ label: blurred, minScore: 0.2, rejectCode: 11 }] } }
sinks:
  - { name: results, use: core/jsonl-sink@1, config: { dir: results, rotate: none } }
  - { name: queue, use: core/bullmq@1, config: { prefix: ${prefix}, spool: { dir: spool }, archive: { dir: archive } } }
`,
  );
  return file;
}

const filesIn = (dir: string): string[] => {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
  } catch {
    return []; // not made yet: the station is still starting
  }
};

/** How often each part id occurs. */
function counts(ids: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

describe('a hot folder station killed with SIGKILL midway', () => {
  it('puts every file exactly once in the results queue and in the JSONL file after a restart', async () => {
    const dir = scratch('lg-crash-');
    const station = stationIn(dir);
    const lg = (...p: string[]): string => path.join(dir, 'inbox', '.linegate', ...p);
    const env = { LINEGATE_REDIS_URL: redisUrl };

    const first = new LinegateProcess(['run', station, '--no-pretty'], env);
    await until(() => filesIn(lg('done')).length + filesIn(lg('failed')).length >= 60, { ms: 90_000, what: 'some of the files done' });
    first.killGroup(); // the plug pulled: no drain, no flush
    expect(await first.exited).toMatchObject({ signal: 'SIGKILL' });
    const doneAtKill = filesIn(lg('done')).length + filesIn(lg('failed')).length;
    expect(doneAtKill).toBeLessThan(FILES);

    const second = new LinegateProcess(['run', station, '--no-pretty'], env);
    await until(() => filesIn(lg('done')).length + filesIn(lg('failed')).length === FILES && filesIn(lg('processing')).length === 0, { ms: 120_000, what: 'every file finished' });
    await until(async () => (await jobsOf(prefix, 'results')).length >= FILES, { ms: 30_000, what: 'every result on the queue' });
    second.signal('SIGTERM');
    expect(await second.exited).toMatchObject({ code: 0 });

    const want = Array.from({ length: FILES }, (_, i) => `part-${String(i).padStart(4, '0')}`);
    const jobs = (await jobsOf(prefix, 'results')).map((j) => (j.data as { partId: string }).partId);
    const lines = readFileSync(path.join(dir, 'results', 'crash-01.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as { partId: string }).partId);
    for (const [what, ids] of [['queue', jobs], ['jsonl', lines]] as const) {
      const c = counts(ids);
      expect({ what, missing: want.filter((id) => !c.has(id)) }).toEqual({ what, missing: [] });
      expect({ what, twice: [...c].filter(([, n]) => n > 1).map(([id]) => id) }).toEqual({ what, twice: [] });
      expect(ids).toHaveLength(FILES);
    }
    expect([...filesIn(lg('done')), ...filesIn(lg('failed'))].sort()).toEqual(want.map((id) => `${id}.jpg`));
  }, 300_000);
});
