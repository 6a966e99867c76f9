import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import type { RawImage } from '../../runtime/contract.js';
import { InputSpec } from '../../plugins/model-onnx/manifest.js';
import { toInputPixels } from '../../plugins/model-onnx/preprocess.js';

const spec = (over: Record<string, unknown>): InputSpec =>
  InputSpec.parse({ name: 'input', width: 32, height: 24, channels: 1, color: 'GRAY', resize: { mode: 'stretch' }, kernel: 'lanczos3', ...over });

function noise(width: number, height: number, channels: 1 | 3, colorOrder: RawImage['colorOrder']): RawImage {
  const data = new Uint8Array(width * height * channels);
  let x = 12345;
  for (let i = 0; i < data.length; i++) data[i] = (x = (x * 1103515245 + 12345) & 0x7fffffff) >> 23;
  return { kind: 'raw', data, width, height, channels, colorOrder };
}

/** What the sharp pipeline gives for the same image: the bytes the pass-through must equal. */
async function throughSharp(image: RawImage, channels: 1 | 3): Promise<Buffer> {
  const img = sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } });
  return (channels === 1 ? img.toColourspace('b-w') : img.removeAlpha().toColourspace('srgb')).raw().toBuffer();
}

describe('model preprocessing of an image already at the model input', () => {
  it.each([
    ['grey', 1, 'GRAY'],
    ['RGB', 3, 'RGB'],
  ] as const)('passes a %s image of the model size through unchanged, bit for bit what sharp would give', async (_, channels, colorOrder) => {
    const image = noise(32, 24, channels, colorOrder);
    const s = spec({ channels, color: channels === 1 ? 'GRAY' : 'RGB' });
    const px = await toInputPixels(image, s);
    expect(Buffer.compare(px.data, await throughSharp(image, channels))).toBe(0);
    expect(px.transform).toEqual({ originX: 0, originY: 0, scaleX: 1, scaleY: 1, padX: 0, padY: 0, region: { x: 0, y: 0, width: 32, height: 24 } });
  });

  it('still swaps a BGR image of the model size to RGB', async () => {
    const image = noise(32, 24, 3, 'BGR');
    const px = await toInputPixels(image, spec({ channels: 3, color: 'RGB' }));
    expect([px.data[0], px.data[1], px.data[2]]).toEqual([image.data[2], image.data[1], image.data[0]]);
  });

  it('still converts an RGB image of the model size for a grey model', async () => {
    const image = noise(32, 24, 3, 'RGB');
    const px = await toInputPixels(image, spec({}));
    expect(px.data.length).toBe(32 * 24);
    expect(Buffer.compare(px.data, await throughSharp(image, 1))).toBe(0);
  });

  it('still crops a region of an image of the model size', async () => {
    const image = noise(32, 24, 1, 'GRAY');
    const px = await toInputPixels(image, spec({ width: 16, height: 12 }), { x: 8, y: 6, width: 16, height: 12 });
    expect(px.data[0]).toBe(image.data[6 * 32 + 8]);
    expect(px.transform.originX).toBe(8);
  });
});
