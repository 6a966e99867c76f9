import { describe, expect, it } from 'vitest';
import { toSourceX, toSourceY, type RawImage } from '../../runtime/contract.js';
import { InputSpec } from '../../plugins/model-onnx/manifest.js';
import { toInputPixels, type Rect } from '../../plugins/model-onnx/preprocess.js';

/** A black grey image with one white rectangle. */
function canvas(width: number, height: number, rect: Rect): RawImage {
  const data = new Uint8Array(width * height);
  for (let y = rect.y; y < rect.y + rect.height; y++) data.fill(255, y * width + rect.x, y * width + rect.x + rect.width);
  return { kind: 'raw', data, width, height, channels: 1, colorOrder: 'GRAY' };
}

const spec = (resize: Record<string, unknown>): InputSpec => InputSpec.parse({ name: 'input', width: 64, height: 64, channels: 1, color: 'GRAY', resize, kernel: 'nearest' });

/** The bounding box of the white (>= 128) pixels of the model input, as [x1, y1, x2, y2) in model pixels. */
function whiteBox(data: Buffer, w: number, h: number): { x1: number; y1: number; x2: number; y2: number } {
  let x1 = w;
  let y1 = h;
  let x2 = 0;
  let y2 = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (data[y * w + x]! < 128) continue;
      x1 = Math.min(x1, x);
      y1 = Math.min(y1, y);
      x2 = Math.max(x2, x + 1);
      y2 = Math.max(y2, y + 1);
    }
  }
  return { x1, y1, x2, y2 };
}

describe('letterbox anchoring', () => {
  it('keeps centring when model.json names no anchor (the behaviour before anchors existed)', () => {
    expect(spec({ mode: 'letterbox' }).resize).toEqual({ mode: 'letterbox', pad: 114, anchor: 'center' });
  });

  it('top-left puts the whole image at the origin and all padding right and bottom (PaddleOCR)', async () => {
    const wide = await toInputPixels(canvas(200, 100, { x: 0, y: 0, width: 0, height: 0 }), spec({ mode: 'letterbox', pad: 114, anchor: 'top-left' }));
    expect(wide.transform).toMatchObject({ padX: 0, padY: 0, scaleX: 0.32, scaleY: 0.32 });
    expect(wide.data[0]).toBe(0); // image content in the top row
    expect(wide.data[31 * 64 + 63]).toBe(0); // last content row, right edge: the image spans the full width
    expect(wide.data[32 * 64]).toBe(114); // padding starts right below the image
    expect(wide.data[63 * 64 + 63]).toBe(114);

    const tall = await toInputPixels(canvas(100, 200, { x: 0, y: 0, width: 0, height: 0 }), spec({ mode: 'letterbox', pad: 7, anchor: 'top-left' }));
    expect(tall.transform).toMatchObject({ padX: 0, padY: 0, scaleX: 0.32, scaleY: 0.32 });
    expect(tall.data[63 * 64 + 31]).toBe(0); // content down the left half
    expect(tall.data[32]).toBe(7); // padding on the right
  });

  it('centre splits the padding over both sides', async () => {
    const wide = await toInputPixels(canvas(200, 100, { x: 0, y: 0, width: 0, height: 0 }), spec({ mode: 'letterbox', pad: 114, anchor: 'center' }));
    expect(wide.transform).toMatchObject({ padX: 0, padY: 16 });
    expect(wide.data[0]).toBe(114);
    expect(wide.data[32 * 64]).toBe(0);
  });

  describe.each(['center', 'top-left'] as const)('anchor %s', (anchor) => {
    it.each([
      ['a wide image', 200, 100, { x: 60, y: 20, width: 80, height: 40 }],
      ['a tall image', 120, 300, { x: 30, y: 210, width: 45, height: 60 }],
    ])('maps a box on %s into the model input and back to the same source pixels', async (_, w, h, box) => {
      const px = await toInputPixels(canvas(w, h, box), spec({ mode: 'letterbox', pad: 0, anchor }));
      const t = px.transform;
      if (anchor === 'top-left') expect([t.padX, t.padY]).toEqual([0, 0]);
      // Forward: where the box must land in model pixels, by the transform's own definition.
      const inX = (x: number): number => (x - t.originX) * t.scaleX + t.padX;
      const inY = (y: number): number => (y - t.originY) * t.scaleY + t.padY;
      const seen = whiteBox(px.data, 64, 64);
      expect(Math.abs(seen.x1 - inX(box.x))).toBeLessThanOrEqual(1);
      expect(Math.abs(seen.y1 - inY(box.y))).toBeLessThanOrEqual(1);
      expect(Math.abs(seen.x2 - inX(box.x + box.width))).toBeLessThanOrEqual(1);
      expect(Math.abs(seen.y2 - inY(box.y + box.height))).toBeLessThanOrEqual(1);
      // Back: the box found in the model input lands on the source box, within one model pixel.
      const tol = 1 / t.scaleX + 0.01;
      expect(Math.abs(toSourceX(t, seen.x1) - box.x)).toBeLessThanOrEqual(tol);
      expect(Math.abs(toSourceY(t, seen.y1) - box.y)).toBeLessThanOrEqual(tol);
      expect(Math.abs(toSourceX(t, seen.x2) - (box.x + box.width))).toBeLessThanOrEqual(tol);
      expect(Math.abs(toSourceY(t, seen.y2) - (box.y + box.height))).toBeLessThanOrEqual(tol);
      // And exactly, for the transform's own arithmetic.
      expect(toSourceX(t, inX(box.x))).toBeCloseTo(box.x, 9);
      expect(toSourceY(t, inY(box.y + box.height))).toBeCloseTo(box.y + box.height, 9);
    });
  });
});
