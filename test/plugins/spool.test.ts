import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Spool, type SpoolRecord } from '../../plugins/sink-bullmq/spool.js';
import { scratch } from '../helpers/scratch.js';
import { ROOT, capturingLog, silentLog } from '../helpers/station.js';

const opened: Spool[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
});

async function spool(dir: string, o: { maxBytes?: number; segmentBytes?: number; log?: typeof silentLog } = {}): Promise<Spool> {
  const s = await Spool.open(dir, { maxBytes: o.maxBytes ?? 10_000_000, segmentBytes: o.segmentBytes ?? 1000, log: o.log ?? silentLog });
  opened.push(s);
  return s;
}

const rec = (i: number): SpoolRecord => ({ queue: 'results', id: `id-${i}`, data: { i, text: 'x'.repeat(50) } });

/** Everything after the cursor, committing as a forwarder would. */
async function drain(s: Spool, batch = 7): Promise<string[]> {
  const ids: string[] = [];
  for (let b = await s.read(batch); b !== undefined; b = await s.read(batch)) {
    ids.push(...b.records.map((r) => r.id));
    await s.commit(b.end);
  }
  return ids;
}

describe('the durable spool', () => {
  it('gives records back in order across segments, and deletes segments once consumed', async () => {
    const dir = scratch('lg-spool-');
    const s = await spool(dir);
    for (let i = 0; i < 60; i++) await s.append(rec(i));
    expect(readdirSync(dir).filter((f) => f.endsWith('.jsonl')).length).toBeGreaterThan(3); // rotated at ~1000 bytes
    expect(await drain(s)).toEqual(Array.from({ length: 60 }, (_, i) => `id-${i}`));
    expect(s.empty).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith('.jsonl')).length).toBe(1); // only the one being written
  });

  it('resumes after a restart where the last commit left it: nothing lost, nothing twice', async () => {
    const dir = scratch('lg-spool-');
    const a = await spool(dir);
    for (let i = 0; i < 20; i++) await a.append(rec(i));
    const first = (await a.read(8))!;
    await a.commit(first.end);
    const uncommitted = await a.read(5); // read but not committed: the process dies before Redis took them
    expect(uncommitted?.records).toHaveLength(5);
    await a.close();
    const b = await spool(dir);
    expect(await drain(b)).toEqual(Array.from({ length: 12 }, (_, i) => `id-${i + 8}`));
  });

  it('cuts off a torn last line left by a crash mid-append, and says so', async () => {
    const dir = scratch('lg-spool-');
    const a = await spool(dir, { segmentBytes: 1_000_000 });
    for (let i = 0; i < 3; i++) await a.append(rec(i));
    await a.close();
    const seg = readdirSync(dir).find((f) => f.endsWith('.jsonl'))!;
    appendFileSync(path.join(dir, seg), '{"queue":"results","id":"id-3","da');
    const { log, entries } = capturingLog();
    const b = await spool(dir, { log });
    expect(entries().some((e) => e.msg?.includes('torn line'))).toBe(true);
    await b.append(rec(4));
    expect(await drain(b)).toEqual(['id-0', 'id-1', 'id-2', 'id-4']);
  });

  it('moves a line that is not a record to quarantine instead of stopping the drain', async () => {
    const dir = scratch('lg-spool-');
    const a = await spool(dir, { segmentBytes: 1_000_000 });
    await a.append(rec(0));
    await a.close();
    const seg = readdirSync(dir).find((f) => f.endsWith('.jsonl'))!;
    appendFileSync(path.join(dir, seg), 'garbage from a failing disk\n');
    const b = await spool(dir);
    await b.append(rec(1));
    expect(await drain(b)).toEqual(['id-0', 'id-1']);
    expect(readFileSync(path.join(dir, 'quarantine.jsonl'), 'utf8')).toBe('garbage from a failing disk\n');
  });

  it('refuses records past its size with a coded error and raises the alarm before that', async () => {
    const dir = scratch('lg-spool-');
    const s = await spool(dir, { maxBytes: 1000 });
    const levels: string[] = [];
    s.on('level', (l) => levels.push(l));
    let refused: unknown;
    for (let i = 0; i < 20 && refused === undefined; i++) await s.append(rec(i)).catch((e: unknown) => (refused = e));
    expect(refused).toMatchObject({ code: 'LG_ERR_QUEUE_SPOOL_FULL', message: expect.stringContaining('was not kept') });
    expect(levels).toEqual(['alarm', 'full']);
    await drain(s);
    expect(levels).toEqual(['alarm', 'full', 'clear']);
    await s.append(rec(99)); // room again
  });

  it('is locked to one process; a lock left by a dead process is taken over', async () => {
    const dir = scratch('lg-spool-');
    await spool(dir);
    await expect(Spool.open(dir, { maxBytes: 1000, log: silentLog })).rejects.toMatchObject({ code: 'LG_ERR_QUEUE_SPOOL_LOCKED' });
    const stale = scratch('lg-spool-');
    writeFileSync(path.join(stale, 'lock'), '999999999'); // no such process
    await spool(stale);
    expect(JSON.parse(readFileSync(path.join(stale, 'lock'), 'utf8'))).toMatchObject({ pid: process.pid });
  });

  it('keeps every record whose append resolved when its process is killed with SIGKILL mid-stream', async () => {
    const dir = scratch('lg-spool-');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/helpers/spool-writer.ts'), dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const acked: string[] = [];
    let buffered = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        buffered += d.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        acked.push(...lines);
        if (acked.length >= 150 && !child.killed) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.on('exit', () => resolve());
      child.on('error', reject);
    });
    await exited;
    expect(acked.length).toBeGreaterThanOrEqual(150);
    const s = await spool(dir); // the dead child's lock is stale: taken over
    const ids = await drain(s, 100);
    expect(new Set(ids).size).toBe(ids.length); // none twice
    const kept = new Set(ids);
    for (const id of acked) for (const k of [0, 1, 2]) expect(kept.has(`${id}-${k}`)).toBe(true);
    expect(existsSync(path.join(dir, 'lock'))).toBe(true);
  }, 30_000);
});
