import { describe, expect, it } from 'vitest';
import { InspectionResult } from '../../runtime/result.js';
import { linegate } from '../helpers/cli.js';
import { demoCopy, stepNamed, type StationData } from '../helpers/demo.js';
import { REDIS_URL, jobsOf } from '../helpers/redis.js';

/**
 * The demo station as `npm start` runs it, with its queue sink under a prefix of this test's own and
 * its files in a root of its own: 15 parts with Redis away, then 15 with Redis back, and every one of
 * the 30 on the queue once.
 */

interface RunLine {
  readonly summary: { frames: number };
  readonly health?: unknown;
}

describe('the demo station and its queue', () => {
  it('finishes with Redis unreachable, spools, and delivers the spooled parts with the next run, none twice', async () => {
    // Four times the demo's trigger rate: the same parts, in a quarter of the time.
    const faster = (s: StationData): void => void Object.assign(stepNamed(s, 'plc').config!, { simulate: { triggerRateHz: 20 } });
    const away = demoCopy({ edit: (s) => (faster(s), void Object.assign(stepNamed(s, 'queue').config!, { redis: { url: 'redis://127.0.0.1:1', urlEnv: 'LG_TEST_NO_SUCH_VAR', connectTimeoutMs: 200, commandTimeoutMs: 200 } })) });
    const first = await linegate(['run', away.file, '--max-frames', '15', '--no-pretty']);
    expect(first.code, first.stderr).toBe(0);
    const { summary, health } = first.lastJson<RunLine>();
    expect(summary.frames).toBe(15);
    expect(health).toMatchObject({ status: 'degraded', steps: { queue: { status: 'degraded', detail: expect.stringMatching(/unreachable.*spooled/) } } });
    expect(await jobsOf(away.prefix, 'results')).toEqual([]);

    // The same station, spool and prefix, with Redis back.
    const back = demoCopy({ edit: (s) => (faster(s), void Object.assign(stepNamed(s, 'queue').config!, { prefix: away.prefix, redis: { url: REDIS_URL }, spool: { dir: `${away.root}/var/spool/demo-01/queue` } })) });
    const second = await linegate(['run', back.file, '--max-frames', '15', '--no-pretty']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.lastJson<RunLine>()).toMatchObject({ summary: { frames: 15 }, health: { status: 'ok' } });
    const jobs = await jobsOf(away.prefix, 'results');
    expect(jobs).toHaveLength(30);
    expect(new Set(jobs.map((j) => j.id)).size).toBe(30);
    for (const j of jobs) {
      const r = InspectionResult.parse(j.data);
      expect(j.id).toBe(r.resultId);
      expect(r.station.id).toBe('demo-01');
    }
    // the spooled run's parts come first, in the order they were inspected
    const seq = jobs.map((j) => (j.data as InspectionResult).sequence);
    expect(seq).toEqual([...Array(15).keys(), ...Array(15).keys()]);
  }, 90_000);
});
