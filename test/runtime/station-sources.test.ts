import { cpSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileStationFile } from '../../runtime/compile/compile.js';
import type { InspectionResult } from '../../runtime/result.js';
import { builtinRegistry } from '../../runtime/registry/builtins.js';
import { Station } from '../../runtime/station.js';
import { FIXTURE } from '../helpers/samples.js';
import { ROOT, silentLog } from '../helpers/station.js';
import { scratch } from '../helpers/scratch.js';

const PIPELINE = `
stages:
  - { name: decode, use: core/image-decode@1 }
  - { name: quality, use: core/image-quality@1 }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ label: blurred, minScore: 0.2, rejectCode: 11 }] } }
`;

describe('a station fed by a hot folder', () => {
  it('inspects each dropped file once and files it by verdict: a corrupt image ends as an error in failed/, good ones in done/', async () => {
    const dir = scratch('lg-station-hot-');
    const inbox = path.join(dir, 'inbox');
    mkdirSync(inbox);
    cpSync(FIXTURE, path.join(inbox, 'part-1.jpg'));
    cpSync(FIXTURE, path.join(inbox, 'part-2.jpg'));
    writeFileSync(path.join(inbox, 'part-3.jpg'), Buffer.from('truncated'));
    const file = path.join(dir, 'station.yaml');
    writeFileSync(file, `station: { id: hot-01 }\nsource: { name: cam, use: core/hot-folder@1, config: { dir: inbox, settleMs: 50, pollMs: 20 } }\n${PIPELINE}`);
    const station = new Station(await compileStationFile(file, builtinRegistry()), silentLog);
    const results: InspectionResult[] = [];
    station.on('result', (r) => {
      results.push(r);
      if (results.length === 3) station.stop();
    });
    const summary = await station.run();
    await station.close();
    expect(summary).toMatchObject({ frames: 3, pass: 2, error: 1 });
    const byPart = Object.fromEntries(results.map((r) => [r.partId, r]));
    expect(byPart['part-3']).toMatchObject({ verdict: 'error', rejectCode: 906, reasons: [{ code: 'LG_ERR_IMAGE_DECODE', step: 'decode' }] });
    expect(readdirSync(path.join(inbox, '.linegate/done')).sort()).toEqual(['part-1.jpg', 'part-2.jpg']);
    expect(readdirSync(path.join(inbox, '.linegate/failed'))).toEqual(['part-3.jpg']);
    expect(readdirSync(path.join(inbox, '.linegate/processing'))).toEqual([]);
  });
});

describe('third-party plugins by package name', () => {
  it('are resolved from the station root node_modules', async () => {
    const root = scratch('lg-pkg-');
    const pkg = path.join(root, 'node_modules', 'acme-linegate-invert');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'acme-linegate-invert', type: 'module', exports: { '.': { import: './index.mjs' } } }));
    cpSync(path.resolve(import.meta.dirname, '../cases/plugins/good-plugin.mjs'), path.join(pkg, 'index.mjs'));
    // the copied module imports 'zod': make it resolvable from the temp root as it would be in a user's project
    symlinkSync(path.join(ROOT, 'node_modules', 'zod'), path.join(root, 'node_modules', 'zod'), 'dir');
    mkdirSync(path.join(root, 'fixtures'));
    cpSync(FIXTURE, path.join(root, 'fixtures', 'a.jpg'));
    const file = path.join(root, 'station.yaml');
    writeFileSync(
      file,
      `station: { id: pkg-01 }\nplugins: [acme-linegate-invert]\nsource: { name: cam, use: core/folder-source@1, config: { dir: fixtures } }\n${PIPELINE.replace(
        '  - { name: quality',
        '  - { name: invert, use: acme/invert@1 }\n  - { name: quality',
      )}`,
    );
    const plan = await compileStationFile(file, builtinRegistry());
    expect(plan.stages.map((s) => s.plugin.manifest.id)).toContain('acme/invert@1');
    const brightness = async (p: typeof plan): Promise<number> => {
      const station = new Station(p, silentLog);
      const results: InspectionResult[] = [];
      station.on('result', (r) => results.push(r));
      const summary = await station.run({ maxFrames: 1 });
      await station.close();
      expect(summary).toMatchObject({ frames: 1, error: 0 });
      return results[0]!.scores.brightness!;
    };
    // What the plugin did, seen downstream: the image-quality step measures the inverted image (a plugin
    // that loaded but returned its input unchanged would pass everything above).
    const inverted = await brightness(plan);
    const plain = await brightness({ ...plan, stages: plan.stages.filter((s) => s.plugin.manifest.id !== 'acme/invert@1') });
    expect(inverted).toBeCloseTo(1 - plain, 2);
    expect(Math.abs(inverted - plain)).toBeGreaterThan(0.05); // the fixture is far enough from mid-grey for this to tell
  });
});
