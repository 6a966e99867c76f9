import { utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Spool } from '../../plugins/sink-bullmq/spool.js';
import { scratch } from '../helpers/scratch.js';

const log = pino({ level: 'silent' });
const open: Spool[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function spool(dir: string): Promise<Spool> {
  const s = await Spool.open(dir, { maxBytes: 1024 * 1024, segmentBytes: 200, log });
  open.push(s);
  return s;
}

/** Reads `n` records and commits past them, as the forwarder does once Redis took them. */
async function deliver(s: Spool, n: number): Promise<void> {
  const batch = await s.read(n);
  expect(batch?.records).toHaveLength(n);
  await s.commit(batch!.end);
}

describe('the age of the oldest record waiting in the spool', () => {
  it('is 0 with nothing waiting, and the first waiting record\'s append time as records are taken', async () => {
    const s = await spool(scratch('lg-spool-age-'));
    expect(s.oldestPendingAt).toBeUndefined();
    expect(s.oldestPendingAgeS()).toBe(0);
    const t0 = Date.now();
    await s.append({ queue: 'results', id: 'a', data: {} });
    expect(s.oldestPendingAt).toBeGreaterThanOrEqual(t0);
    const at = s.oldestPendingAt!;
    await s.append({ queue: 'results', id: 'b', data: {}, at: at + 5000 });
    expect(s.oldestPendingAt).toBe(at); // a newer record does not move it
    expect(s.oldestPendingAgeS(at + 7000)).toBe(7);
    await deliver(s, 1);
    expect(s.oldestPendingAt).toBe(at + 5000);
    await deliver(s, 1);
    expect(s.oldestPendingAt).toBeUndefined();
    expect(s.oldestPendingAgeS()).toBe(0);
  });

  it('keeps the true age across a restart, across segments, not the time the spool was opened again', async () => {
    const dir = scratch('lg-spool-age-');
    const t0 = Date.now() - 3_600_000;
    const first = await spool(dir);
    // segmentBytes 200: each record lands in a segment of its own
    for (let i = 0; i < 4; i++) await first.append({ queue: 'results', id: `r-${i}`, data: { pad: 'x'.repeat(150) }, at: t0 + i * 60_000 });
    await deliver(first, 2);
    expect(first.oldestPendingAt).toBe(t0 + 120_000);
    await first.close();
    const again = await spool(dir);
    expect(again.oldestPendingAt).toBe(t0 + 120_000);
    expect(again.oldestPendingAgeS()).toBeGreaterThan(3000);
    await deliver(again, 1);
    expect(again.oldestPendingAt).toBe(t0 + 180_000);
  });

  it('counts a line written before records carried their time from its segment file', async () => {
    const dir = scratch('lg-spool-age-');
    const file = path.join(dir, '000000000001.jsonl');
    writeFileSync(file, `${JSON.stringify({ queue: 'results', id: 'old', data: {} })}\n`);
    const then = new Date(Date.now() - 600_000);
    utimesSync(file, then, then);
    const s = await spool(dir);
    // The file's creation time is now, its change time ten minutes ago: the older of the two
    expect(Math.abs(s.oldestPendingAt! - then.getTime())).toBeLessThan(1000);
    await s.append({ queue: 'results', id: 'new', data: {} });
    await deliver(s, 1);
    expect(s.oldestPendingAt).toBeGreaterThan(then.getTime() + 500_000);
  });
});
