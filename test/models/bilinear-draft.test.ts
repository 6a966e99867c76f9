import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModelPackage } from '../../plugins/model-onnx/manifest.js';
import type { ReplayReport } from '../../runtime/replay/report.js';
import { linegate } from '../helpers/cli.js';
import { scratch } from '../helpers/scratch.js';
import { ROOT } from '../helpers/station.js';

/*
 * Issue 12's done-when, on a real PyTorch model: "A classifier trained with
 * bilinear resizing, deployed from `models inspect`'s draft after setting
 * only its labels, replays at the accuracy its training reported."
 *
 * test/assets/bilinear-cls/train.py trained a small CNN on the casting photos
 * with the most common torchvision recipe (Grayscale(1), Resize((96, 96)),
 * ToTensor, no Normalize) and wrote what torch said about each
 * fixtures/casting image (report.json, parity-ref.json). Here the ONNX file
 * goes through `models inspect`, the draft gets its labels, and the station's
 * own steps replay the fixtures: verdicts and p(defect) must be torch's.
 */

const ASSET = path.join(ROOT, 'test/assets/bilinear-cls');
const FIXTURES = path.join(ROOT, 'fixtures/casting');
const DATA = path.resolve(ROOT, '../shared/datasets/casting/train');

interface TrainReport {
  classes: string[];
  defectClass: string;
  model: { sha256: string };
  heldOut: { images: number; correct: number; accuracy: number };
  fixtures: { images: number; accuracy: number; perImage: { file: string; truth: string; pDefect: number; correct: boolean }[] };
}
const REPORT = JSON.parse(readFileSync(path.join(ASSET, 'report.json'), 'utf8')) as TrainReport;

/**
 * Allowed |p(defect) linegate - p(defect) torch| per image. Measured with the
 * shipped model: the decoded 300x300 grey pixels are bit-identical (sharp's
 * decode and PIL's), the 96x96 ones are not: libvips' bilinear shrink comes
 * out 0.19 grey levels darker than PIL's on average (1-2 levels on about a
 * fifth of the pixels, nearly all downwards). That moves the logits by up to
 * 0.12 and p(defect) by at most 0.0024 on the fixtures (saturated near 0 or
 * 1, where p hides differences) but 0.030 on the 600 held-out images (6 above
 * 0.02, all with p between 0.14 and 0.87, where p moves most). So 0.02 would
 * be too tight; 0.05 is 1.65x the worst linear difference, and lanczos3 still
 * exceeds it on the fixtures (0.090) and on the held-out set (0.76).
 */
const P_TOLERANCE = 0.05;

interface Manifest {
  labels: string[];
  sha256: string;
  file: string;
  input: Record<string, unknown>;
  decode: { kind: string; output: string; activation: string; goodLabels: string[] };
  thresholds: { default: number };
}

/** The drafted package, set up as a person following the review notes would; returns the package folder. */
async function deployFromDraft(root: string): Promise<{ pkg: string; draft: Manifest }> {
  const pkg = path.join(root, 'models/bilinear-cls/1');
  mkdirSync(pkg, { recursive: true });
  copyFileSync(path.join(ASSET, 'model.onnx'), path.join(pkg, 'model.onnx'));
  const run = await linegate(['models', 'inspect', path.join(pkg, 'model.onnx')]);
  expect(run.code, run.stderr).toBe(0);
  const file = path.join(pkg, 'model.json');
  const draft = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  // What the draft must have guessed right on its own, since nothing else is edited.
  expect(draft.input).toMatchObject({ name: 'input', layout: 'NCHW', width: 96, height: 96, channels: 1, color: 'GRAY', resize: { mode: 'stretch' }, kernel: 'linear', scale: 1 / 255, mean: [0], std: [1] });
  expect(draft.decode).toEqual({ kind: 'classification', output: 'logits', activation: 'softmax', goodLabels: ['class0'] });
  expect(draft.thresholds.default).toBe(0.5); // torch's accuracy is argmax accuracy: for two classes, p(defect) >= 0.5
  // The draft is a complete package already: it carries the file's sha256, so nothing but the labels needs writing.
  expect(draft.sha256).toBe(REPORT.model.sha256);
  // Labels in class-index order, as ImageFolder numbered them. goodLabels HAD to change too: ImageFolder sorts
  // def_front before ok_front, so the draft's guess "the first class is good" names the defect class (following it,
  // goodLabels [def_front], would invert every verdict; leaving [class0], a name no label has, rejects every part).
  // The "after setting only its labels" holds only if naming the good label counts as setting labels.
  const labels = REPORT.classes;
  expect(labels).toEqual(['def_front', 'ok_front']);
  writeFileSync(file, `${JSON.stringify({ ...draft, labels, decode: { ...draft.decode, goodLabels: ['ok_front'] } }, null, 2)}\n`);
  await loadModelPackage(pkg); // the schema and the hash accept it as it stands
  return { pkg, draft };
}

/** A minimal station around the package: decode grey, the model, classify-decode, reject def_front at the model's threshold. */
function stationFile(root: string): string {
  const file = path.join(root, 'stations/bilinear.yaml');
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(
    file,
    [
      'station: { id: bilinear-01, cycleBudgetMs: 60000 }',
      // replay puts its own source in place of this one
      'source: { name: cam0, use: core/folder-source@1, config: { dir: fixtures } }',
      'stages:',
      '  - { name: decode, use: core/image-decode@1, config: { color: GRAY } }',
      '  - { name: model, use: core/onnx-model@1, config: { model: models/bilinear-cls/1 } }',
      '  - { name: classify, use: core/classify-decode@1 }',
      '  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ id: defect, label: def_front, rejectCode: 1 }] } }',
      '',
    ].join('\n'),
  );
  return file;
}

async function replayFolder(station: string, dir: string, out: string): Promise<ReplayReport> {
  const run = await linegate(['replay', station, dir, '--good', 'ok_front', '--json', out]);
  expect(run.code, run.stderr).toBe(0);
  const report = JSON.parse(readFileSync(out, 'utf8')) as ReplayReport;
  expect(report.errors).toBe(0);
  return report;
}

/** Per fixture, |linegate p(defect) - torch p(defect)|, by the fixture's path under fixtures/casting. */
function pDiffs(report: ReplayReport): Map<string, number> {
  const torch = new Map(REPORT.fixtures.perImage.map((r) => [path.relative('fixtures/casting', r.file), r.pDefect]));
  expect(report.results).toHaveLength(torch.size);
  return new Map(report.results.map((r) => [r.file, Math.abs(r.score - torch.get(r.file)!)]));
}

const maxOf = (m: Map<string, number>): number => Math.max(...m.values());

describe("issue 12's done-when on a real PyTorch classifier (torchvision Resize, bilinear)", () => {
  it('replays fixtures/casting at the accuracy torch reported, each p(defect) within 0.05 of torch, after setting only the labels', async () => {
    const root = scratch('lg-bilinear-');
    const { pkg } = await deployFromDraft(root);
    const station = stationFile(root);
    const report = await replayFolder(station, FIXTURES, path.join(root, 'replay.json'));
    expect(report.model).toMatchObject({ name: 'bilinear-cls', sha256: REPORT.model.sha256, preprocessing: { kernel: 'linear' } });
    expect(report.images).toBe(REPORT.fixtures.images);
    expect(report.accuracy).toBe(REPORT.fixtures.accuracy);
    const linear = pDiffs(report);
    expect(maxOf(linear)).toBeLessThanOrEqual(P_TOLERANCE);
    // Each verdict is torch's, not only their count.
    const torchCorrect = new Map(REPORT.fixtures.perImage.map((r) => [path.relative('fixtures/casting', r.file), r.correct]));
    for (const r of report.results) expect((r.verdict === 'pass') === (r.truth === 'ok_front'), r.file).toBe(torchCorrect.get(r.file));

    // The converse: the same package with lanczos3 (the default before issue 12) strays further from torch.
    const manifestFile = path.join(pkg, 'model.json');
    const m = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
    writeFileSync(manifestFile, JSON.stringify({ ...m, input: { ...m.input, kernel: 'lanczos3' } }));
    const lanczos = pDiffs(await replayFolder(station, FIXTURES, path.join(root, 'replay-lanczos3.json')));
    console.info(JSON.stringify({ bilinearDraft: { maxPDiffLinear: maxOf(linear), maxPDiffLanczos3: maxOf(lanczos), accuracy: report.accuracy, torchAccuracy: REPORT.fixtures.accuracy } }));
    expect(maxOf(lanczos)).toBeGreaterThan(maxOf(linear));
    expect(maxOf(lanczos)).toBeGreaterThan(P_TOLERANCE); // the tolerance is tight enough to catch the wrong kernel
  }, 120_000);

  it('passes linegate models parity against the logits torch gave, and fails it with lanczos3', async () => {
    const root = scratch('lg-bilinear-');
    const { pkg } = await deployFromDraft(root);
    const ref = path.join(ASSET, 'parity-ref.json');
    const run = await linegate(['models', 'parity', pkg, '--ref', ref, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const drafted = run.lastJson<{ passed: boolean; images: number; tolerance: number; outputs: { output: string; maxAbsDiff: number }[] }>();
    // The reference's tolerance (0.25 logits) is train.py's PARITY_TOLERANCE, measured there: linear 0.12, lanczos3 1.6.
    expect(drafted).toMatchObject({ passed: true, images: 20, tolerance: 0.25, outputs: [{ output: 'logits' }] });
    const manifestFile = path.join(pkg, 'model.json');
    const m = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
    writeFileSync(manifestFile, JSON.stringify({ ...m, input: { ...m.input, kernel: 'lanczos3' } }));
    const lanczos = await linegate(['models', 'parity', pkg, '--ref', ref, '--json']);
    console.info(JSON.stringify({ bilinearParity: { tolerance: drafted.tolerance, linear: drafted.outputs[0]!.maxAbsDiff, lanczos3: lanczos.lastJson<{ outputs: { maxAbsDiff: number }[] }>().outputs[0]!.maxAbsDiff } }));
    expect(lanczos.code).toBe(3);
    expect(lanczos.stderr).toMatch(/parity failed.*input\.kernel lanczos3/);
  }, 120_000);
});

describe.skipIf(!existsSync(DATA))("the drafted package on train.py's held-out split (needs ../shared)", () => {
  it('replays the held-out images within 0.5 percentage points of the accuracy torch reported, and lanczos3 does not', async () => {
    const root = scratch('lg-bilinear-');
    const { pkg } = await deployFromDraft(root);
    const held = JSON.parse(readFileSync(path.join(ASSET, 'heldout.json'), 'utf8')) as { files: { file: string; pDefect: number }[] };
    const dir = path.join(root, 'heldout');
    for (const { file: f } of held.files) {
      mkdirSync(path.join(dir, path.dirname(f)), { recursive: true });
      symlinkSync(path.join(DATA, f), path.join(dir, f));
    }
    const torch = new Map(held.files.map((f) => [f.file, f.pDefect]));
    const maxPDiff = (r: ReplayReport): number => Math.max(...r.results.map((x) => Math.abs(x.score - torch.get(x.file)!)));
    const station = stationFile(root);
    const report = await replayFolder(station, dir, path.join(root, 'replay-heldout.json'));
    expect(report.images).toBe(REPORT.heldOut.images);
    expect(Math.abs((report.accuracy ?? Number.NaN) - REPORT.heldOut.accuracy)).toBeLessThanOrEqual(0.005); // null (nothing judged) fails too
    expect(maxPDiff(report)).toBeLessThanOrEqual(P_TOLERANCE);

    // The converse on 600 images: lanczos3 costs accuracy the training never had (measured 0.9817 against 0.995).
    const manifestFile = path.join(pkg, 'model.json');
    const m = JSON.parse(readFileSync(manifestFile, 'utf8')) as Manifest;
    writeFileSync(manifestFile, JSON.stringify({ ...m, input: { ...m.input, kernel: 'lanczos3' } }));
    const lanczos = await replayFolder(station, dir, path.join(root, 'replay-heldout-lanczos3.json'));
    console.info(JSON.stringify({ bilinearHeldOut: { images: report.images, torchAccuracy: REPORT.heldOut.accuracy, linear: { accuracy: report.accuracy, maxPDiff: maxPDiff(report) }, lanczos3: { accuracy: lanczos.accuracy, maxPDiff: maxPDiff(lanczos) } } }));
    expect(Math.abs((lanczos.accuracy ?? Number.NaN) - REPORT.heldOut.accuracy)).toBeGreaterThan(0.005);
    expect(maxPDiff(lanczos)).toBeGreaterThan(P_TOLERANCE);
  }, 300_000);
});
