import { cpSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import type { InspectionResult } from '../../runtime/result.js';
import type { Station } from '../../runtime/station.js';
import { FIXTURE } from '../helpers/samples.js';
import { scratch } from '../helpers/scratch.js';
import { stationFrom } from '../helpers/station.js';

const open: Station[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

/** The casting station (stations/casting.yaml) fed from `dir`, with no sinks: the results are read off the station. */
function castingStation(dir: string): Station {
  const station = stationFrom({
    station: { id: 'casting-unfit', cycleBudgetMs: 5000 },
    source: { name: 'cam0', use: 'core/folder-source@1', config: { dir } },
    stages: [
      { name: 'decode', use: 'core/image-decode@1', config: { color: 'GRAY' } },
      { name: 'model', use: 'core/onnx-model@1', config: { model: 'models/casting-cls/1', warmup: false } },
      { name: 'classify', use: 'core/classify-decode@1' },
      { name: 'verdict', use: 'core/threshold-rules@1', config: { rules: [{ id: 'casting-defect', label: 'defect', rejectCode: 1 }] } },
    ],
    sinks: [],
  });
  open.push(station);
  return station;
}

describe('the casting station and images not fit to judge', () => {
  it('gives a 1x1 PNG and a 0-byte file an error verdict with reject code 906 and their own codes, never pass or fail', async () => {
    const dir = scratch('lg-unfit-');
    writeFileSync(path.join(dir, 'a-tiny.png'), await sharp({ create: { width: 1, height: 1, channels: 3, background: '#808080' } }).png().toBuffer());
    writeFileSync(path.join(dir, 'b-empty.png'), Buffer.alloc(0));
    cpSync(FIXTURE, path.join(dir, 'c-photo.jpeg'));
    const station = castingStation(dir);
    const results: InspectionResult[] = [];
    station.on('result', (r) => void results.push(r));
    const summary = await station.run();
    expect(summary).toMatchObject({ frames: 3, error: 2 });
    const byPart = Object.fromEntries(results.map((r) => [r.partId, r]));
    expect(byPart['a-tiny']).toMatchObject({ verdict: 'error', rejectCode: 906, defects: [], reasons: [{ code: 'LG_ERR_IMAGE_TOO_SMALL', step: 'model', message: expect.stringContaining('1x1 pixels, below the 38x38') }] });
    expect(byPart['b-empty']).toMatchObject({ verdict: 'error', rejectCode: 906, defects: [], reasons: [{ code: 'LG_ERR_IMAGE_DECODE', step: 'decode', message: expect.stringContaining('0 bytes') }] });
    // the real photo beside them is still judged
    expect(byPart['c-photo']!.verdict).not.toBe('error');
  });
});
