import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { judgingCopy, runToEnd } from '../helpers/shipped-station.js';
import { ROOT } from '../helpers/station.js';

const PKG = path.join(ROOT, 'models/magnetic-tile-seg/1');
const GOOD = 'MT_Free';

interface Rates {
  escapes: number;
  falseRejects: number;
  escapeRate: number;
  overkillRate: number;
  images: number;
}
interface CardMetrics {
  station: { minScore: number; minAreaMm2: number; mmPerPixel: number };
  results: { test: { imageAUROC: number; atShipped: Rates } };
  /** Test tiles the card counts as escapes or overkill at the shipped rule, as `<class>/<stem>`. */
  testMisses: { escapes: { file: string }[]; overkill: { file: string }[] };
}
const card = (): CardMetrics => JSON.parse(readFileSync(path.join(PKG, 'metrics.json'), 'utf8')) as CardMetrics;

describe('stations/magnetic-tile-seg.yaml on its fixtures (held-out tiles)', () => {
  it('passes every MT_Free tile and rejects every defective one except the misses its card lists, with regions measured in mm²', async () => {
    const misses = new Set([...card().testMisses.escapes, ...card().testMisses.overkill].map((m) => m.file));
    const { results } = await runToEnd(judgingCopy('magnetic-tile-seg.yaml'));
    expect(results).toHaveLength(13);
    for (const r of results) {
      const right = r.source.label === GOOD ? 'pass' : 'fail';
      const missed = misses.has(`${r.source.label}/${path.basename(r.source.ref, '.jpg')}`);
      const want = missed ? (right === 'pass' ? 'fail' : 'pass') : right;
      expect(r.verdict, `${r.partId} (${r.source.label})`).toBe(want);
      if (want === 'fail' && right === 'fail') {
        // the rule counted a region: it carries its size in mm² from the calibrated scale
        const counted = r.defects.filter((d) => d.rule === 'tile-defect');
        expect(counted.length, r.partId).toBeGreaterThan(0);
        for (const d of counted) expect(d.region?.areaMm2, r.partId).toBeGreaterThanOrEqual(card().station.minAreaMm2);
      }
    }
  }, 120_000);
});
