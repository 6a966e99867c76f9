import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { InspectionResult } from '../../runtime/result.js';
import { scratch } from '../helpers/scratch.js';
import { ROOT } from '../helpers/station.js';
import { dropPrefix, jobsOf, uniquePrefix } from '../helpers/redis.js';

/**
 * The demo station as `npm start` runs it, with its queue sink under a prefix
 * of this test's own and its files in a scratch folder: 30 parts with Redis
 * away, then 30 with Redis back, and every one of the 60 on the queue once.
 */

const prefix = uniquePrefix();
afterAll(() => dropPrefix(prefix));

function demoCopy(): string {
  const station = parse(readFileSync(path.join(ROOT, 'stations/demo.yaml'), 'utf8')) as {
    station: Record<string, unknown>;
    sinks: { name: string; use: string; config: Record<string, unknown> }[];
  };
  const dir = scratch('lg-demo-queue-');
  station.station.root = ROOT; // fixtures and models from the repository
  for (const sink of station.sinks) {
    if (sink.use === 'core/jsonl-sink@1') sink.config.dir = path.join(dir, 'results');
    if (sink.use === 'core/bullmq@1') Object.assign(sink.config, { prefix, spool: { dir: path.join(dir, 'spool') }, archive: { dir: path.join(dir, 'archive') } });
  }
  const file = path.join(dir, 'demo.yaml');
  writeFileSync(file, JSON.stringify(station));
  return file;
}

async function run(file: string, redisUrl: string): Promise<{ summary: { frames: number }; health?: unknown }> {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'bin/linegate.mjs'), 'run', file, '--max-frames', '30'], {
    cwd: ROOT,
    env: { ...process.env, LINEGATE_REDIS_URL: redisUrl },
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as { summary: { frames: number } };
}

describe('the demo station and its queue', () => {
  it('finishes with Redis unreachable, spools, and delivers the spooled parts with the next run, none twice', async () => {
    const file = demoCopy();
    const away = await run(file, 'redis://127.0.0.1:1'); // nothing listens on port 1
    expect(away.summary.frames).toBe(30);
    expect(away.health).toMatchObject({ status: 'degraded', steps: { queue: { status: 'degraded', detail: expect.stringMatching(/unreachable.*spooled/) } } });
    expect(await jobsOf(prefix, 'results')).toEqual([]);

    const back = await run(file, 'redis://127.0.0.1:6379');
    expect(back.summary.frames).toBe(30);
    expect(back.health).toMatchObject({ status: 'ok' });
    const jobs = await jobsOf(prefix, 'results');
    expect(jobs).toHaveLength(60);
    expect(new Set(jobs.map((j) => j.id)).size).toBe(60);
    for (const j of jobs) {
      const r = InspectionResult.parse(j.data);
      expect(j.id).toBe(r.resultId);
      expect(r.station.id).toBe('demo-01');
    }
    // the spooled run's parts come first, in the order they were inspected
    const seq = jobs.map((j) => (j.data as InspectionResult).sequence);
    expect(seq).toEqual([...Array(30).keys(), ...Array(30).keys()]);
  }, 120_000);
});
