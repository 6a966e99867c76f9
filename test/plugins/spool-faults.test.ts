import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Spool, type SpoolRecord } from '../../plugins/sink-bullmq/spool.js';
import { bootId, startTimeOf } from '../../plugins/sink-bullmq/spool-lock.js';
import { scratch } from '../helpers/scratch.js';
import { capturingLog, silentLog } from '../helpers/station.js';
import { faultyDisk, type FaultyDisk } from './faulty-ops.js';

/** The spool on a failing disk (an injected file layer, so it runs anywhere), with lines no append should have left, and with a lock whose PID lives on. */

const opened: Spool[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

interface Opts {
  disk?: FaultyDisk;
  maxRecordBytes?: number;
  segmentBytes?: number;
  log?: typeof silentLog;
}

async function spool(dir: string, o: Opts = {}): Promise<Spool> {
  const s = await Spool.open(dir, {
    maxBytes: 100_000_000,
    segmentBytes: o.segmentBytes ?? 1_000_000,
    log: o.log ?? silentLog,
    ...(o.disk === undefined ? {} : { ops: o.disk.ops }),
    ...(o.maxRecordBytes === undefined ? {} : { maxRecordBytes: o.maxRecordBytes }),
  });
  opened.push(s);
  return s;
}

const rec = (i: number, pad = 50): SpoolRecord => ({ queue: 'results', id: `id-${i}`, data: { i, text: 'x'.repeat(pad) }, at: 1_700_000_000_000 + i });
/** A record's line as the spool writes it: its append time first. */
const lineOf = (r: SpoolRecord): string => `${JSON.stringify({ at: r.at, queue: r.queue, id: r.id, data: r.data })}\n`;

async function drain(s: Spool, batch = 10): Promise<string[]> {
  const ids: string[] = [];
  for (let b = await s.read(batch); b !== undefined; b = await s.read(batch)) {
    ids.push(...b.records.map((r) => r.id));
    await s.commit(b.end);
  }
  return ids;
}

const segments = (dir: string): string[] => readdirSync(dir).filter((f) => /^\d{12}\.jsonl$/.test(f)).sort();
const quarantine = (dir: string): string[] => (existsSync(path.join(dir, 'quarantine.jsonl')) ? readFileSync(path.join(dir, 'quarantine.jsonl'), 'utf8').split('\n').filter((l) => l !== '') : []);

describe('the spool on a failing disk', () => {
  it('cuts a half-written append back when the disk fills: the next record is whole, nothing is quarantined, every kept record is read back', async () => {
    const dir = scratch('lg-spoolf-');
    const disk = faultyDisk();
    const { log, entries } = capturingLog();
    const s = await spool(dir, { disk, log });
    await s.append(rec(0));
    // Room for half of the next line: a short write, then ENOSPC.
    disk.faults.spaceLeft = Math.floor(lineOf(rec(1)).length / 2);
    await expect(s.append(rec(1))).rejects.toMatchObject({ code: 'LG_ERR_DISK_FULL' });
    await expect(s.append(rec(2))).rejects.toMatchObject({ code: 'LG_ERR_DISK_FULL' });
    expect(s.writeFault?.code).toBe('LG_ERR_DISK_FULL');
    disk.faults.spaceLeft = undefined; // room again: no restart needed
    await s.append(rec(3));
    expect(s.writeFault).toBeUndefined();
    expect(readFileSync(path.join(dir, segments(dir)[0]!), 'utf8')).toBe(lineOf(rec(0)) + lineOf(rec(3)));
    expect(await drain(s)).toEqual(['id-0', 'id-3']);
    expect(quarantine(dir)).toEqual([]);
    // The station logs the refused writes (once per state); the spool itself adds no error line per failure.
    expect(entries().filter((e) => e.level >= 50)).toEqual([]);
  });

  it('completes short writes rather than failing them, and cuts an append back when its fsync fails', async () => {
    const dir = scratch('lg-spoolf-');
    const disk = faultyDisk({ shortWrites: 7 });
    const s = await spool(dir, { disk });
    await Promise.all([0, 1, 2].map((i) => s.append(rec(i))));
    disk.faults.shortWrites = undefined;
    disk.faults.failSyncs = 1;
    await expect(s.append(rec(3))).rejects.toMatchObject({ code: 'LG_ERR_FILE_WRITE' });
    await s.append(rec(4));
    expect(await drain(s)).toEqual(['id-0', 'id-1', 'id-2', 'id-4']);
  });

  it('starts a new segment when the disk is back, and sends what was kept before the fault and after it, in order', async () => {
    const dir = scratch('lg-spoolf-');
    const disk = faultyDisk();
    const s = await spool(dir, { disk, segmentBytes: 300 });
    for (let i = 0; i < 4; i++) await s.append(rec(i));
    disk.faults.spaceLeft = 0;
    for (let i = 4; i < 8; i++) await expect(s.append(rec(i))).rejects.toMatchObject({ code: 'LG_ERR_DISK_FULL' });
    disk.faults.spaceLeft = undefined;
    for (let i = 8; i < 12; i++) await s.append(rec(i));
    expect(await drain(s, 3)).toEqual(['id-0', 'id-1', 'id-2', 'id-3', 'id-8', 'id-9', 'id-10', 'id-11']);
  });

  it('fsyncs the folder after it creates a segment and after it renames the cursor', async () => {
    const dir = scratch('lg-spoolf-');
    const disk = faultyDisk();
    const s = await spool(dir, { disk });
    await s.append(rec(0));
    expect(disk.dirSyncs).toEqual([dir]); // the new segment's entry
    const b = (await s.read(10))!;
    await s.commit(b.end);
    expect(disk.dirSyncs).toEqual([dir, dir]); // the cursor's rename
  });

  it('quarantines a line that is not a record once, however often the read is retried, and moves past it', async () => {
    const dir = scratch('lg-spoolf-');
    const a = await spool(dir);
    await a.append(rec(0));
    await a.close();
    appendFileSync(path.join(dir, segments(dir)[0]!), 'garbage from a failing disk\n');
    const s = await spool(dir);
    await s.append(rec(1));
    // As a forwarder does while Redis is away: read, fail to send, read again.
    for (let i = 0; i < 3; i++) expect((await s.read(10))?.records.map((r) => r.id)).toEqual(['id-0']);
    await s.commit((await s.read(10))!.end);
    for (let i = 0; i < 3; i++) expect((await s.read(10))?.records).toEqual([]); // the bad line, as an empty batch past it
    expect(quarantine(dir)).toEqual(['garbage from a failing disk']);
    await s.commit((await s.read(10))!.end);
    expect(await drain(s)).toEqual(['id-1']);
    expect(quarantine(dir)).toEqual(['garbage from a failing disk']);
  });
});

describe('record sizes in the spool', () => {
  it('refuses a record over the limit at append with LG_ERR_QUEUE_RECORD_TOO_LARGE, and writes nothing', async () => {
    const dir = scratch('lg-spoolf-');
    const s = await spool(dir, { maxRecordBytes: 2000 });
    await expect(s.append(rec(0, 5000))).rejects.toMatchObject({ code: 'LG_ERR_QUEUE_RECORD_TOO_LARGE', retryable: false });
    await s.append(rec(1, 100));
    expect(await drain(s)).toEqual(['id-1']);
    expect(readFileSync(path.join(dir, segments(dir)[0]!), 'utf8')).toBe(lineOf(rec(1, 100)));
  });

  it('reads back a record larger than 1 MiB (an 800 KiB image inline is one)', async () => {
    const dir = scratch('lg-spoolf-');
    const s = await spool(dir);
    const big = rec(0, 1_200_000);
    await s.append(big);
    await s.append(rec(1));
    expect(await drain(s)).toEqual(['id-0', 'id-1']);
  });

  it('skips a line longer than any record once, with a note in the quarantine, and never blocks on it, also after a restart', async () => {
    const dir = scratch('lg-spoolf-');
    const a = await spool(dir, { maxRecordBytes: 1024 * 1024 });
    await a.append(rec(0));
    await a.close();
    appendFileSync(path.join(dir, segments(dir)[0]!), `${'y'.repeat(1_500_000)}\n`);
    const b = await spool(dir, { maxRecordBytes: 1024 * 1024 });
    await b.append(rec(1));
    const first = (await b.read(10))!;
    expect(first.records.map((r) => r.id)).toEqual(['id-0']);
    await b.commit(first.end);
    const skipped = (await b.read(10))!;
    expect(skipped.records).toEqual([]);
    await b.commit(skipped.end);
    await b.close();
    const c = await spool(dir, { maxRecordBytes: 1024 * 1024 });
    expect(await drain(c)).toEqual(['id-1']);
    const notes = quarantine(dir).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatchObject({ quarantined: 'a line longer than 1048576 bytes', bytes: 1_500_001, segment: '000000000001.jsonl' });
  });
});

describe('the spool lock', () => {
  /** A live process that is not a linegate: what a PID can name after a reboot. */
  function livePid(): Promise<number> {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(child);
    return new Promise((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', reject);
    });
  }

  it('takes over a bare-PID lock written before this boot, though that PID is alive now', async () => {
    const dir = scratch('lg-spool-lock-');
    const pid = await livePid();
    writeFileSync(path.join(dir, 'lock'), String(pid));
    const longAgo = new Date('2001-01-01T00:00:00Z');
    utimesSync(path.join(dir, 'lock'), longAgo, longAgo);
    await spool(dir);
    expect(JSON.parse(readFileSync(path.join(dir, 'lock'), 'utf8'))).toMatchObject({ pid: process.pid });
  });

  it('takes over a lock naming a live PID of another boot, or of a process that started at another time (a reused PID)', async () => {
    const pid = await livePid();
    const started = startTimeOf(pid);
    expect(started).toBeDefined();
    const otherBoot = scratch('lg-spool-lock-');
    writeFileSync(path.join(otherBoot, 'lock'), JSON.stringify({ pid, bootId: '00000000-0000-0000-0000-000000000000', startTime: started }));
    const s = await spool(otherBoot);
    await s.close();
    const reused = scratch('lg-spool-lock-');
    writeFileSync(path.join(reused, 'lock'), JSON.stringify({ pid, bootId: bootId(), startTime: String(Number(started) + 1) }));
    await spool(reused);
  });

  it('refuses a lock whose holder is that very process, alive', async () => {
    const dir = scratch('lg-spool-lock-');
    const pid = await livePid();
    writeFileSync(path.join(dir, 'lock'), JSON.stringify({ pid, bootId: bootId(), startTime: startTimeOf(pid) }));
    await expect(spool(dir)).rejects.toMatchObject({ code: 'LG_ERR_QUEUE_SPOOL_LOCKED' });
  });
});
