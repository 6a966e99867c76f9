import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REDIS_URL, dropPrefix, uniquePrefix } from '../helpers/redis.js';
import { LinegateProcess, ROOT, RssSampler, cleanUp, killOnChange, note, pidOf, tempRoot, waitUntil, within, writeSlowPlugin, writeStation } from './harness.js';
import { RSS_MAX_MIB, countJobs, expectAccounted, expectOnceEach, expectRssBounded, expectUndecidableRejected, lastJsonLine, readJsonl, readQueue, type RunLine } from './invariants.js';

/**
 * Fault 3: `linegate run` SIGKILLed (its whole process group) mid-run, twice,
 * with a hot folder as the source and the JSONL and queue sinks behind it,
 * then started again on the same station until the inbox is empty. Every
 * file must be inspected and recorded exactly once: in the JSONL, in Redis,
 * and in done/failed; none lost, none twice. The kills land where it hurts
 * (inotify): the moment a file reaches done/ (a source that settles before
 * the durable sinks hold the result loses it), and the moment a result line
 * reaches the JSONL while its file is still in processing/ (a restart that
 * inspects it again must not record it twice).
 */

const prefix = uniquePrefix();
afterEach(async () => {
  await cleanUp();
  await dropPrefix(prefix);
});

const FILES = 60;
const FIXTURES = ['def_front', 'ok_front'].flatMap((d) => readdirSync(path.join(ROOT, 'fixtures/casting', d)).map((f) => path.join(ROOT, 'fixtures/casting', d, f)));

/** Lines in the station's JSONL so far (complete or not). */
const jsonlCount = (dir: string): number => (existsSync(dir) ? readJsonl(dir).results.length : 0);

describe('fault: linegate killed (-9) mid-run and restarted', () => {
  it('inspects and records every hot-folder file exactly once across two kills and restarts: once in the JSONL, once in Redis, once in done/failed', async () => {
    const root = tempRoot('crash');
    const inbox = path.join(root, 'inbox');
    const results = path.join(root, 'results');
    mkdirSync(inbox);
    const names = Array.from({ length: FILES }, (_, i) => `part-${String(i).padStart(3, '0')}`);
    names.forEach((n, i) => copyFileSync(FIXTURES[i % FIXTURES.length]!, path.join(inbox, `${n}.jpeg`)));
    const plugin = writeSlowPlugin(root);
    const file = writeStation(
      root,
      `station: { id: fault-crash, root: ${ROOT}, cycleBudgetMs: 2000, maxInFlight: 1, queueSize: 2 }
plugins: [${plugin}]
source: { name: inbox, use: core/hot-folder@1, config: { dir: ${inbox}, settleMs: 100, pollMs: 50 } }
stages:
  - { name: decode, use: core/image-decode@1, config: { color: GRAY } }
  - { name: model, use: core/onnx-model@1, config: { model: models/casting-cls/1 } }
  - { name: classify, use: core/classify-decode@1 }
  - { name: slow, use: faults/slow@1, config: { delayMs: 40 } }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ label: defect, rejectCode: 1 }] } }
sinks:
  - { name: results, use: core/jsonl-sink@1, config: { dir: ${results} } }
  - name: queue
    use: core/bullmq@1
    config:
      redis: { url: "${REDIS_URL}", urlEnv: LG_FAULTS_NO_SUCH_VARIABLE }
      prefix: ${prefix}
      archive: { dir: ${path.join(root, 'archive')} }
      spool: { dir: ${path.join(root, 'spool')} }
`,
    );

    // Two runs killed mid-way: the first the instant the hot folder settles a file (moves it to done: the
    // source's acknowledgement), the second the instant a result reaches the JSONL.
    const done = path.join(inbox, '.linegate/done');
    const peaks: number[] = [];
    {
      const run = new LinegateProcess(['run', file, '--no-pretty']);
      await waitUntil(() => jsonlCount(results) >= 10 && existsSync(done), 60_000, '10 lines in the JSONL', run);
      await killOnChange(done, run);
      expect((await run.exited).signal, `linegate was to be killed at a change in ${done}, but exited on its own:\n${run.stderr.slice(-2000)}`).toBe('SIGKILL');
      peaks.push(jsonlCount(results));
    }
    {
      // The second the instant a result line is appended to the JSONL: the file is then still in processing/
      // (the window the hot folder's README names), and the restart inspects it again.
      const run = new LinegateProcess(['run', file, '--no-pretty']);
      await waitUntil(() => jsonlCount(results) >= 30, 60_000, '30 lines in the JSONL', run);
      await killOnChange(results, run);
      expect((await run.exited).signal, `linegate was to be killed at a change in ${results}, but exited on its own:\n${run.stderr.slice(-2000)}`).toBe('SIGKILL');
      peaks.push(jsonlCount(results));
    }
    expect(peaks[1]!, 'the first kill left work for the second run, the second for the third').toBeLessThan(FILES);

    // The third run finishes the inbox; the spool drains while it runs.
    const run = new LinegateProcess(['run', file, '--no-pretty']);
    const rss = new RssSampler(await pidOf(run));
    const failed = path.join(inbox, '.linegate/failed');
    const processing = path.join(inbox, '.linegate/processing');
    const list = (d: string): string[] => (existsSync(d) ? readdirSync(d) : []);
    const t0 = Date.now();
    // No throw on time-out: the checks below then say what is missing, and where.
    const finishedInTime = await within(
      async () => list(done).length + list(failed).length >= FILES && list(processing).length === 0 && (await countJobs(REDIS_URL, prefix)) >= FILES,
      60_000,
    );
    const tookMs = Date.now() - t0;
    run.signal('SIGINT');
    const exit = await run.exited;
    rss.stop();
    expect(exit.code, `linegate run exited ${exit.code}:\n${run.stderr.slice(-3000)}`).toBe(0);
    note('crash-restart', { jsonlLinesAtKills: peaks, thirdRunMs: tookMs, rssMaxMiB: Math.round(rss.maxMiB) });
    const { summary, health } = lastJsonLine<RunLine>(run.stdout, 'linegate run');
    expectAccounted(summary);
    expect(health.steps.queue?.data?.pendingBytes, `spool empty at the end: ${JSON.stringify(health.steps.queue)}`).toBe(0);

    // The files: each in exactly one place, finished.
    const finished = [...list(done), ...list(failed)].map((f) => f.replace(/\.jpeg$/, ''));
    expectOnceEach('files in done/failed', finished, (f) => f, names);
    expect(readdirSync(inbox).filter((f) => !f.startsWith('.')), 'inbox empty').toEqual([]);
    expect(list(processing), 'processing empty').toEqual([]);

    // The JSONL: every file once, every line whole.
    const lines = readJsonl(results);
    expect(lines.broken, 'JSONL lines torn by the kills').toEqual([]);
    expectOnceEach('JSONL results by part id (file)', lines.results, (r) => r.partId, names);
    expectUndecidableRejected(lines.results);

    // Redis: every file once.
    const { jobs, waiting } = await readQueue(REDIS_URL, prefix);
    expectOnceEach('Redis results by part id (file)', jobs, (j) => j.data.partId, names);
    expectOnceEach('Redis wait list by job id', waiting, (id) => id);
    expectRssBounded(rss.samples, { maxMiB: RSS_MAX_MIB });
    expect(finishedInTime, `the third run had not finished the inbox after ${tookMs} ms (${summary.frames} frames, ${summary.fps} fps)`).toBe(true);
  });
});
