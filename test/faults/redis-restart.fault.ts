import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CASTING_STAGES_YAML, LinegateProcess, ROOT, RedisServer, RssSampler, cleanUp, logLines, note, pidOf, sleep, tempRoot, waitLog, waitUntil, writeStation } from './harness.js';
import { RSS_MAX_MIB, alarms, countJobs, expectAccounted, expectOnceEach, expectRssBounded, expectUndecidableRejected, lastJsonLine, readJsonl, readQueue, type RunLine } from './invariants.js';

/**
 * Fault 2: Redis killed (-9) mid-run and started again on the same port. A
 * redis-server of the case's own, without persistence: what it held before the
 * kill is gone with it, as on a line. Everything decided from the moment
 * Redis stopped answering must reach the new Redis from the spool, once, in
 * order, without a restart of linegate; what the old Redis had taken is a
 * prefix of the run (nothing lost in the middle).
 */

afterEach(cleanUp);

describe('fault: Redis killed and restarted mid-run', () => {
  it('spools while Redis is away, says so once, and drains the spool into the restarted Redis: every later result exactly once, nothing lost in between', async () => {
    const root = tempRoot('redis');
    const redis = await RedisServer.start();
    const prefix = `lgfault-${randomUUID().slice(0, 8)}`;
    const file = writeStation(
      root,
      `station: { id: fault-redis, root: ${ROOT}, cycleBudgetMs: 1000, maxInFlight: 1, queueSize: 2 }
source: { name: cam0, use: core/folder-source@1, config: { dir: fixtures/casting, loop: true, rateHz: 20 } }
${CASTING_STAGES_YAML}sinks:
  - { name: results, use: core/jsonl-sink@1, config: { dir: ${path.join(root, 'results')} } }
  - name: queue
    use: core/bullmq@1
    config:
      # urlEnv names a variable nobody sets: LINEGATE_REDIS_URL in the environment must not point this run elsewhere.
      redis: { url: "${redis.url}", urlEnv: LG_FAULTS_NO_SUCH_VARIABLE, connectTimeoutMs: 500, commandTimeoutMs: 500 }
      prefix: ${prefix}
      spool: { dir: ${path.join(root, 'spool')} }
      archive: { dir: ${path.join(root, 'archive')} }
`,
    );
    const run = new LinegateProcess(['run', file, '--no-pretty']);
    const rss = new RssSampler(await pidOf(run));
    await waitUntil(async () => (await countJobs(redis.url, prefix)) >= 40, 60_000, '40 results in Redis before the kill', run);

    const killedAt = Date.now();
    await redis.kill9();
    await waitLog(run, /queue broker unreachable/, 20_000);
    await sleep(4000); // ~80 parts at 20 Hz go to the spool meanwhile
    const restartedAt = Date.now();
    await redis.up();
    const back = run.stderr.length;
    await waitLog(run, /queue broker reachable/, 20_000, back);
    const reachableAt = Date.now();

    // Without a restart of linegate, the spool drains: every result decided from the kill until Redis was back reaches
    // the new Redis. (Not "every result in the JSONL at this moment": parts go on at 20 Hz, and the newest is in the
    // JSONL up to forwardLingerMs before it is in Redis. The end of the run checks every result, once.)
    await waitUntil(
      async () => {
        const since = readJsonl(path.join(root, 'results')).results.filter((r) => Date.parse(r.time.decidedAt) >= killedAt && Date.parse(r.time.decidedAt) <= reachableAt);
        const ids = new Set((await readQueue(redis.url, prefix)).jobs.map((j) => j.id));
        return since.length > 0 && since.every((r) => ids.has(r.resultId));
      },
      20_000,
      'every result decided since the kill in the restarted Redis, while linegate runs',
      run,
    );
    run.signal('SIGINT');
    const exit = await run.exited;
    rss.stop();
    expect(exit.code, `linegate run exited ${exit.code}:\n${run.stderr.slice(-3000)}`).toBe(0);
    note('redis-restart', { outageMs: restartedAt - killedAt, rssMaxMiB: Math.round(rss.maxMiB) });

    const { summary, health } = lastJsonLine<RunLine>(run.stdout, 'linegate run');
    expectAccounted(summary);
    expect(health.steps.queue?.status, `queue health at the end: ${JSON.stringify(health.steps.queue)}`).toBe('ok');
    expect(health.steps.queue?.data?.pendingBytes, 'spool empty at the end').toBe(0);

    const { results, broken } = readJsonl(path.join(root, 'results'));
    expect(broken).toEqual([]);
    expect(results.length, 'every frame in the JSONL').toBe(summary.frames);
    expectOnceEach('JSONL by result id', results, (r) => r.resultId);
    expectUndecidableRejected(results);

    const { jobs, waiting } = await readQueue(redis.url, prefix);
    expectOnceEach('restarted Redis: wait list by job id', waiting, (id) => id);
    expectOnceEach('restarted Redis: jobs by part sequence', jobs, (j) => String(j.data.sequence));
    for (const j of jobs) expect(j.id, 'job id = result id').toBe(j.data.resultId);
    const known = new Set(results.map((r) => r.resultId));
    expect(jobs.filter((j) => !known.has(j.id)).map((j) => j.id), 'jobs linegate never produced').toEqual([]);

    // What the old Redis took died with it: a prefix of the run. From the first result it did not confirm, every one is in the new Redis.
    const inRedis = new Set(jobs.map((j) => j.id));
    const bySeq = [...results].sort((a, b) => a.sequence - b.sequence);
    const firstKept = bySeq.findIndex((r) => inRedis.has(r.resultId));
    expect(firstKept, 'nothing of the run reached the restarted Redis').toBeGreaterThanOrEqual(0);
    const lostAfter = bySeq.slice(firstKept).filter((r) => !inRedis.has(r.resultId));
    expect(lostAfter.map((r) => `${r.sequence} ${r.partId} decided ${r.time.decidedAt}`), 'results missing from Redis after the first it kept: lost in the outage').toEqual([]);
    const lostBefore = bySeq.slice(0, firstKept);
    const decidedAfterKill = lostBefore.filter((r) => Date.parse(r.time.decidedAt) > killedAt + 100);
    expect(decidedAfterKill.map((r) => `${r.sequence} decided ${r.time.decidedAt}`), `decided after the kill (${new Date(killedAt).toISOString()}) and yet not in Redis`).toEqual([]);
    expect(jobs.length, 'the outage was long enough to spool a backlog').toBeGreaterThan(60);

    // The log told of it while it lasted, in a few lines, not one per result.
    const log = logLines(run.stderr);
    const outage = alarms(log, { from: killedAt, to: restartedAt + 2000 });
    expect(outage.some((l) => /unreachable/.test(l.msg)), 'a warning that Redis is away').toBe(true);
    const during = results.filter((r) => Date.parse(r.time.decidedAt) >= killedAt && Date.parse(r.time.decidedAt) <= restartedAt).length;
    expect(outage.length, `alarm lines during the outage (${during} results decided meanwhile): ${outage.map((l) => l.msg).join(' | ').slice(0, 1500)}`).toBeLessThanOrEqual(5);
    expectRssBounded(rss.samples, { maxMiB: RSS_MAX_MIB });
  });
});
