import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { imageDecode } from '../../plugins/preprocess-image-decode/index.js';
import { onnxModel } from '../../plugins/model-onnx/index.js';
import { loadModelPackage } from '../../plugins/model-onnx/manifest.js';
import { packagesWith } from '../helpers/packages.js';
import { contextFor, frameOf } from '../helpers/samples.js';
import { ROOT } from '../helpers/station.js';

/**
 * Parity: onnxruntime-node, fed through the runtime's own decode and
 * preprocessing, must give what the training framework gave at export on the
 * same fixture images. Every model package with a parity.json is a case:
 *   { tolerance, cases: [{ file, <output>: [...], <output>_sum, <output>_max, <output>_sample: [first values] }] }
 * Other keys of a case (its label, a derived score) describe it and are not compared;
 * every case must compare at least one output.
 */
const packages = packagesWith('parity.json');

interface Parity {
  tolerance: number;
  cases: ({ file: string } & Record<string, unknown>)[];
}

describe('model parity with the training framework', () => {
  it('has parity references for the models linegate ships', () => {
    expect(packages).toEqual(expect.arrayContaining(['models/casting-cls/1', 'models/magnetic-tile-anomaly/1']));
  });

  describe.each(packages)('%s', (pkgPath) => {
    it('matches the reference outputs on every fixture image within the recorded tolerance', async () => {
      const parity = JSON.parse(readFileSync(path.join(ROOT, pkgPath, 'parity.json'), 'utf8')) as Parity;
      expect(parity.tolerance).toBeLessThanOrEqual(1e-4);
      const { manifest } = await loadModelPackage(path.join(ROOT, pkgPath));
      const ctx = contextFor(new AbortController().signal);
      const decode = await imageDecode.init(imageDecode.manifest.config.parse({ color: manifest.input.channels === 1 ? 'GRAY' : 'RGB' }), ctx);
      const model = await onnxModel.init(onnxModel.manifest.config.parse({ model: pkgPath, warmup: false }), ctx);
      try {
        expect(parity.cases.length).toBeGreaterThan(0);
        for (const c of parity.cases) {
          let compared = 0;
          const frame = frameOf(path.join(ROOT, c.file));
          const { image } = await decode.run({ frame }, ctx);
          const { outputs } = await model.run({ frame, image: image! }, ctx);
          for (const [key, want] of Object.entries(c)) {
            if (key === 'file') continue;
            const m = /^(.*?)(?:_(sum|max|sample))?$/.exec(key)!;
            const out = outputs![m[1]!];
            if (out === undefined) continue;
            const got = Array.from(out.data as Float32Array, Number);
            const label = `${pkgPath} ${c.file} ${key}`;
            if (m[2] === 'sum') expect(Math.abs(got.reduce((a, b) => a + b, 0) - (want as number)), label).toBeLessThanOrEqual(parity.tolerance * Math.max(1, got.length));
            else if (m[2] === 'max') expect(Math.abs(Math.max(...got) - (want as number)), label).toBeLessThanOrEqual(parity.tolerance);
            else {
              const ref = want as number[];
              const diff = Math.max(...ref.map((v, i) => Math.abs(v - got[i]!)));
              expect(diff, label).toBeLessThanOrEqual(parity.tolerance);
            }
            compared++;
          }
          expect(compared, `${c.file}: no key of the case names an output (${Object.keys(outputs!).join(', ')})`).toBeGreaterThan(0);
        }
      } finally {
        await model.close?.();
      }
    }, 60_000);
  });
});
