import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { SinkInstance } from '../../runtime/contract.js';
import { jsonlSink } from '../../plugins/sink-jsonl/index.js';
import { ResultsFile } from '../../plugins/sink-jsonl/results-file.js';
import { contextFor, sampleResult } from '../helpers/samples.js';
import { scratch } from '../helpers/scratch.js';
import { capturingLog } from '../helpers/station.js';
import { faultyDisk } from './faulty-ops.js';

/** The JSONL results file: whole lines on a failing disk (an injected file layer), and one line per result across a crash. */

const ctx = contextFor(new AbortController().signal);
const lines = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');

describe('the JSONL results file on a failing disk', () => {
  it('writes each line whole or not at all, says so in its health, and writes again by itself once there is room', async () => {
    const dir = scratch('lg-jsonl-');
    const file = path.join(dir, 'st.jsonl');
    const disk = faultyDisk();
    const { log, entries } = capturingLog();
    const out = new ResultsFile({ ops: disk.ops, syncEach: true, log });
    const line = (i: number): string => `${JSON.stringify(sampleResult({ partId: `P-${i}` }))}\n`;
    await out.append(file, line(0));
    disk.faults.spaceLeft = 40; // a short write, then ENOSPC
    for (let i = 1; i <= 5; i++) await expect(out.append(file, line(i))).rejects.toMatchObject({ code: 'LG_ERR_DISK_FULL' });
    expect(out.health()).toMatchObject({ status: 'degraded', detail: expect.stringContaining('LG_ERR_DISK_FULL'), data: { failed: 5 } });
    expect(lines(file).map((l) => (JSON.parse(l) as { partId: string }).partId)).toEqual(['P-0']);
    disk.faults.spaceLeft = undefined;
    disk.faults.shortWrites = 13; // the disk answers in small pieces: still whole lines
    const sixth = line(6);
    await out.append(file, sixth);
    expect(out.health().status).toBe('ok');
    expect(lines(file).map((l) => (JSON.parse(l) as { partId: string }).partId)).toEqual(['P-0', 'P-6']);
    expect(readFileSync(file, 'utf8').endsWith(sixth)).toBe(true);
    // The station logs the failed writes once per state; the writer adds no line per failure.
    expect(entries().filter((e) => e.level >= 40)).toEqual([]);
    await out.close();
  });

  it('cuts a line back when its fsync fails', async () => {
    const dir = scratch('lg-jsonl-');
    const file = path.join(dir, 'st.jsonl');
    const disk = faultyDisk({ failSyncs: 1 });
    const out = new ResultsFile({ ops: disk.ops, syncEach: true, log: capturingLog().log });
    await expect(out.append(file, '{"a":1}\n')).rejects.toMatchObject({ code: 'LG_ERR_FILE_WRITE' });
    await out.append(file, '{"a":2}\n');
    expect(readFileSync(file, 'utf8')).toBe('{"a":2}\n');
    await out.close();
  });
});

describe('core/jsonl-sink@1', () => {
  async function sink(dir: string, extra: Record<string, unknown> = {}): Promise<SinkInstance> {
    return jsonlSink.init(jsonlSink.manifest.config.parse({ dir, rotate: 'none', ...extra }), ctx);
  }

  it('promises durability by default (fsync each line), not with fsync: flush', () => {
    const durable = jsonlSink.manifest.durable as (c: unknown) => boolean;
    expect(durable(jsonlSink.manifest.config.parse({}))).toBe(true);
    expect(durable(jsonlSink.manifest.config.parse({ fsync: 'flush' }))).toBe(false);
  });

  it('writes a result re-inspected after a crash (same result id) once, across the restart', async () => {
    const dir = scratch('lg-jsonl-');
    const r = sampleResult({ partId: 'again' });
    const first = await sink(dir);
    await first.write(r, ctx);
    await first.write(sampleResult({ partId: 'other' }), ctx);
    await first.close?.(); // the crash: the part was never settled
    const second = await sink(dir);
    await second.write({ ...r, time: { ...r.time, decidedAt: new Date().toISOString() } }, ctx);
    await second.write(sampleResult({ partId: 'new' }), ctx);
    await second.close?.();
    const [file] = readdirSync(dir);
    expect(lines(path.join(dir, file!)).map((l) => (JSON.parse(l) as { partId: string }).partId)).toEqual(['again', 'other', 'new']);
  });
});
