import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileStationFile } from '../../runtime/compile/compile.js';
import { builtinRegistry } from '../../runtime/registry/builtins.js';
import { Station } from '../../runtime/station.js';
import type { InspectionResult } from '../../runtime/result.js';
import { ROOT, silentLog } from '../helpers/station.js';
import { scratch } from '../helpers/scratch.js';

function stationRoot(calibration: unknown, rules = '[{ label: blurred, minScore: 0.97, rejectCode: 11 }]'): string {
  const root = scratch('lg-cal-');
  mkdirSync(path.join(root, 'stations'));
  mkdirSync(path.join(root, 'calibration'));
  if (calibration !== undefined) writeFileSync(path.join(root, 'calibration', 'cal-01.json'), JSON.stringify(calibration));
  writeFileSync(
    path.join(root, 'stations', 'cal.yaml'),
    `station: { id: cal-01 }
source: { name: cam, use: core/folder-source@1, config: { dir: ${path.join(ROOT, 'fixtures/casting/ok_front')} } }
stages:
  - { name: decode, use: core/image-decode@1 }
  - { name: quality, use: core/image-quality@1, config: { minSharpness: 100 } }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: ${rules} } }
`,
  );
  return root;
}

const provenance = { date: '2026-11-21', method: 'test' };

describe('station calibration', () => {
  it('is picked up by station id and overrides a rule threshold', async () => {
    // every image is "blurred" against minSharpness 100 with a severity near 0.88: the rule alone passes them
    const uncal = new Station(await compileStationFile(path.join(stationRoot(undefined), 'stations/cal.yaml'), builtinRegistry()), silentLog);
    expect((await uncal.run({ maxFrames: 2 })).pass).toBe(2);
    await uncal.close();
    const root = stationRoot({ station: 'cal-01', thresholds: { blurred: 0.5 }, provenance });
    const plan = await compileStationFile(path.join(root, 'stations/cal.yaml'), builtinRegistry());
    expect(plan.calibration).toMatchObject({ station: 'cal-01', thresholds: { blurred: 0.5 } });
    const station = new Station(plan, silentLog);
    const results: InspectionResult[] = [];
    station.on('result', (r) => results.push(r));
    await station.run({ maxFrames: 2 });
    await station.close();
    expect(results.map((r) => r.verdict)).toEqual(['fail', 'fail']);
    expect(results[0]!.reasons[0]!.message).toContain('(calibration');
  });

  it('refuses a calibration file for another station, and one that fails its schema', async () => {
    for (const bad of [
      { station: 'other-01', thresholds: {}, provenance },
      { station: 'cal-01', thresholds: { blurred: 2 }, provenance },
      { station: 'cal-01', thresholds: {} },
    ]) {
      await expect(compileStationFile(path.join(stationRoot(bad), 'stations/cal.yaml'), builtinRegistry())).rejects.toMatchObject({ code: 'LG_ERR_CALIBRATION_INVALID' });
    }
  });
});
