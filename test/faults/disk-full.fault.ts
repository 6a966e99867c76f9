import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SimReport } from '../../plugins/opcua-plc/sim.js';
import { REDIS_URL, dropPrefix, uniquePrefix } from '../helpers/redis.js';
import { LINEGATE_PKI, LinegateProcess, ROOT, RssSampler, cleanUp, note, logLines, mountTmpfs, pidOf, plcSim, saveLog, simCycles, sleep, tempRoot, waitUntil, within, writeStation, type LogLine } from './harness.js';
import { RSS_MAX_MIB, alarms, countJobs, expectAccounted, expectOnceEach, expectPlcBooks, expectRssBounded, expectUndecidableRejected, lastJsonLine, readJsonl, readQueue, type RunLine } from './invariants.js';

/**
 * Fault 4: the disk that holds the spool, the image archive and the JSONL
 * fills up (a 2 MiB tmpfs, filled by a filler file) while a PLC triggers
 * parts. The PLC must keep getting real verdicts on time; the fault is
 * raised once per sink, not once per result; and once the filler is deleted,
 * without a restart, the queue gets every result the run made, exactly once,
 * and the JSONL every line, whole.
 */

const prefix = uniquePrefix();
afterEach(async () => {
  await cleanUp();
  await dropPrefix(prefix);
});

/** Fills the file system of `dir` with one file until ENOSPC; returns the bytes written. */
function fill(file: string): number {
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(64 * 1024, 0x5a);
  let written = 0;
  try {
    for (;;) {
      try {
        written += writeSync(fd, block);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw e;
      }
    }
    // The last few bytes, a page at a time, so nothing is left.
    for (const size of [4096, 512, 1]) {
      for (;;) {
        try {
          written += writeSync(fd, block.subarray(0, size));
        } catch {
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

/** 3,4,5,9 -> "3-5, 9" (and how many). */
function ranges(xs: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < xs.length; ) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j]! + 1) j++;
    out.push(i === j ? `${xs[i]}` : `${xs[i]}-${xs[j]}`);
    i = j + 1;
  }
  return `${out.join(', ') || 'none'} (${xs.length})`;
}

const where = (l: LogLine): string => String(l.step ?? l.sink ?? (l.err as { step?: string } | undefined)?.step ?? '(station)');

describe('fault: the disk under the spool, archive and JSONL fills up', () => {
  it('keeps answering the PLC, raises the fault once per sink, and once space returns delivers every result to the queue and the JSONL without a restart', async (ctx) => {
    const root = tempRoot('disk');
    const disk = path.join(root, 'disk');
    mkdirSync(disk);
    const mounted = mountTmpfs(disk, '2m');
    if (!mounted.ok) {
      const skipped = `SKIPPED fault 4 (disk full on a 2 MiB tmpfs: spool, archive and JSONL): ${mounted.why}. Disk-full handling is unit-tested with a fault-injecting fs instead.`;
      console.warn(skipped);
      ctx.skip(skipped);
    }
    const first = await plcSim(['--port', '0', '--rate', '5', '--trigger-low-ms', '20']);
    const file = writeStation(
      root,
      `station: { id: fault-disk, root: ${ROOT}, cycleBudgetMs: 500, maxInFlight: 1, queueSize: 0, closeTimeoutMs: 10000 }
source: { name: cam, use: core/opcua-trigger@1, config: { plc: plc, camera: { dir: fixtures/casting } } }
stages:
  - { name: decode, use: core/image-decode@1, config: { color: GRAY } }
  - { name: model, use: core/onnx-model@1, config: { model: models/casting-cls/1 } }
  - { name: classify, use: core/classify-decode@1 }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ id: casting-defect, label: defect, rejectCode: 1 }] } }
sinks:
  - { name: plc, use: core/opcua-plc@1, config: { endpoint: "opc.tcp://127.0.0.1:${first.port}/", connectAttempts: 3, connectDelayMs: 200, security: { pki: ${LINEGATE_PKI} } } }
  - { name: results, use: core/jsonl-sink@1, config: { dir: ${path.join(disk, 'results')} } }
  - name: queue
    use: core/bullmq@1
    config:
      redis: { url: "${REDIS_URL}", urlEnv: LG_FAULTS_NO_SUCH_VARIABLE }
      prefix: ${prefix}
      archive: { dir: ${path.join(disk, 'archive')}, images: all }
      spool: { dir: ${path.join(disk, 'spool')} }
`,
    );
    const run = new LinegateProcess(['run', file, '--no-pretty']);
    const rss = new RssSampler(await pidOf(run));
    await waitUntil(() => simCycles(first.sim) >= 10, 60_000, '10 PLC cycles before the disk fills', run);

    const filler = path.join(disk, 'filler');
    const fullAt = Date.now();
    const filled = fill(filler);
    const cyclesAtFull = simCycles(first.sim);
    await sleep(8000);
    const cyclesWhileFull = simCycles(first.sim) - cyclesAtFull;
    const freedAt = Date.now();
    rmSync(filler);

    // Space is back: without a restart, everything the run made reaches Redis.
    const drained = await within(async () => (await countJobs(REDIS_URL, prefix)) >= simCycles(first.sim), 20_000);
    const drainedAt = Date.now();
    // Sent is not yet committed: the forwarder moves the spool's cursor after each batch it sent. Stop once it has
    // caught up, so the run's last health line speaks of the spool as it is, not of a cursor one retry behind.
    const committed = await within(async () => spoolCommitted(path.join(disk, 'spool')), 20_000);
    expect(committed, 'the spool cursor caught up with what was sent, space back, without a restart').toBe(true);
    run.signal('SIGINT');
    const exit = await run.exited;
    rss.stop();
    first.sim.signal('SIGINT');
    expect((await first.sim.exited).code).toBe(0);
    saveLog(root, 'run', run);
    saveLog(root, 'plc-sim', first.sim);
    note('disk-full', { filledBytes: filled, cyclesWhileFull, plcTriggers: simCycles(first.sim), redisJobs: await countJobs(REDIS_URL, prefix), drained, drainMs: drained ? drainedAt - freedAt : null, rssMaxMiB: Math.round(rss.maxMiB) });
    expect(exit.code, `linegate run exited ${exit.code}:\n${run.stderr.slice(-3000)}`).toBe(0);
    expect(filled, 'the filler took the space that was left').toBeGreaterThan(0);

    // The PLC: a real verdict for every trigger, on time, the disk notwithstanding.
    const { plcSim: report } = lastJsonLine<{ plcSim: SimReport }>(first.sim.stdout, 'plc-sim');
    expectPlcBooks(report);
    expect(report.verdicts[3], 'parts the PLC got "not decidable" for: a full disk is no reason to reject a part').toBe(0);
    expect(cyclesWhileFull, 'PLC cycles while the disk was full (5/s for 8 s)').toBeGreaterThanOrEqual(25);

    const { summary, health } = lastJsonLine<RunLine>(run.stdout, 'linegate run');
    expectAccounted(summary);
    expect(summary.frames, 'one frame per PLC trigger').toBe(report.triggers);
    expect(summary.undelivered).toBe(0);
    expect.soft(health.steps.queue?.status, `queue health at the end, space back: ${JSON.stringify(health.steps.queue)}`).toBe('ok');

    // The fault was raised, and raised once per sink, not once per result.
    const log = logLines(run.stderr);
    const during = alarms(log, { from: fullAt, to: freedAt + 1000 });
    const show = during.map((l) => `[${where(l)}] ${l.msg}`.slice(0, 200)).slice(0, 12).join('\n  ');
    expect(during.some((l) => /ENOSPC|no space|disk full|DISK|SPOOL_FULL|ARCHIVE_WRITE/i.test(JSON.stringify(l))), `no log line named the full disk:\n  ${show}`).toBe(true);
    const perStep = new Map<string, number>();
    for (const l of during) perStep.set(where(l), (perStep.get(where(l)) ?? 0) + 1);
    expect.soft(Object.fromEntries(perStep), `alarm lines per step while the disk was full (${cyclesWhileFull} results meanwhile); the first of them:\n  ${show}\n`).toEqual(
      Object.fromEntries([...perStep].map(([k, n]) => [k, Math.min(n, 2)])),
    );

    // Redis: every result of the run, once. The JSONL: every line, whole, once.
    expect.soft(drained, `Redis did not catch up within 20 s of the space returning (${await countJobs(REDIS_URL, prefix)} jobs for ${simCycles(first.sim)} PLC cycles)`).toBe(true);
    const { jobs, waiting } = await readQueue(REDIS_URL, prefix);
    expectOnceEach('Redis wait list by job id', waiting, (id) => id);
    const counters = (xs: readonly (number | undefined)[]): string => ranges(Array.from({ length: report.triggers }, (_, i) => i + 1).filter((c) => !xs.includes(c)));
    expect.soft(jobs.length, `results in Redis vs frames of the run (drained ${drained ? `${drainedAt - freedAt} ms after the space returned` : 'never'}); PLC counters missing: ${counters(jobs.map((j) => j.data.trigger?.counter))}`).toBe(summary.frames);
    expectOnceEach('Redis results by trigger', jobs, (j) => j.data.trigger?.id ?? j.id);
    const { results, broken } = readJsonl(path.join(disk, 'results'));
    expect.soft(broken, 'JSONL lines torn by the full disk').toEqual([]);
    expect.soft(results.length, `JSONL lines vs frames of the run; PLC counters missing: ${counters(results.map((r) => r.trigger?.counter))}`).toBe(summary.frames);
    expectOnceEach('JSONL by result id', results, (r) => r.resultId);
    expectUndecidableRejected(results);
    expectRssBounded(rss.samples, { maxMiB: RSS_MAX_MIB });
  });
});

/** Whether the spool holds nothing past its cursor: everything in it was sent and the cursor moved past it. */
function spoolCommitted(dir: string): boolean {
  let cursor: { segment: number; offset: number };
  try {
    cursor = JSON.parse(readFileSync(path.join(dir, 'cursor.json'), 'utf8')) as { segment: number; offset: number };
  } catch {
    return false;
  }
  const kept = readdirSync(dir)
    .filter((f) => /^\d+\.jsonl$/.test(f) && Number.parseInt(f, 10) >= cursor.segment)
    .reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
  return kept - cursor.offset === 0;
}
