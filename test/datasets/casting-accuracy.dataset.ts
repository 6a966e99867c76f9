import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { linegate } from '../helpers/cli.js';
import { judgingCopy, runToEnd } from '../helpers/shipped-station.js';
import { ROOT } from '../helpers/station.js';
import { scratch } from '../helpers/scratch.js';

const DATA = path.resolve(ROOT, '../shared/datasets/casting/train');

/** The held-out test split of models/casting-cls/1/train.py: sha256(stem) bucket 10-19 of 100, plus the fixtures (0-9 chose the threshold). */
const bucket = (stem: string): number => Number.parseInt(createHash('sha256').update(stem).digest('hex').slice(0, 8), 16) % 100;

/** The test split as a labelled folder (links into ../shared): ok_front/ and def_front/. */
function testSplit(): string {
  const dir = scratch('lg-casting-');
  for (const cls of ['ok_front', 'def_front']) {
    mkdirSync(path.join(dir, cls));
    const fixtures = new Set(readdirSync(path.join(ROOT, 'fixtures/casting', cls)));
    for (const f of readdirSync(path.join(DATA, cls))) {
      const b = bucket(f.replace(/\.jpeg$/, ''));
      if ((b >= 10 && b < 20) || fixtures.has(f)) symlinkSync(path.join(DATA, cls, f), path.join(dir, cls, f));
    }
  }
  return dir;
}

/**
 * The casting model as the station runs it (decode, model, decoder, rules
 * with the model's own threshold) on held-out images it never trained on.
 * Needs ../shared; skipped without it.
 */
describe.skipIf(!existsSync(DATA))('stations/casting.yaml on held-out casting images (needs ../shared)', () => {
  it('reaches >= 98% accuracy, and no more escapes than measured at export, at the model default threshold', async () => {
    const { results, summary } = await runToEnd(judgingCopy('casting.yaml', { images: testSplit() }));
    expect(summary.error).toBe(0);
    const defective = results.filter((r) => r.source.label === 'def_front');
    const good = results.filter((r) => r.source.label === 'ok_front');
    const escapes = defective.filter((r) => r.verdict === 'pass').length;
    const overkill = good.filter((r) => r.verdict !== 'pass').length;
    const accuracy = (results.length - escapes - overkill) / results.length;
    console.info(JSON.stringify({ casting: { images: results.length, defective: defective.length, good: good.length, accuracy, escapeRate: escapes / defective.length, overkillRate: overkill / good.length } }));
    expect(results.length).toBe(308);
    expect(accuracy).toBeGreaterThanOrEqual(0.98);
    // The aim was <= 1% escapes; the shipped model lets 2 of 156 defective test parts pass (1.28%,
    // both near-invisible rim flaws scored < 0.02): pinned here so any change shows, see its README.
    expect(escapes).toBeLessThanOrEqual(2);
  }, 180_000);

  it('compare: the 4-epoch candidate casting-cls/2 fails the promotion gate that casting-cls/1 passes', async () => {
    const dir = testSplit();
    const out = await linegate(['compare', path.join(ROOT, 'stations/casting.yaml'), dir, '--good', 'ok_front', '--model', 'models/casting-cls/1', '--model', 'models/casting-cls/2', '--gate', 'overkillRate<=0.02']);
    const c = JSON.parse(out.stdout) as { a: { metrics: { overkillRate: number } }; b: { metrics: { overkillRate: number } }; differing: { truth: string }[]; images: number };
    console.info(JSON.stringify({ compare: { images: c.images, overkillA: c.a.metrics.overkillRate, overkillB: c.b.metrics.overkillRate, differing: c.differing.length } }));
    expect(c.images).toBe(308);
    expect(out.code).toBe(3); // the gate failed: B rejects too many good parts
    expect(c.a.metrics.overkillRate).toBeLessThanOrEqual(0.02);
    expect(c.b.metrics.overkillRate).toBeGreaterThan(0.02);
    expect(c.differing.some((d) => d.truth === 'ok_front')).toBe(true); // the good class keeps its folder's name
  }, 180_000);
});
