import { readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ImageArchive, archiveKey, readArchivedImage, sha256Of, sniffFormat } from '../../plugins/sink-bullmq/archive.js';
import { Sampler, SamplingConfig } from '../../plugins/sink-bullmq/sampling.js';
import { FIXTURE, sampleResult } from '../helpers/samples.js';
import { scratch } from '../helpers/scratch.js';
import { ROOT, silentLog } from '../helpers/station.js';

const sampler = (c: Record<string, unknown> = {}, random = () => 0.5) => new Sampler(SamplingConfig.parse(c), random);
const unlabelled = { step: 'cam', plugin: 'core/opcua-trigger@1', ref: 'f.jpg' };
const pass = (score: number) =>
  sampleResult({ verdict: 'pass', rejectCode: 0, reasons: [], source: unlabelled, defects: [{ label: 'defect', score }], scores: { defect: score }, thresholds: { defect: 0.5 } });

describe('sampling for retraining', () => {
  it('takes every fail and every error, labelled by what the station decided', () => {
    const s = sampler({ passFraction: 0 });
    expect(s.choose(sampleResult({ source: unlabelled }))).toEqual({ label: 'blurred', labelSource: 'model', reasons: ['fail'], why: ['rejected: reject-blurred'] });
    const err = sampleResult({ source: unlabelled, verdict: 'error', rejectCode: 906, reasons: [{ code: 'LG_ERR_IMAGE_DECODE', message: 'x' }], defects: [] });
    expect(s.choose(err)).toEqual({ label: 'error', labelSource: 'model', reasons: ['error'], why: ['not inspected: LG_ERR_IMAGE_DECODE'] });
  });

  it('takes a pass whose score is within the band around its threshold, either side, and says which', () => {
    const s = sampler({ nearThreshold: 0.05, passFraction: 0 });
    expect(s.choose(pass(0.47))).toEqual({ label: 'good', labelSource: 'model', reasons: ['near-threshold'], why: ['defect score 0.470 within 0.05 of the threshold 0.5'] });
    expect(s.choose(pass(0.44))).toBeUndefined();
    const fail = sampleResult({ source: unlabelled, defects: [{ label: 'defect', score: 0.53, rule: 'r' }], thresholds: { defect: 0.5 }, reasons: [{ code: 'r', message: '' }] });
    expect(s.choose(fail)?.reasons).toEqual(['fail', 'near-threshold']);
  });

  it('takes the asked fraction of the other passes, at random', () => {
    const draws = [0.001, 0.5, 0.0099, 0.02];
    const s = sampler({ passFraction: 0.01 }, () => draws.shift()!);
    const chosen = [0, 1, 2, 3].map(() => s.choose(pass(0.01))?.reasons);
    expect(chosen).toEqual([['random-pass'], undefined, ['random-pass'], undefined]);
  });

  it('uses the source label as ground truth, mapping the good names to "good"', () => {
    const s = sampler({ goodLabels: ['ok_front'], passFraction: 1 });
    expect(s.choose(sampleResult({ verdict: 'pass', rejectCode: 0, source: { ...unlabelled, label: 'ok_front' } }))).toMatchObject({ label: 'good', labelSource: 'source' });
    // the model passed it, the folder says it is defective: the truth wins, which is what makes it worth retraining on
    expect(s.choose(sampleResult({ verdict: 'pass', rejectCode: 0, source: { ...unlabelled, label: 'def_front' } }))).toMatchObject({ label: 'def_front', labelSource: 'source' });
  });

  it('stops at the hourly quota per label and starts again in the next hour', () => {
    const s = sampler({ quotaPerHour: { blurred: 2, default: 100 } });
    const hour = Date.UTC(2026, 10, 21, 8);
    const taken = [0, 1, 2, 3].map((i) => s.choose(sampleResult({ source: unlabelled }), hour + i * 1000) !== undefined);
    expect(taken).toEqual([true, true, false, false]);
    expect(s.skippedByQuota).toBe(2);
    expect(s.choose(sampleResult({ source: unlabelled }), hour + 3_600_000)).toBeDefined();
  });
});

describe('the image archive', () => {
  const jpeg = readFileSync(FIXTURE);
  const png = readFileSync(path.join(ROOT, 'fixtures/magnetic-tile/blowhole', readdirSync(path.join(ROOT, 'fixtures/magnetic-tile/blowhole')).find((f) => f.endsWith('.png'))!));

  it('stores each image once under its sha256, in its own encoding, whatever the name claims', async () => {
    const dir = scratch('lg-archive-');
    const a = await ImageArchive.open(dir, { maxBytes: 10_000_000, maxAgeMs: 0, inlineMaxBytes: 0, log: silentLog });
    const first = await a.put(jpeg, 'png'); // a lying extension: the bytes say JPEG
    const again = await a.put(jpeg, 'jpeg');
    expect(first).toEqual({ sha256: sha256Of(jpeg), format: 'jpeg', bytes: jpeg.length, key: archiveKey(sha256Of(jpeg), 'jpeg') });
    expect(again).toEqual(first);
    expect(a.count).toBe(1);
    expect(readFileSync(path.join(dir, first.key)).equals(jpeg)).toBe(true);
    expect(await readArchivedImage(dir, first)).toEqual(jpeg);
  });

  it('refuses an archived file that no longer hashes to its key, and names a missing one', async () => {
    const dir = scratch('lg-archive-');
    const a = await ImageArchive.open(dir, { maxBytes: 10_000_000, maxAgeMs: 0, inlineMaxBytes: 0, log: silentLog });
    const img = await a.put(jpeg, undefined);
    writeFileSync(path.join(dir, img.key), Buffer.concat([jpeg, Buffer.from([0])]));
    await expect(readArchivedImage(dir, img)).rejects.toMatchObject({ code: 'LG_ERR_ARCHIVE_CORRUPT' });
    await expect(readArchivedImage(scratch('lg-empty-'), img)).rejects.toMatchObject({ code: 'LG_ERR_ARCHIVE_MISSING' });
  });

  it('keeps to its size by removing the least recently used images, and drops images past their age', async () => {
    const dir = scratch('lg-archive-');
    const a = await ImageArchive.open(dir, { maxBytes: jpeg.length + png.length + 10, maxAgeMs: 0, inlineMaxBytes: 0, log: silentLog });
    const j = await a.put(jpeg, undefined);
    const p = await a.put(png, undefined);
    await a.put(jpeg, undefined); // used again: now the most recent
    const third = Buffer.concat([png, Buffer.from('x')]); // another image, pushing the total over
    await a.put(third, undefined);
    expect(a.bytes).toBeLessThanOrEqual(jpeg.length + png.length + 10);
    expect([j, p].map((x) => readdirSync(path.dirname(path.join(dir, x.key))).includes(path.basename(x.key)))).toEqual([true, false]);

    const aged = scratch('lg-archive-');
    const b = await ImageArchive.open(aged, { maxBytes: 10_000_000, maxAgeMs: 60_000, inlineMaxBytes: 0, log: silentLog });
    const old = await b.put(jpeg, undefined);
    const past = (Date.now() - 120_000) / 1000;
    utimesSync(path.join(aged, old.key), past, past);
    // reopening learns the ages from the disk, as after a restart
    const c = await ImageArchive.open(aged, { maxBytes: 10_000_000, maxAgeMs: 60_000, inlineMaxBytes: 0, log: silentLog });
    expect(c.count).toBe(0);
  });

  it('sniffs the encodings a line camera writes', () => {
    expect([jpeg, png, Buffer.from('BM....'), Buffer.from([0x49, 0x49, 0x2a, 0]), Buffer.from('RIFF\0\0\0\0WEBP'), Buffer.from('nope')].map(sniffFormat)).toEqual(['jpeg', 'png', 'bmp', 'tiff', 'webp', undefined]);
  });
});
