import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SinkInstance } from '../../runtime/contract.js';
import { InspectionResult } from '../../runtime/result.js';
import { bullmqSink } from '../../plugins/sink-bullmq/index.js';
import { SampleJob } from '../../plugins/sink-bullmq/jobs.js';
import { FIXTURE, contextFor, frameOf, sampleResult } from '../helpers/samples.js';
import { scratch } from '../helpers/scratch.js';
import { until } from '../helpers/until.js';
import { RedisRelay, dropPrefix, jobsOf, uniquePrefix } from '../helpers/redis.js';

/** Against the real Redis on 127.0.0.1:6379, each test under its own prefix, reached through a relay it can cut. */

let relay: RedisRelay;
beforeAll(async () => {
  relay = await RedisRelay.start();
});
afterAll(() => relay.close());

const open: SinkInstance[] = [];
const prefixes: string[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close?.()));
  await relay.up();
  await Promise.all(prefixes.splice(0).map((p) => dropPrefix(p)));
});

interface Setup {
  readonly prefix: string;
  readonly spool: string;
  readonly archive: string;
}

function setup(): Setup {
  const prefix = uniquePrefix();
  prefixes.push(prefix);
  return { prefix, spool: scratch('lg-spool-'), archive: scratch('lg-archive-') };
}

async function sink(s: Setup, extra: Record<string, unknown> = {}): Promise<SinkInstance> {
  const config = bullmqSink.manifest.config.parse({
    redis: { url: relay.url, urlEnv: 'LG_TEST_NO_SUCH_VAR', commandTimeoutMs: 500, connectTimeoutMs: 500 },
    prefix: s.prefix,
    spool: { dir: s.spool },
    archive: { dir: s.archive },
    ...extra,
  });
  const instance = await bullmqSink.init(config, contextFor(new AbortController().signal));
  open.push(instance);
  return instance;
}

const ctx = contextFor(new AbortController().signal);
const image = frameOf().image;
const passes = (n: number, from = 0) => Array.from({ length: n }, (_, i) => sampleResult({ partId: `P-${from + i}`, sequence: from + i, verdict: 'pass', rejectCode: 0, reasons: [], defects: [], source: { step: 'cam', plugin: 'x', ref: 'r' } }));


describe('core/bullmq@1 against the real Redis', () => {
  it('puts every result on <prefix>:results in order, job id = result id, data parsing with the result schema', async () => {
    const s = setup();
    const q = await sink(s, { sampling: { passFraction: 0 } });
    const results = passes(20);
    const statuses = [];
    for (const r of results) statuses.push(await q.write(r, ctx, image));
    await q.flush?.();
    const jobs = await jobsOf(s.prefix, 'results');
    expect(jobs.map((j) => j.id)).toEqual(results.map((r) => r.resultId));
    for (const j of jobs) expect(InspectionResult.safeParse(j.data).success).toBe(true);
    expect(jobs[0]!.opts).toMatchObject({ attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: { age: 7 * 86_400, count: 100_000 } });
    // Redis was there: the writes report delivery (after the first, which may race the first connection)
    expect(statuses.slice(1).every((x) => x === 'delivered')).toBe(true);
    expect(await jobsOf(s.prefix, 'samples')).toEqual([]); // passes only, and no random passes asked for
    expect(q.health?.()).toMatchObject({ status: 'ok' });
  });

  it('adds no second job when the same result is sent again', async () => {
    const s = setup();
    const q = await sink(s);
    const r = passes(1)[0]!;
    await q.write(r, ctx, image);
    await q.write(r, ctx, image);
    await q.flush?.();
    expect((await jobsOf(s.prefix, 'results')).map((j) => j.id)).toEqual([r.resultId]);
  });

  it('queues a rejected part as a sample with the reason, and its image in the archive under its sha256', async () => {
    const s = setup();
    const q = await sink(s);
    const frame = frameOf();
    const sha = (await import('node:crypto')).createHash('sha256').update(frame.image.data as Buffer).digest('hex');
    const r = sampleResult({ frame: { ref: FIXTURE, format: 'jpeg', width: 300, height: 300 } });
    await q.write(r, ctx, frame.image);
    await q.flush?.();
    const [job] = await jobsOf(s.prefix, 'samples');
    const sample = SampleJob.parse(job!.data);
    expect(job!.id).toBe(r.resultId);
    expect(sample).toMatchObject({ label: 'def_front', labelSource: 'source', reasons: ['fail'], why: ['rejected: reject-blurred'] });
    expect(sample.image).toMatchObject({ sha256: sha, format: 'jpeg', key: `${sha.slice(0, 2)}/${sha.slice(2, 4)}/${sha}.jpg` });
    expect(sample.image!.inline).toBeUndefined(); // the job carries the reference, not the bytes
    // the content address is filled in by the sink (off the part's cycle), in both queues' records
    expect(sample.result.frame.sha256).toBe(sha);
    expect((await jobsOf(s.prefix, 'results'))[0]!.data).toMatchObject({ frame: { sha256: sha } });
    expect(readFileSync(path.join(s.archive, sample.image!.key)).equals(frame.image.data as Buffer)).toBe(true);
  });

  it('spools while Redis is unreachable, says so, and drains in order with none twice when it returns', async () => {
    const s = setup();
    await relay.down();
    const q = await sink(s);
    const results = passes(10);
    const statuses = [];
    for (const r of results) statuses.push(await q.write(r, ctx, image));
    expect(statuses).toEqual(Array(10).fill('spooled'));
    await until(() => q.health?.().status === 'degraded');
    expect(q.health?.().detail).toMatch(/unreachable.*bytes spooled/);
    expect(await jobsOf(s.prefix, 'results')).toEqual([]);
    await relay.up();
    await until(async () => (await jobsOf(s.prefix, 'results')).length >= 10);
    // a few more after the return join the end of the line
    const later = passes(3, 10);
    for (const r of later) await q.write(r, ctx, image);
    await q.flush?.();
    // flush() promises spooled, not sent: a broker that flaps right after its return is retried, so wait for the sends.
    await until(async () => (await jobsOf(s.prefix, 'results')).length >= 13, { what: 'the later results to be sent' });
    expect((await jobsOf(s.prefix, 'results')).map((j) => j.id)).toEqual([...results, ...later].map((r) => r.resultId));
    await until(() => q.health?.().status === 'ok', { what: 'the sink to say ok' });
  }, 30_000);

  it('sends a spool left by an earlier run on the next start, before anything new', async () => {
    const s = setup();
    await relay.down();
    const first = await sink(s);
    const earlier = passes(5);
    for (const r of earlier) await first.write(r, ctx, image);
    await first.close?.();
    await relay.up();
    const second = await sink(s);
    const now = passes(2, 5);
    for (const r of now) await second.write(r, ctx, image);
    await second.flush?.();
    expect((await jobsOf(s.prefix, 'results')).map((j) => j.id)).toEqual([...earlier, ...now].map((r) => r.resultId));
  }, 30_000);

  it('refuses a second sink on the same spool folder', async () => {
    const s = setup();
    await sink(s);
    await expect(sink(s)).rejects.toMatchObject({ code: 'LG_ERR_QUEUE_SPOOL_LOCKED' });
  });

  it('refuses records once the spool is full, and reports the sink down until Redis takes the backlog', async () => {
    const s = setup();
    await relay.down();
    const q = await sink(s, { spool: { dir: s.spool, maxMiB: 0.01 } }); // about 10 kB: a handful of results
    let refused: unknown;
    for (const r of passes(40)) {
      try {
        await q.write(r, ctx, image);
      } catch (e) {
        refused = e;
        break;
      }
    }
    expect(refused).toMatchObject({ code: 'LG_ERR_QUEUE_SPOOL_FULL' });
    expect(q.health?.()).toMatchObject({ status: 'down', detail: expect.stringContaining('spool full') });
    await relay.up();
    await q.flush?.();
    await until(() => q.health?.().status === 'ok');
  }, 30_000);

  it('keeps images inline in the job when asked, for workers without the archive folder', async () => {
    const s = setup();
    const q = await sink(s, { archive: { dir: s.archive, inlineMaxBytes: 1_000_000 } });
    await q.write(sampleResult(), ctx, image);
    await q.flush?.();
    const sample = SampleJob.parse((await jobsOf(s.prefix, 'samples'))[0]!.data);
    expect(Buffer.from(sample.image!.inline!, 'base64').equals(image.data as Buffer)).toBe(true);
  });

  it('archives nothing when archive.images is none, and every frame when it is all', async () => {
    const none = setup();
    const a = await sink(none, { archive: { dir: none.archive, images: 'none' } });
    await a.write(sampleResult(), ctx, image);
    await a.flush?.();
    expect(SampleJob.parse((await jobsOf(none.prefix, 'samples'))[0]!.data).image).toBeUndefined();
    const all = setup();
    const b = await sink(all, { archive: { dir: all.archive, images: 'all' }, sampling: { passFraction: 0 } });
    await b.write(passes(1)[0]!, ctx, image);
    expect(existsSync(all.archive) && (await import('node:fs')).readdirSync(all.archive).length).toBe(1);
  });
});
