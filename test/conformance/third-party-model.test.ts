import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { compileStationData } from '../../runtime/compile/compile.js';
import { LinegateErrors } from '../../runtime/errors.js';
import type { InspectionResult } from '../../runtime/result.js';
import { builtinRegistry } from '../../runtime/registry/builtins.js';
import { Station } from '../../runtime/station.js';
import { testRoot } from '../helpers/roots.js';
import { scratch } from '../helpers/scratch.js';
import { silentLog } from '../helpers/station.js';

/**
 * The model-output contract proven by a model plugin that knows nothing but
 * the contract (fixtures/brightness-model.ts): loaded from a path as any
 * third-party plugin is, it feeds the built-in decoder and rules.
 */

const FIXTURE = path.resolve(import.meta.dirname, 'fixtures/brightness-model.ts');

/** A grey PNG whose columns left of `split` are `left` and the rest `right`. */
async function greyPng(file: string, width: number, height: number, left: number, right = left, split = width): Promise<void> {
  const px = Uint8Array.from({ length: width * height }, (_, i) => (i % width < split ? left : right));
  await sharp(px, { raw: { width, height, channels: 1 } }).png().toFile(file);
}

function stationData(dir: string, modelConfig: Record<string, unknown>, decoder = 'core/classify-decode@1'): unknown {
  return {
    station: { id: 'third-party-model', cycleBudgetMs: 5000 },
    plugins: [FIXTURE],
    source: { name: 'cam', use: 'core/folder-source@1', config: { dir } },
    stages: [
      { name: 'decode', use: 'core/image-decode@1', config: { color: 'GRAY' } },
      { name: 'model', use: 'acme/brightness-model@1', config: modelConfig },
      { name: 'classify', use: decoder },
      // No minScore: the threshold is the model's own, which only the model-output contract carries.
      { name: 'verdict', use: 'core/threshold-rules@1', config: { rules: [{ id: 'too-dark', label: 'dark', rejectCode: 7 }] } },
    ],
    sinks: [],
  };
}

async function runStation(data: unknown, frames: number): Promise<InspectionResult[]> {
  const root = testRoot('lg-tp-model-');
  const plan = await compileStationData(data, path.join(root, 'stations', 'third-party-model.yaml'), builtinRegistry());
  const station = new Station(plan, silentLog);
  const results: InspectionResult[] = [];
  station.on('result', (r) => results.push(r));
  try {
    await station.run({ maxFrames: frames });
  } finally {
    await station.close();
  }
  return results.sort((a, b) => a.source.ref.localeCompare(b.source.ref));
}

describe('a third-party model plugin written against the contract alone', () => {
  it('feeds core/classify-decode@1 and core/threshold-rules@1 in a compiled station, judged at its own thresholds', async () => {
    const dir = scratch('lg-tp-images-');
    await greyPng(path.join(dir, 'a-dark.png'), 64, 64, 40); // p(dark) 0.84
    await greyPng(path.join(dir, 'b-dim.png'), 64, 64, 110); // p(dark) 0.57: above 0.5, below the model's 0.6
    await greyPng(path.join(dir, 'c-bright.png'), 64, 64, 200); // p(dark) 0.22
    const results = await runStation(stationData(dir, {}), 3);

    expect(results.map((r) => [path.basename(r.source.ref), r.verdict, r.rejectCode])).toEqual([
      ['a-dark.png', 'fail', 7],
      ['b-dim.png', 'pass', 0],
      ['c-bright.png', 'pass', 0],
    ]);
    const [dark, dim] = results as [InspectionResult, InspectionResult];
    expect(dark.model).toEqual({ name: 'acme-brightness', version: '1', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(dark.scores.dark).toBeCloseTo(1 - 40 / 255, 5);
    expect(dark.defects).toEqual([{ label: 'dark', score: expect.closeTo(1 - 40 / 255, 5), rule: 'too-dark' }]);
    expect(dark.reasons[0]!.message).toContain('model acme-brightness@1');
    expect(dim.scores.dark).toBeCloseTo(1 - 110 / 255, 5);
    expect(dim.thresholds).toEqual({ dark: 0.6 });
  });

  it('puts the defect box on the batch item it came from, through the transforms the model gives', async () => {
    const dir = scratch('lg-tp-split-');
    await greyPng(path.join(dir, 'half.png'), 64, 32, 230, 20, 32); // bright left half, dark right half
    const [result] = await runStation(stationData(dir, { split: true }), 1);

    expect(result).toMatchObject({ verdict: 'fail', rejectCode: 7 });
    expect(result!.defects).toEqual([{ label: 'dark', score: expect.closeTo(1 - 20 / 255, 5), box: { x: 32, y: 0, w: 32, h: 32 }, rule: 'too-dark' }]);
  });

  it('is refused before the first frame beside a decoder for another task: its caps say what it carries', async () => {
    const dir = scratch('lg-tp-caps-');
    await greyPng(path.join(dir, 'a.png'), 16, 16, 100);
    const root = testRoot('lg-tp-caps-root-');
    const err = await compileStationData(stationData(dir, {}, 'core/yolo-decode@1'), path.join(root, 'stations', 'bad.yaml'), builtinRegistry()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LinegateErrors);
    const first = (err as LinegateErrors).errors[0]!;
    expect(first).toMatchObject({ code: 'LG_ERR_STATION_INCOMPATIBLE', step: 'classify' });
    expect(first.message).toContain('model/output(task=classification,decode=classification)');
    expect(first.message).toContain('model/output(task=detection,decode=yolo)');
  });
});
