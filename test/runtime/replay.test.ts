import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileStationFile } from '../../runtime/compile/compile.js';
import { builtinRegistry } from '../../runtime/registry/builtins.js';
import type { InspectionResult } from '../../runtime/result.js';
import { Station } from '../../runtime/station.js';
import { listLabelled } from '../../runtime/replay/dataset.js';
import { replay } from '../../runtime/replay/run.js';
import type { ReplayReport } from '../../runtime/replay/report.js';
import { confusionOf, goodBy } from '../../runtime/replay/metrics.js';
import { linegate as run, type CliRun } from '../helpers/cli.js';
import { scratch } from '../helpers/scratch.js';
import { ROOT, silentLog } from '../helpers/station.js';

const CASTING = path.join(ROOT, 'fixtures/casting');
const TILES = path.join(ROOT, 'fixtures/magnetic-tile');
const NEU = path.join(ROOT, 'fixtures/neu-det');

/** The CLI in this process (see helpers/cli.ts). */
const linegate = (...args: string[]): Promise<CliRun> => run(args);

describe('the labelled folder', () => {
  it('takes classes from sub-folders, keeps the good folders\' own names, marks them good, and leaves masks out as annotations', async () => {
    const tiles = await listLabelled(TILES);
    expect(tiles.every((i) => i.file.endsWith('.jpg'))).toBe(true); // the .png beside each is its mask
    expect(tiles.every((i) => i.annotation?.kind === 'mask')).toBe(true);
    expect([...new Set(tiles.map((i) => i.truth))].sort()).toEqual(['blowhole', 'break', 'crack', 'good', 'uneven']);
    const casting = await listLabelled(CASTING, ['ok_front']);
    expect(casting.map((i) => i.truth)).toEqual([...Array(10).fill('def_front'), ...Array(10).fill('ok_front')]);
    expect(casting.map((i) => i.good)).toEqual([...Array(10).fill(false), ...Array(10).fill(true)]);
    expect(tiles.filter((i) => i.good).map((i) => i.truth)).toEqual(tiles.filter((i) => i.truth === 'good').map((i) => i.truth)); // "good" is a good name
    expect(casting.map((i) => i.file)).toEqual([...casting.map((i) => i.file)].sort()); // byte order: the same on every machine
  });

  it('finds VOC beside the image or in a parallel Annotations folder, and YOLO labels', async () => {
    const dir = scratch('lg-labelled-');
    mkdirSync(path.join(dir, 'crazing'));
    mkdirSync(path.join(dir, 'Annotations'));
    mkdirSync(path.join(dir, 'inclusion'));
    copyFileSync(path.join(NEU, 'crazing_7.jpg'), path.join(dir, 'crazing/crazing_7.jpg'));
    copyFileSync(path.join(NEU, 'crazing_7.xml'), path.join(dir, 'Annotations/crazing_7.xml'));
    copyFileSync(path.join(NEU, 'inclusion_7.jpg'), path.join(dir, 'inclusion/inclusion_7.jpg'));
    writeFileSync(path.join(dir, 'inclusion/inclusion_7.txt'), '0 0.5 0.5 0.1 0.2\n');
    const images = await listLabelled(dir);
    expect(images.map((i) => [i.file, i.annotation?.kind])).toEqual([
      ['crazing/crazing_7.jpg', 'voc'],
      ['inclusion/inclusion_7.jpg', 'yolo'],
    ]);
  });

  it('refuses images that lie outside a class folder, and a folder with no images, with a clear code', async () => {
    const loose = scratch('lg-labelled-');
    copyFileSync(path.join(NEU, 'crazing_7.jpg'), path.join(loose, 'a.jpg'));
    await expect(listLabelled(loose)).rejects.toMatchObject({ code: 'LG_ERR_REPLAY_LABELS', message: expect.stringContaining('have no class') });
    await expect(listLabelled(scratch('lg-labelled-'))).rejects.toMatchObject({ code: 'LG_ERR_REPLAY_LABELS', message: expect.stringContaining('holds no images') });
  });
});

describe('replay', () => {
  it('gives for each image exactly the result the live station gives', async () => {
    const plan = await compileStationFile(path.join(ROOT, 'stations/casting.yaml'), builtinRegistry());
    const live = new Station({ ...plan, sinks: [] }, silentLog); // the same station, its archive sink left out
    const liveResults = new Map<string, InspectionResult>();
    live.on('result', (r) => liveResults.set(path.relative(CASTING, r.source.ref), r));
    await live.run();
    await live.close();
    const r = await replay(path.join(ROOT, 'stations/casting.yaml'), CASTING, { good: ['ok_front'], log: silentLog });
    expect(r.results).toHaveLength(20);
    const decision = (x: InspectionResult) => ({ verdict: x.verdict, rejectCode: x.rejectCode, reasons: x.reasons, defects: x.defects, scores: x.scores, thresholds: x.thresholds, model: x.model, frame: { ...x.frame, ref: path.relative(CASTING, x.frame.ref) } });
    for (const x of r.results) expect(decision(x)).toEqual(decision(liveResults.get(x.partId)!));
  });

  it('runs the station with its calibration: thresholds that calibrate wrote are the ones the replay uses', async () => {
    const dir = scratch('lg-calibrate-');
    const station = path.join(dir, 'casting.yaml');
    const yaml = readFileSync(path.join(ROOT, 'stations/casting.yaml'), 'utf8').replace('station:\n', `station:\n  root: ${ROOT}\n  calibration: ${path.join(dir, 'casting.json')}\n`);
    writeFileSync(station, yaml);
    writeFileSync(path.join(dir, 'casting.json'), JSON.stringify({ station: 'casting-01', thresholds: { defect: 0.5 }, provenance: { date: 'x', method: 'by hand' }, roi: { x: 0, y: 0, width: 300, height: 300 } }));
    const out = await linegate('calibrate', station, CASTING, '--good', 'ok_front', '--target', 'escape=0');
    expect(out.code, out.stderr).toBe(0);
    const printed = JSON.parse(out.stdout) as { file: string; thresholds: { defect: { value: number; ci95: [number, number] } }; escapeRate: number; escapeUpper95: number };
    expect(printed.file).toBe(path.join(dir, 'casting.json'));
    expect(printed.escapeRate).toBe(0);
    expect(printed.escapeUpper95).toBeCloseTo(0.3, 12); // 3 / 10 defective images
    const [lo, hi] = printed.thresholds.defect.ci95;
    expect(lo).toBeLessThanOrEqual(printed.thresholds.defect.value);
    expect(hi).toBeGreaterThanOrEqual(printed.thresholds.defect.value);
    const written = JSON.parse(readFileSync(path.join(dir, 'casting.json'), 'utf8')) as Record<string, unknown>;
    expect(written).toMatchObject({ station: 'casting-01', roi: { width: 300 }, provenance: { method: 'linegate calibrate --target escape=0', images: 20, model: { name: 'casting-cls' } } });
    const again = await replay(station, CASTING, { good: ['ok_front'], log: silentLog });
    const used = (written.thresholds as { defect: number }).defect;
    expect(again.results.every((x) => x.thresholds?.defect === used)).toBe(true);
    expect(again.report.escapeRate).toBe(0);
  }, 60_000);
});

describe('linegate replay, compare and calibrate on the command line', () => {
  it('writes the JSON and HTML reports; the confusion counts equal a recount of the results', async () => {
    const dir = scratch('lg-replay-');
    const out = await linegate('replay', 'stations/casting.yaml', CASTING, '--good', 'ok_front', '--json', path.join(dir, 'r.json'), '--html', path.join(dir, 'r.html'));
    expect(out.code, out.stderr).toBe(0);
    const report = JSON.parse(readFileSync(path.join(dir, 'r.json'), 'utf8')) as ReplayReport;
    for (const key of ['images', 'errors', 'confusion', 'accuracy', 'precision', 'recall', 'escapeRate', 'overkillRate', 'auroc', 'perClass', 'latencyMs', 'model', 'results']) expect(report).toHaveProperty(key);
    expect(Object.keys(report.results[0]!).sort()).toEqual(['defects', 'file', 'score', 'truth', 'verdict']);
    expect(report.confusion).toEqual(confusionOf(report.results, goodBy(report.good)));
    // The good class keeps its folder's name, in the rows and per class.
    expect(new Set(report.results.map((x) => x.truth))).toEqual(new Set(['def_front', 'ok_front']));
    expect(Object.keys(report.perClass).sort()).toEqual(['def_front', 'ok_front']);
    expect(report.perClass.ok_front).toMatchObject({ images: 10, correct: 10 });
    expect(report.images).toBe(20);
    expect(report.model).toMatchObject({ name: 'casting-cls', version: '1', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const html = readFileSync(path.join(dir, 'r.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).not.toMatch(/(src|href)="https?:/);
  }, 60_000);

  it("counts the station's own good classes (station.goodLabels) as good without --good, and as defects without them", async () => {
    const dir = scratch('lg-replay-good-');
    const yaml = readFileSync(path.join(ROOT, 'stations/casting.yaml'), 'utf8');
    const own = path.join(dir, 'own.yaml');
    const none = path.join(dir, 'none.yaml');
    writeFileSync(own, yaml.replace('station:\n', `station:\n  root: ${ROOT}\n  goodLabels: [ok_front]\n`));
    writeFileSync(none, yaml.replace('station:\n', `station:\n  root: ${ROOT}\n`));
    const withOwn = await replay(own, CASTING, { log: silentLog });
    expect(withOwn.report.good).toContain('ok_front');
    expect(withOwn.report.confusion).toMatchObject({ tn: 10, fp: 0 });
    const without = await replay(none, CASTING, { log: silentLog });
    expect(without.report.good).not.toContain('ok_front');
    // Every ok_front part is then a "defect" the station passed: the station's classes are what made the difference.
    expect(without.report.confusion.tn + without.report.confusion.fp).toBe(0);
  }, 60_000);

  it('compares two models on the magnetic tiles and exits 3 when the gate fails', async () => {
    const model = 'models/magnetic-tile-anomaly/1';
    const ok = await linegate('compare', 'stations/magnetic-tile.yaml', TILES, '--model', model, '--model', model, '--gate', 'escapeRate<=0,delta.accuracy>=0');
    expect(ok.code, ok.stderr).toBe(0);
    const c = JSON.parse(ok.stdout) as { differing: unknown[]; delta: { accuracy: number }; gate: { passed: boolean } };
    expect(c).toMatchObject({ differing: [], delta: { accuracy: 0 }, gate: { passed: true } }); // a model against itself: deterministic
    const strict = await linegate('compare', 'stations/magnetic-tile.yaml', TILES, '--model', model, '--model', model, '--gate', 'overkillRate<=0');
    expect(strict.code).toBe(3);
    expect(strict.stderr).toContain('gate failed: overkillRate<=0 (is 0.25)');
    const bad = await linegate('compare', 'stations/magnetic-tile.yaml', TILES, '--model', model, '--model', model, '--gate', 'speed>9');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('LG_ERR_REPLAY_GATE');
  }, 120_000);

  it('calibrates the magnetic tiles for an overkill budget, and the station then does what calibrate promised', async () => {
    const dir = scratch('lg-calibrate-');
    const station = path.join(dir, 'tiles.yaml');
    writeFileSync(station, readFileSync(path.join(ROOT, 'stations/magnetic-tile.yaml'), 'utf8').replace('station:\n', `station:\n  root: ${ROOT}\n  calibration: ${path.join(dir, 'tiles.json')}\n`));
    writeFileSync(path.join(dir, 'tiles.json'), JSON.stringify({ station: 'magnetic-tile-01', provenance: { date: 'x', method: 'none yet' } }));
    // One good tile has an anomaly region scoring 1.0, and the rule judges regions: no threshold passes it.
    const impossible = await linegate('calibrate', station, TILES, '--target', 'overkill<=0');
    expect(impossible.code).toBe(2);
    expect(impossible.stderr).toContain('LG_ERR_CALIBRATE_TARGET');
    expect(impossible.stderr).toContain('no threshold passes them');
    const out = await linegate('calibrate', station, TILES, '--target', 'overkill<=0.25');
    expect(out.code, out.stderr).toBe(0);
    const printed = JSON.parse(out.stdout) as { escapeRate: number; overkillRate: number; thresholds: { anomaly: { value: number; positives: number; negatives: number } } };
    expect(printed.thresholds.anomaly).toMatchObject({ positives: 4, negatives: 4 });
    expect(printed.overkillRate).toBeLessThanOrEqual(0.25);
    const again = await replay(station, TILES, { log: silentLog });
    expect(again.results.every((x) => x.thresholds?.anomaly === Number(printed.thresholds.anomaly.value.toFixed(6)))).toBe(true);
    expect({ escapeRate: again.report.escapeRate, overkillRate: again.report.overkillRate }).toEqual({ escapeRate: printed.escapeRate, overkillRate: printed.overkillRate });
  }, 60_000);
});

const NEU_MODEL = path.resolve(ROOT, '../shared/models/neu-yolov8n-int8/model.onnx');

describe.skipIf(!existsSync(NEU_MODEL))('replay with boxes: the NEU detector on the annotated fixtures (needs ../shared)', () => {
  it('matches its boxes to the VOC truths and reports AP50 per class and mAP50', async () => {
    const dir = scratch('lg-neu-replay-');
    mkdirSync(path.join(dir, 'Annotations'));
    for (const f of readdirSync(NEU).filter((x) => x.endsWith('.jpg'))) {
      const cls = f.replace(/_\d+\.jpg$/, '');
      mkdirSync(path.join(dir, cls));
      copyFileSync(path.join(NEU, f), path.join(dir, cls, f));
      copyFileSync(path.join(NEU, f.replace(/\.jpg$/, '.xml')), path.join(dir, 'Annotations', f.replace(/\.jpg$/, '.xml')));
    }
    const r = await replay(path.join(ROOT, 'stations/neu-steel.yaml'), dir, { log: silentLog });
    const d = r.report.detection!;
    const all = d.allDetections!;
    const op = d.operatingThreshold;
    console.info(JSON.stringify({ neuReplay: { images: r.report.images, mAP50: all.mAP50, mAP50_95: all.mAP50_95, atThreshold: { mAP50: op.mAP50, precision: op.precision, recall: op.recall }, perClass: all.perClass } }));
    expect(r.report.images).toBe(6);
    expect(d.classAgnostic).toBe(false); // the detector's labels are the NEU classes
    expect(Object.keys(d.perClass).sort()).toEqual(['crazing', 'inclusion', 'patches', 'pitted_surface', 'rolled-in_scale', 'scratches']);
    // The standard figure, over every detection down to the 0.001 floor, is the headline...
    expect(d.mAP50Over).toBe('all-detections');
    expect(all.scoreFloor).toBe(0.001);
    expect(d.mAP50).toBe(all.mAP50);
    expect(all.mAP50).toBeGreaterThan(0.5);
    // ...and never below the thresholded one: more detections can only extend the precision-recall curve.
    expect(all.mAP50).toBeGreaterThanOrEqual(op.mAP50);
    expect(all.mAP50_95).toBeLessThanOrEqual(all.mAP50);
    for (const [label, c] of Object.entries(all.perClass)) {
      expect(c.predictions, label).toBeGreaterThanOrEqual(op.perClass[label]?.predictions ?? 0);
      expect(c.ap50, label).toBeGreaterThanOrEqual(op.perClass[label]?.ap50 ?? 0);
    }
    expect(op.precision).not.toBeNull();
    expect(op.tp + op.fn).toBe(Object.values(all.perClass).reduce((s, c) => s + c.truths, 0));
    // The low-floor pass does not touch the verdicts: they are the station's, at its own floor.
    expect(r.results.every((x) => x.defects.every((def) => def.score >= 0.25))).toBe(true);
    expect(r.report.thresholds).toEqual(Object.fromEntries(Object.keys(d.perClass).sort().map((l) => [l, { value: 0.25, from: 'model' }])));
    expect(r.report.model).toMatchObject({ name: 'neu-yolov8n-int8', preprocessing: { width: 640, height: 640, resize: { mode: 'stretch' }, kernel: 'linear' }, decode: { scoreThreshold: 0.25 } });
  }, 60_000);
});
