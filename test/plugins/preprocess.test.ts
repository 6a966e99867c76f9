import { describe, expect, it } from 'vitest';
import type { RawImage } from '../../runtime/contract.js';
import { InputSpec } from '../../plugins/model-onnx/manifest.js';
import { boxToSource } from '../../plugins/model-onnx/meta.js';
import { normaliseTables, tileRects, toInputPixels, writeTensor, type Rect } from '../../plugins/model-onnx/preprocess.js';
import { connectedComponents } from '../../plugins/lib/regions.js';

/** A black grey image with one white rectangle. */
function canvas(width: number, height: number, rect: Rect): RawImage {
  const data = new Uint8Array(width * height);
  for (let y = rect.y; y < rect.y + rect.height; y++) data.fill(255, y * width + rect.x, y * width + rect.x + rect.width);
  return { kind: 'raw', data, width, height, channels: 1, colorOrder: 'GRAY' };
}

const spec = (over: Record<string, unknown>): InputSpec =>
  InputSpec.parse({ name: 'input', width: 64, height: 64, channels: 1, color: 'GRAY', resize: { mode: 'stretch' }, kernel: 'nearest', ...over });

/** Where the white rectangle ends up in model pixels, mapped back to the source through the transform. */
async function roundTrip(image: RawImage, s: InputSpec, region?: Rect): Promise<{ x: number; y: number; w: number; h: number }> {
  const px = await toInputPixels(image, s, region);
  const blobs = connectedComponents(Uint8Array.from(px.data, (v) => (v >= 128 ? 1 : 0)), px.data, s.width, s.height);
  expect(blobs).toHaveLength(1);
  const b = blobs[0]!;
  return boxToSource(px.transform, b.x0, b.y0, b.x1 + 1, b.y1 + 1)!;
}

describe('model preprocessing geometry', () => {
  const rect = { x: 60, y: 20, width: 80, height: 40 }; // inside the centre crop too
  const image = canvas(200, 100, rect);

  it.each([
    ['stretch', { mode: 'stretch' }],
    ['letterbox', { mode: 'letterbox', pad: 0 }],
    ['center-crop', { mode: 'center-crop' }],
  ])('maps a rectangle through %s and back to where it was on the source', async (_, resize) => {
    const back = await roundTrip(image, spec({ resize }));
    // within one model pixel, in source pixels (200 px onto 64 is 3.125 source px per model px)
    const tol = 200 / 64 + 0.01;
    expect(Math.abs(back.x - rect.x)).toBeLessThanOrEqual(tol);
    expect(Math.abs(back.y - rect.y)).toBeLessThanOrEqual(tol);
    expect(Math.abs(back.w - rect.width)).toBeLessThanOrEqual(tol);
    expect(Math.abs(back.h - rect.height)).toBeLessThanOrEqual(tol);
  });

  it('letterboxes a wide image into the vertical middle with the pad value around it', async () => {
    const px = await toInputPixels(canvas(200, 100, { x: 0, y: 0, width: 0, height: 0 }), spec({ resize: { mode: 'letterbox', pad: 114 } }));
    expect(px.transform).toMatchObject({ padX: 0, padY: 16, scaleX: 0.32, scaleY: 0.32 });
    expect(px.data[0]).toBe(114); // top padding row
    expect(px.data[32 * 64]).toBe(0); // image content in the middle
    expect(px.data[63 * 64]).toBe(114); // bottom padding row
  });

  it('crops an ROI before resizing and reports boxes in full-image pixels', async () => {
    const back = await roundTrip(image, spec({ resize: { mode: 'stretch' } }), { x: 30, y: 10, width: 120, height: 60 });
    expect(Math.abs(back.x - 60)).toBeLessThanOrEqual(120 / 64 + 0.01);
    expect(Math.abs(back.y - 20)).toBeLessThanOrEqual(60 / 64 + 0.01);
  });

  it('does not resample an image that already has the model size', async () => {
    const img = canvas(64, 64, { x: 3, y: 5, width: 7, height: 11 });
    const px = await toInputPixels(img, spec({ kernel: 'lanczos3' }));
    expect(Buffer.compare(px.data, Buffer.from(img.data))).toBe(0);
    expect(px.transform).toMatchObject({ scaleX: 1, scaleY: 1, padX: 0, padY: 0 });
  });

  it('tiles a large region into model-size tiles that cover it with overlap', () => {
    const tiles = tileRects({ x: 0, y: 0, width: 1000, height: 300 }, 256, 256, 32);
    expect(tiles.every((t) => t.width === 256 && t.height === 256)).toBe(true);
    expect(Math.max(...tiles.map((t) => t.x + t.width))).toBe(1000);
    expect(Math.max(...tiles.map((t) => t.y + t.height))).toBe(300);
    const xs = [...new Set(tiles.map((t) => t.x))].sort((a, b) => a - b);
    for (let i = 1; i < xs.length; i++) expect(xs[i - 1]! + 256 - xs[i]!).toBeGreaterThanOrEqual(32);
    expect(tileRects({ x: 5, y: 5, width: 100, height: 100 }, 256, 256, 32)).toEqual([{ x: 5, y: 5, width: 100, height: 100 }]);
  });
});

describe('tensor layout and normalisation', () => {
  const rgb = Uint8Array.from([10, 20, 30, 40, 50, 60]); // two pixels
  const s3 = (over: Record<string, unknown>): InputSpec =>
    InputSpec.parse({ name: 'x', width: 2, height: 1, channels: 3, color: 'RGB', resize: { mode: 'stretch' }, scale: 1, mean: [0], std: [1], ...over });

  it('writes planar NCHW in RGB order', () => {
    const s = s3({});
    const out = new Float32Array(6);
    writeTensor(rgb, s, normaliseTables(s), out);
    expect([...out]).toEqual([10, 40, 20, 50, 30, 60]);
  });

  it('swaps to BGR and writes interleaved NHWC when the model says so', () => {
    const s = s3({ color: 'BGR', layout: 'NHWC' });
    const out = new Float32Array(6);
    writeTensor(rgb, s, normaliseTables(s), out);
    expect([...out]).toEqual([30, 20, 10, 60, 50, 40]);
  });

  it('applies scale, then per-channel mean and std, at the given batch offset', () => {
    const s = s3({ scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    const out = new Float32Array(12);
    writeTensor(rgb, s, normaliseTables(s), out, 6);
    expect(out[6]).toBeCloseTo((10 / 255 - 0.485) / 0.229, 5);
    expect(out[6 + 2 * 2 + 1]).toBeCloseTo((60 / 255 - 0.406) / 0.225, 5);
    expect(out[0]).toBe(0);
  });
});
