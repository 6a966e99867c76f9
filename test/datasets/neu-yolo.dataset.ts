import { existsSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { judgingCopy, runToEnd } from '../helpers/shipped-station.js';
import { ROOT } from '../helpers/station.js';
import { iou, readVoc } from '../helpers/voc.js';
import { scratch } from '../helpers/scratch.js';

const SHARED = path.resolve(ROOT, '../shared');
const NEU = path.join(SHARED, 'datasets/neu-det');
const MODEL = path.join(SHARED, 'models/neu-yolov8n-int8/model.onnx');
const PER_CLASS = 8;

/**
 * The YOLO decoder proven on a real third-party detector: its boxes, decoded
 * by linegate through the NEU station's own pipeline, against the NEU-DET
 * annotations. Needs ../shared (the model is not shipped); skipped without it.
 */
describe.skipIf(!existsSync(MODEL) || !existsSync(NEU))('the NEU YOLOv8n detector through stations/neu-steel.yaml (needs ../shared)', () => {
  it('finds the annotated defects: right class on the image, boxes overlapping the annotations', async () => {
    // A deterministic sample: the first PER_CLASS images of each class in natural order.
    const images = readdirSync(path.join(NEU, 'IMAGES')).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    const byClass = new Map<string, string[]>();
    for (const f of images) {
      const cls = f.replace(/_\d+\.jpg$/, '');
      const list = byClass.get(cls) ?? [];
      if (list.length < PER_CLASS) byClass.set(cls, [...list, f]);
    }
    const dir = scratch('lg-neu-');
    mkdirSync(path.join(dir, 'imgs'));
    for (const f of [...byClass.values()].flat()) symlinkSync(path.join(NEU, 'IMAGES', f), path.join(dir, 'imgs', f));
    const { results, summary } = await runToEnd(judgingCopy('neu-steel.yaml', { images: path.join(dir, 'imgs') }));
    expect(summary.error).toBe(0);
    expect(results).toHaveLength(6 * PER_CLASS);

    let classHits = 0;
    let annotated = 0;
    let matched = 0;
    const ious: number[] = [];
    for (const r of results) {
      const stem = path.basename(r.source.ref, '.jpg');
      const truth = readVoc(path.join(NEU, 'ANNOTATIONS', `${stem}.xml`));
      const top = [...r.defects].sort((a, b) => b.score - a.score)[0];
      if (top?.label === truth[0]!.label) classHits++;
      for (const t of truth) {
        annotated++;
        const best = Math.max(0, ...r.defects.filter((d) => d.label === t.label && d.box !== undefined).map((d) => iou(t, d.box!)));
        ious.push(best);
        if (best >= 0.5) matched++;
      }
      for (const d of r.defects) {
        // every box lies on the 200x200 image
        expect(d.box!.x).toBeGreaterThanOrEqual(0);
        expect(d.box!.x + d.box!.w).toBeLessThanOrEqual(200);
      }
    }
    const classAccuracy = classHits / results.length;
    const recall50 = matched / annotated;
    // The measured figures are printed so a change in the decoder shows as a change in numbers, not just a pass.
    console.info(JSON.stringify({ neu: { images: results.length, classAccuracy, annotated, recall50, meanBestIoU: ious.reduce((a, b) => a + b, 0) / ious.length } }));
    expect(classAccuracy).toBeGreaterThanOrEqual(0.9); // measured 0.98 on 48 images
    expect(recall50).toBeGreaterThanOrEqual(0.75); // measured 0.83 of 103 boxes
  }, 120_000);
});
