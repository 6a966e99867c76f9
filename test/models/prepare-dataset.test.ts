import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { prepareDataset } from '../../models/tools/prepare-dataset.js';
import { InputSpec } from '../../plugins/model-onnx/manifest.js';
import { tileRects } from '../../plugins/model-onnx/preprocess.js';
import { toSourceX, toSourceY, type InputTransform, type SourceRect } from '../../runtime/contract.js';
import { scratch } from '../helpers/scratch.js';

/* models/tools/prepare-dataset.ts writes what a model sees at the station; a mask must land on its defect's pixels. */

const W = 300;
const H = 160;
const DEFECT = { x: 250, y: 100, width: 20, height: 10 };

/** A dark grey image with one bright rectangle, and its mask (255 on the rectangle), in `dir/cls/`. */
async function dataset(): Promise<string> {
  const dir = scratch('lg-prep-');
  mkdirSync(path.join(dir, 'cls'));
  const px = (on: number, off: number): Buffer => {
    const b = Buffer.alloc(W * H, off);
    for (let y = DEFECT.y; y < DEFECT.y + DEFECT.height; y++) b.fill(on, y * W + DEFECT.x, y * W + DEFECT.x + DEFECT.width);
    return b;
  };
  // The image is a JPEG (as a camera's), the mask a PNG with the same stem (as the magnetic tile set's).
  await sharp(px(230, 40), { raw: { width: W, height: H, channels: 1 } }).jpeg({ quality: 100 }).toFile(path.join(dir, 'cls/a.jpg'));
  await sharp(px(255, 0), { raw: { width: W, height: H, channels: 1 } }).png().toFile(path.join(dir, 'cls/a.png'));
  return dir;
}

/** Bounding box of the pixels >= 128 in a grey PNG, or undefined. */
async function bright(file: string): Promise<{ x0: number; y0: number; x1: number; y1: number } | undefined> {
  const { data, info } = await sharp(file).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  let box: { x0: number; y0: number; x1: number; y1: number } | undefined;
  for (let y = 0; y < info.height; y++) {
    for (let x = 0; x < info.width; x++) {
      if (data[(y * info.width + x) * info.channels]! < 128) continue;
      box = box === undefined ? { x0: x, y0: y, x1: x, y1: y } : { x0: Math.min(box.x0, x), y0: Math.min(box.y0, y), x1: Math.max(box.x1, x), y1: Math.max(box.y1, y) };
    }
  }
  return box;
}

const spec = (width: number, height: number, anchor: 'center' | 'top-left'): InputSpec =>
  InputSpec.parse({ name: 'input', width, height, channels: 1, color: 'GRAY', resize: { mode: 'letterbox', pad: 0, anchor } });

describe('models/tools/prepare-dataset.ts', () => {
  it('letterboxes a mask exactly as its image, centred when the model centres (it was once padded top-left under a centred image)', async () => {
    const src = await dataset();
    const out = scratch('lg-prep-out-');
    expect(await prepareDataset({ spec: spec(64, 64, 'center'), src, out, masks: true })).toEqual({ images: 1, masks: 1, out });
    const image = await bright(path.join(out, 'cls/a.png'));
    const mask = await bright(path.join(out, 'cls/a.mask.png'));
    // 300x160 -> 64x34, centred: 15 rows of padding above. The defect lands on the same model pixels in both.
    expect(image).toBeDefined();
    expect(mask).toEqual(image);
    expect(image!.y0).toBeGreaterThanOrEqual(15 + Math.floor((DEFECT.y * 34) / H) - 1);
  });

  it('cuts tiles as the model step does, with each tile transform mapping its mask back onto the defect in the source', async () => {
    const src = await dataset();
    const out = scratch('lg-prep-out-');
    const s = spec(128, 128, 'top-left');
    expect(await prepareDataset({ spec: s, src, out, masks: true, tilesOverlap: 16 })).toEqual({ images: 1, masks: 1, out });
    const index = JSON.parse(readFileSync(path.join(out, 'cls/a.tiles.json'), 'utf8')) as {
      source: { width: number; height: number };
      tiles: { file: string; rect: SourceRect; transform: InputTransform }[];
    };
    expect(index.source).toEqual({ width: W, height: H });
    expect(index.tiles.map((t) => t.rect)).toEqual(tileRects({ x: 0, y: 0, width: W, height: H }, 128, 128, 16));
    let seen = 0;
    for (const t of index.tiles) {
      const image = await bright(path.join(out, 'cls', t.file));
      const mask = await bright(path.join(out, 'cls', t.file.replace(/\.png$/, '.mask.png')));
      expect(mask, t.file).toEqual(image);
      const inside = t.rect.x < DEFECT.x + DEFECT.width && DEFECT.x < t.rect.x + t.rect.width && t.rect.y < DEFECT.y + DEFECT.height && DEFECT.y < t.rect.y + t.rect.height;
      expect(mask !== undefined, t.file).toBe(inside);
      if (mask === undefined) continue;
      seen++;
      // At full scale (the tiles are smaller than the image) the tile pixels are source pixels less the tile's origin.
      const tr = t.transform;
      expect([toSourceX(tr, mask.x0), toSourceY(tr, mask.y0), toSourceX(tr, mask.x1 + 1), toSourceY(tr, mask.y1 + 1)]).toEqual([
        Math.max(DEFECT.x, t.rect.x),
        Math.max(DEFECT.y, t.rect.y),
        Math.min(DEFECT.x + DEFECT.width, t.rect.x + t.rect.width),
        Math.min(DEFECT.y + DEFECT.height, t.rect.y + t.rect.height),
      ]);
    }
    expect(seen).toBeGreaterThan(0);
    // A tiled package's input.json names its overlap: the same tiles without --tiles.
    const again = scratch('lg-prep-out-');
    await prepareDataset({ spec: InputSpec.parse({ ...s, tiling: { overlap: 16 } }), src, out: again, masks: true });
    expect(readFileSync(path.join(again, 'cls/a.tiles.json'), 'utf8')).toBe(readFileSync(path.join(out, 'cls/a.tiles.json'), 'utf8'));
  });
});
