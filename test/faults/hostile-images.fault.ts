import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { InspectionResult } from '../../runtime/result.js';
import { LinegateProcess, ROOT, RssSampler, cleanUp, pidOf, tempRoot, writeStation } from './harness.js';
import { GOOD_DEFECT, GOOD_OK, noise, png16, png1x1, pngBomb, truncatedJpeg } from './images.js';
import { RSS_MAX_MIB, brief, expectAccounted, expectOnceEach, expectRssBounded, expectUndecidableRejected, lastJsonLine, readJsonl, type RunLine } from './invariants.js';

/**
 * Fault 5: images not fit to judge, through the casting station as a user
 * runs it. Each must be an `error` verdict with reject code 906 (the code
 * documented for images not fit to judge), never a pass or a fail; the good
 * photos among them are still judged, and the process neither dies nor
 * balloons on a decompression bomb.
 */

afterEach(cleanUp);

/** The casting station (stations/casting.yaml) with another source and a JSONL sink in the temp root. */
function castingStation(root: string, source: string): string {
  return writeStation(
    root,
    `station: { id: fault-images, root: ${ROOT}, cycleBudgetMs: 5000, maxInFlight: 1, queueSize: 2 }
source: ${source}
stages:
  - { name: decode, use: core/image-decode@1, config: { color: GRAY } }
  - { name: model, use: core/onnx-model@1, config: { model: models/casting-cls/1 } }
  - { name: classify, use: core/classify-decode@1 }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ id: casting-defect, label: defect, rejectCode: 1 }] } }
sinks:
  - { name: results, use: core/jsonl-sink@1, config: { dir: ${path.join(root, 'results')} } }
`,
  );
}

/** Hostile files by name (the name sorts them between good photos), and the reason codes each may carry. */
async function hostileFiles(): Promise<Record<string, { bytes: Buffer; codes: RegExp }>> {
  const unfit = /^LG_ERR_IMAGE_(DECODE|FORMAT)$/;
  return {
    'b-corrupt.jpg': { bytes: noise(6000), codes: unfit },
    'd-empty.png': { bytes: Buffer.alloc(0), codes: /^LG_ERR_IMAGE_DECODE$/ },
    'f-truncated.jpeg': { bytes: truncatedJpeg(0.4), codes: unfit },
    'h-bomb.png': { bytes: pngBomb(100_000, 100_000), codes: unfit },
    'j-tiny.png': { bytes: await png1x1(), codes: /^LG_ERR_IMAGE_TOO_SMALL$/ },
    'l-text.jpg': { bytes: Buffer.from('this is not an image, whatever its name says\n'), codes: unfit },
  };
}

/** Good photos between the hostile ones: the station must still judge them, and judge them right. */
const GOOD: Record<string, { file: string; verdict: 'pass' | 'fail' }> = {
  'a-good.jpeg': { file: GOOD_DEFECT, verdict: 'fail' },
  'c-good.jpeg': { file: GOOD_OK, verdict: 'pass' },
  'g-good.jpeg': { file: GOOD_DEFECT, verdict: 'fail' },
  'i-good.jpeg': { file: GOOD_OK, verdict: 'pass' },
  'k-good.jpeg': { file: GOOD_DEFECT, verdict: 'fail' },
  'm-good.jpeg': { file: GOOD_OK, verdict: 'pass' },
};

const stem = (name: string): string => name.replace(/\.[^.]+$/, '');

function expectUnfit(r: InspectionResult | undefined, name: string, codes: RegExp): void {
  expect(r, `${name}: no result at all`).toBeDefined();
  expect({ verdict: r!.verdict, rejectCode: r!.rejectCode }, `${name}: ${JSON.stringify(brief(r!))} ${JSON.stringify(r!.reasons)}`).toEqual({ verdict: 'error', rejectCode: 906 });
  expect(r!.reasons.map((x) => x.code).filter((c) => codes.test(c)).length, `${name}: reasons ${JSON.stringify(r!.reasons)}`).toBeGreaterThan(0);
}

describe('fault: hostile images', () => {
  it('gives corrupt, empty, truncated, bomb, 1x1 and non-image files an error verdict with 906 (a 16-bit PNG is refused the same way or judged as its 8-bit original), and goes on judging good photos', async () => {
    const root = tempRoot('images');
    const dir = path.join(root, 'images');
    mkdirSync(dir);
    const hostile = await hostileFiles();
    for (const [name, h] of Object.entries(hostile)) writeFileSync(path.join(dir, name), h.bytes);
    for (const [name, g] of Object.entries(GOOD)) copyFileSync(g.file, path.join(dir, name));
    writeFileSync(path.join(dir, 'e-16bit.png'), await png16(GOOD_DEFECT));
    const files = readdirSync(dir);

    const run = new LinegateProcess(['run', castingStation(root, `{ name: cam0, use: core/folder-source@1, config: { dir: ${dir} } }`), '--no-pretty']);
    const rss = new RssSampler(await pidOf(run), 10);
    const { code } = await run.exited;
    rss.stop();
    expect(code, `linegate run exited ${code}:\n${run.stderr.slice(-3000)}`).toBe(0);

    const { summary } = lastJsonLine<RunLine>(run.stdout, 'linegate run');
    expectAccounted(summary);
    expect(summary.frames, 'every file is a frame: none skipped, the run did not stop at a bad one').toBe(files.length);

    const { results, broken } = readJsonl(path.join(root, 'results'));
    expect(broken).toEqual([]);
    expectOnceEach('results by part id', results, (r) => r.partId, files.map(stem));
    const byPart = new Map(results.map((r) => [r.partId, r]));

    for (const [name, h] of Object.entries(hostile)) expectUnfit(byPart.get(stem(name)), name, h.codes);
    for (const [name, g] of Object.entries(GOOD)) {
      expect(byPart.get(stem(name))?.verdict, `${name}, a good photo among hostile ones: ${JSON.stringify(brief(byPart.get(stem(name))!))}`).toBe(g.verdict);
    }
    // A 16-bit PNG is an image linegate documents decoding to 8 bits: refused as unfit (906), or judged exactly as its 8-bit original.
    const deep = byPart.get('e-16bit')!;
    const original = byPart.get('a-good')!;
    if (deep.verdict === 'error') expectUnfit(deep, 'e-16bit.png', /^LG_ERR_IMAGE_(DECODE|FORMAT)$/);
    else {
      expect(deep.verdict, `e-16bit.png judged unlike its 8-bit original: ${JSON.stringify(brief(deep))} scores ${JSON.stringify(deep.scores)} vs ${JSON.stringify(original.scores)}`).toBe(original.verdict);
      expect(Math.abs((deep.scores.defect ?? 0) - (original.scores.defect ?? 0)), `16-bit score ${deep.scores.defect} vs 8-bit ${original.scores.defect}`).toBeLessThan(0.05);
    }
    expectUndecidableRejected(results);
    expect(summary.pass + summary.fail, 'only the good photos (and at most the 16-bit PNG) get pass or fail').toBeLessThanOrEqual(Object.keys(GOOD).length + 1);
    // The bomb declares 10^10 pixels: nothing may try to hold them.
    expectRssBounded(rss.samples, { maxMiB: RSS_MAX_MIB, minSamples: 1 });
  });

  it('moves hostile files dropped into a hot folder to its failed folder with a 906 result each, good files to done, and leaves an empty file in the inbox untouched as documented', async () => {
    const root = tempRoot('images-hot');
    const inbox = path.join(root, 'inbox');
    mkdirSync(inbox);
    const hostile = await hostileFiles();
    const taken = Object.entries(hostile).filter(([, h]) => h.bytes.length > 0);
    for (const [name, h] of taken) writeFileSync(path.join(inbox, name), h.bytes);
    writeFileSync(path.join(inbox, 'd-empty.png'), Buffer.alloc(0));
    for (const [name, g] of Object.entries(GOOD)) copyFileSync(g.file, path.join(inbox, name));
    const expected = [...taken.map(([n]) => n), ...Object.keys(GOOD)];

    const run = new LinegateProcess([
      'run',
      castingStation(root, `{ name: inbox, use: core/hot-folder@1, config: { dir: ${inbox}, settleMs: 100, pollMs: 50 } }`),
      '--no-pretty',
      '--max-frames',
      String(expected.length),
    ]);
    const { code } = await run.exited;
    expect(code, `linegate run exited ${code}:\n${run.stderr.slice(-3000)}`).toBe(0);
    const { summary } = lastJsonLine<RunLine>(run.stdout, 'linegate run');
    expectAccounted(summary);
    expect(summary.frames).toBe(expected.length);

    const { results, broken } = readJsonl(path.join(root, 'results'));
    expect(broken).toEqual([]);
    expectOnceEach('results by part id', results, (r) => r.partId, expected.map(stem));
    const byPart = new Map(results.map((r) => [r.partId, r]));
    for (const [name, h] of taken) expectUnfit(byPart.get(stem(name)), name, h.codes);
    for (const [name, g] of Object.entries(GOOD)) expect(byPart.get(stem(name))?.verdict, name).toBe(g.verdict);
    expectUndecidableRejected(results);

    const failed = path.join(inbox, '.linegate/failed');
    const done = path.join(inbox, '.linegate/done');
    expect((existsSync(failed) ? readdirSync(failed) : []).sort(), 'failed folder: every hostile file, nothing else').toEqual(taken.map(([n]) => n).sort());
    expect((existsSync(done) ? readdirSync(done) : []).sort(), 'done folder: the good photos').toEqual(Object.keys(GOOD).sort());
    expect(readdirSync(inbox).filter((n) => !n.startsWith('.')), 'inbox: only the empty file (an upload that may still be written)').toEqual(['d-empty.png']);
  });
});
