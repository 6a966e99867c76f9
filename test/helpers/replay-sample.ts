import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { rateInterval } from '../../runtime/replay/intervals.js';
import { auroc, perClass, sweep } from '../../runtime/replay/metrics.js';
import type { ReplayMedia, ReplayReport, ReplayRow, TruthBox } from '../../runtime/replay/report.js';
import { readVoc } from './voc.js';

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures');

/** A file name a camera would never write but a disk allows: it must come out escaped. */
export const ODD_NAME = `good/a<b>&"q'.jpeg`;

interface Sample {
  readonly file: string;
  readonly from: string | null;
  readonly truth: string;
  readonly verdict: ReplayRow['verdict'];
  readonly score: number;
  readonly box?: { x: number; y: number; w: number; h: number };
}

// Escapes: scratches (0.10), crazing (0.30), broken (0.45). Overkills: 2985 (0.71), ODD_NAME (0.55), 4672 (error).
const SAMPLES: readonly Sample[] = [
  { file: 'good/cast_ok_0_1021.jpeg', from: 'casting/ok_front/cast_ok_0_1021.jpeg', truth: 'good', verdict: 'pass', score: 0.05 },
  { file: 'good/cast_ok_0_1917.jpeg', from: 'casting/ok_front/cast_ok_0_1917.jpeg', truth: 'good', verdict: 'pass', score: 0.2 },
  { file: 'good/cast_ok_0_2985.jpeg', from: 'casting/ok_front/cast_ok_0_2985.jpeg', truth: 'good', verdict: 'fail', score: 0.71, box: { x: 120, y: 40, w: 90, h: 70 } },
  { file: ODD_NAME, from: 'casting/ok_front/cast_ok_0_3840.jpeg', truth: 'good', verdict: 'fail', score: 0.55 },
  { file: 'good/cast_ok_0_4672.jpeg', from: 'casting/ok_front/cast_ok_0_4672.jpeg', truth: 'good', verdict: 'error', score: 0 },
  { file: 'crazing/crazing_7.jpg', from: 'neu-det/crazing_7.jpg', truth: 'crazing', verdict: 'pass', score: 0.3, box: { x: 10, y: 80, w: 150, h: 60 } },
  { file: 'scratches/scratches_7.jpg', from: 'neu-det/scratches_7.jpg', truth: 'scratches', verdict: 'pass', score: 0.1 },
  { file: 'inclusion/inclusion_7.jpg', from: 'neu-det/inclusion_7.jpg', truth: 'inclusion', verdict: 'fail', score: 0.9, box: { x: 20, y: 30, w: 40, h: 100 } },
  { file: 'porosity/cast_def_0_103.jpeg', from: 'casting/def_front/cast_def_0_103.jpeg', truth: 'porosity', verdict: 'fail', score: 0.8 },
  { file: 'porosity/broken.jpg', from: null, truth: 'porosity', verdict: 'pass', score: 0.45 },
  { file: 'patches/patches_7.jpg', from: 'neu-det/patches_7.jpg', truth: 'patches', verdict: 'fail', score: 0.62 },
];

/** A small hand-made report over real fixture images, copied into `dir` laid out the way replay expects (one sub-folder per class). */
export function sampleReplay(dir: string): { report: ReplayReport; media: ReplayMedia } {
  const truths = new Map<string, TruthBox[]>();
  const sizes = new Map<string, { width: number; height: number }>();
  for (const s of SAMPLES) {
    mkdirSync(path.join(dir, path.dirname(s.file)), { recursive: true });
    if (s.from === null) {
      // The head of a real JPEG: a header that parses, then nothing.
      writeFileSync(path.join(dir, s.file), readFileSync(path.join(FIXTURES, 'neu-det/inclusion_7.jpg')).subarray(0, 700));
      continue;
    }
    copyFileSync(path.join(FIXTURES, s.from), path.join(dir, s.file));
    if (s.from.startsWith('neu-det/')) {
      const boxes = readVoc(path.join(FIXTURES, s.from.replace(/\.jpg$/, '.xml')));
      truths.set(s.file, boxes.map((b) => ({ label: b.label, x: b.x1, y: b.y1, w: b.x2 - b.x1, h: b.y2 - b.y1 })));
      sizes.set(s.file, { width: 200, height: 200 });
    }
  }
  const results: ReplayRow[] = SAMPLES.map((s) => ({
    file: s.file,
    truth: s.truth,
    verdict: s.verdict,
    score: s.score,
    defects: s.box === undefined ? [] : [{ label: s.truth === 'good' ? 'porosity' : s.truth, score: s.score, box: s.box }],
  }));
  const report: ReplayReport = {
    station: 'casting-01',
    dir,
    good: ['good'],
    createdAt: '2025-05-04T10:20:30.000Z',
    images: results.length,
    errors: 1,
    confusion: { tp: 3, fp: 3, tn: 2, fn: 3 },
    accuracy: 5 / 11,
    precision: 0.5,
    recall: 0.5,
    escapeRate: 0.5,
    overkillRate: 0.6,
    auroc: auroc(results),
    perClass: perClass(results),
    intervals: { escapeRate: rateInterval(3, 6), overkillRate: rateInterval(3, 5) },
    detection: {
      mAP50: 0.375,
      mAP50Over: 'all-detections',
      iou: 0.5,
      perClass: { crazing: { ap: 0.25, truths: 2, predictions: 1 }, inclusion: { ap: 0.5, truths: 3, predictions: 1 } },
      classAgnostic: false,
      interpolation: 'voc-all-point',
      allDetections: {
        scoreFloor: 0.001,
        mAP50: 0.375,
        mAP50_95: 0.2,
        perClass: { crazing: { ap50: 0.25, ap50_95: 0.1, truths: 2, predictions: 1 }, inclusion: { ap50: 0.5, ap50_95: 0.3, truths: 3, predictions: 1 } },
      },
      operatingThreshold: {
        mAP50: 0.3,
        mAP50_95: 0.15,
        perClass: { crazing: { ap50: 0.2, ap50_95: 0.1, truths: 2, predictions: 1 }, inclusion: { ap50: 0.4, ap50_95: 0.2, truths: 3, predictions: 1 } },
        tp: 1,
        fp: 1,
        fn: 4,
        precision: 0.5,
        recall: 0.2,
        perClassCounts: { crazing: { tp: 0, fp: 1, fn: 2, precision: 0, recall: 0 }, inclusion: { tp: 1, fp: 0, fn: 2, precision: 1, recall: 1 / 3 } },
      },
    },
    latencyMs: { p50: 12.34, p95: 23.45, p99: 34.56 },
    model: {
      name: 'casting-cls',
      version: '3',
      sha256: 'abcdef0123456789'.repeat(4),
      task: 'classification',
      preprocessing: { width: 300, height: 300, color: 'GRAY', resize: { mode: 'stretch' }, kernel: 'linear', scale: 1 / 255, mean: [0.5], std: [0.5] },
    },
    thresholds: { porosity: { value: 0.5, from: 'calibration' } },
    calibration: {
      file: '/line/calibration/casting-01.json',
      status: 'bound',
      madeFor: { name: 'casting-cls', version: '3', sha256: 'abcdef0123456789'.repeat(4) },
      provenance: { date: '2025-05-01', method: 'linegate calibrate --target escape=0' },
    },
    sweep: sweep(results),
    results,
  };
  return { report, media: { dir, truths, sizes } };
}
