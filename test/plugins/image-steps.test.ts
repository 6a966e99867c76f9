import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { Part, StageInstance } from '../../runtime/contract.js';
import { imageDecode } from '../../plugins/preprocess-image-decode/index.js';
import { imageQuality, measure } from '../../plugins/postprocess-image-quality/index.js';
import { thresholdRules } from '../../plugins/decision-threshold-rules/index.js';
import { FIXTURE, contextFor, frameOf, rawOf } from '../helpers/samples.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const ctx = () => contextFor(new AbortController().signal);
const decode = (config: Record<string, unknown> = {}): Promise<StageInstance> => imageDecode.init(imageDecode.manifest.config.parse(config), ctx());

describe('core/image-decode@1', () => {
  it('decodes JPEG, PNG, TIFF and WebP of the same picture to the same size', async () => {
    const stage = await decode();
    const jpeg = readFileSync(FIXTURE);
    for (const format of ['png', 'tiff', 'webp'] as const) {
      const data = await sharp(jpeg)[format]().toBuffer();
      const out = await stage.run({ frame: { ...frameOf(), image: { kind: 'encoded', data } } }, ctx());
      expect(out.image).toMatchObject({ width: 300, height: 300, channels: 3, colorOrder: 'RGB' });
    }
  });

  it('gives grey pixels when asked', async () => {
    const out = await (await decode({ color: 'GRAY' })).run({ frame: frameOf() }, ctx());
    expect(out.image).toMatchObject({ channels: 1, colorOrder: 'GRAY' });
    expect(out.image!.data.length).toBe(300 * 300);
  });

  it('refuses a truncated JPEG with LG_ERR_IMAGE_DECODE naming the file', async () => {
    const data = readFileSync(FIXTURE).subarray(0, 2000);
    const run = (await decode()).run({ frame: { ...frameOf(), ref: '/cam/part-9.jpg', image: { kind: 'encoded', data } } }, ctx());
    await expect(run).rejects.toMatchObject({ code: 'LG_ERR_IMAGE_DECODE', rejectCode: 906 });
    await expect(run).rejects.toThrow('/cam/part-9.jpg');
  });

  it('refuses bytes that are not an image, and raw pixels whose size does not match their shape', async () => {
    const stage = await decode();
    await expect(stage.run({ frame: { ...frameOf(), image: { kind: 'encoded', data: Buffer.from('not an image') } } }, ctx())).rejects.toMatchObject({ code: 'LG_ERR_IMAGE_DECODE' });
    const raw = { kind: 'raw' as const, data: new Uint8Array(10), width: 4, height: 4, channels: 3 as const, colorOrder: 'RGB' as const };
    await expect(stage.run({ frame: { ...frameOf(), image: raw } }, ctx())).rejects.toMatchObject({ code: 'LG_ERR_IMAGE_FORMAT' });
  });

  it('refuses a 0-byte file with LG_ERR_IMAGE_DECODE (906) saying "0 bytes", in colour and in grey', async () => {
    for (const color of ['RGB', 'GRAY']) {
      const run = (await decode({ color })).run({ frame: { ...frameOf(), ref: '/cam/empty.png', image: { kind: 'encoded', data: Buffer.alloc(0) } } }, ctx());
      await expect(run).rejects.toMatchObject({ code: 'LG_ERR_IMAGE_DECODE', rejectCode: 906, message: expect.stringContaining('0 bytes') });
      await expect(run).rejects.toThrow('/cam/empty.png');
    }
  });

  it('refuses a raw frame 0 pixels wide or high with LG_ERR_IMAGE_DECODE, whether or not it needs converting', async () => {
    const empty = (width: number, height: number, channels: 1 | 3, colorOrder: 'GRAY' | 'BGR') => ({ kind: 'raw' as const, data: new Uint8Array(0), width, height, channels, colorOrder });
    for (const color of ['RGB', 'GRAY']) {
      const stage = await decode({ color });
      for (const image of [empty(0, 480, 1, 'GRAY'), empty(640, 0, 3, 'BGR'), empty(0, 0, 1, 'GRAY')]) {
        await expect(stage.run({ frame: { ...frameOf(), image } }, ctx())).rejects.toMatchObject({ code: 'LG_ERR_IMAGE_DECODE', rejectCode: 906, message: expect.stringContaining(`${image.width}x${image.height}`) });
      }
    }
  });

  it('swaps BGR raw frames to RGB', async () => {
    const bgr = { kind: 'raw' as const, data: Uint8Array.from([10, 20, 30]), width: 1, height: 1, channels: 3 as const, colorOrder: 'BGR' as const };
    const out = await (await decode()).run({ frame: { ...frameOf(), image: bgr } }, ctx());
    expect([...out.image!.data]).toEqual([30, 20, 10]);
  });
});

describe('core/image-quality@1', () => {
  const quality = () => imageQuality.init(imageQuality.manifest.config.parse({}), ctx());

  it('passes a sharp, well-exposed casting photo and flags the same photo blurred or darkened', async () => {
    const stage = await quality();
    const good = await stage.run({ frame: frameOf(), image: await rawOf() }, ctx());
    expect(good.findings!.defects).toEqual([]);
    const blurredFile = await sharp(FIXTURE).blur(6).jpeg().toBuffer();
    const blurred = await stage.run({ frame: frameOf(), image: await rawOf(blurredFile) }, ctx());
    expect(blurred.findings!.defects.map((d) => d.label)).toContain('blurred');
    const darkFile = await sharp(FIXTURE).linear(0.1, 0).jpeg().toBuffer();
    const dark = await stage.run({ frame: frameOf(), image: await rawOf(darkFile) }, ctx());
    expect(dark.findings!.defects.map((d) => d.label)).toContain('too-dark');
  });

  it('measures mean, contrast and Laplacian spread exactly on a known image', () => {
    // a 3x3 image with one bright centre: the only interior Laplacian is -4*255
    const px = Uint8Array.from([0, 0, 0, 0, 255, 0, 0, 0, 0]);
    const m = measure(px, 3, 3);
    expect(m.mean).toBeCloseTo(255 / 9, 6);
    expect(m.laplacianStdev).toBe(0);
    expect(m.stdev).toBeCloseTo(Math.sqrt(255 ** 2 / 9 - (255 / 9) ** 2), 6);
  });
});

describe('core/threshold-rules@1', () => {
  const rules = (r: unknown[]) => thresholdRules.init(thresholdRules.manifest.config.parse({ rules: r }), ctx());
  const part = (defects: { label: string; score: number }[]): Part => ({ frame: frameOf(), findings: { defects, scores: {} } });

  it('passes a part no rule fires on, with reject code 0', async () => {
    const d = (await (await rules([{ label: 'crack', rejectCode: 3 }])).run(part([{ label: 'crack', score: 0.49 }]), ctx())).decision!;
    expect(d).toMatchObject({ verdict: 'pass', rejectCode: 0, reasons: [] });
  });

  it("fails with the first firing rule's code, lists every fired rule, and marks the defects", async () => {
    const stage = await rules([
      { label: 'scratch', minScore: 0.3, maxCount: 1, rejectCode: 5 },
      { label: 'crack', rejectCode: 3 },
      { label: '*', minScore: 0.95, rejectCode: 9 },
    ]);
    const d = (await stage.run(part([{ label: 'crack', score: 0.8 }, { label: 'scratch', score: 0.4 }, { label: 'scratch', score: 0.35 }]), ctx())).decision!;
    expect(d.verdict).toBe('fail');
    expect(d.rejectCode).toBe(5);
    expect(d.reasons.map((r) => r.code)).toEqual(['reject-scratch', 'reject-crack']);
    expect(d.defects.map((x) => x.rule)).toEqual(['reject-crack', 'reject-scratch', 'reject-scratch']);
  });

  it('refuses two rules with the same id', () => {
    const r = thresholdRules.manifest.config.safeParse({ rules: [{ label: 'a', rejectCode: 1 }, { label: 'a', rejectCode: 2 }] });
    expect(r.success).toBe(false);
  });
});

describe('core/image-decode@1 on BMP (which libvips cannot read)', () => {
  const dir = path.resolve(import.meta.dirname, '../cases/bmp');
  const cases: [string, string, 'RGB' | 'GRAY'][] = [
    ['rgb24.bmp', 'expected-rgb.png', 'RGB'],
    ['rgba32.bmp', 'expected-rgb.png', 'RGB'],
    ['gray8.bmp', 'expected-gray.png', 'GRAY'],
    ['palette8.bmp', 'expected-palette.png', 'RGB'],
    ['mono1.bmp', 'expected-mono.png', 'GRAY'],
  ];

  it.each(cases)('decodes %s to the pixels of %s', async (bmp, png, color) => {
    const out = await (await decode({ color })).run({ frame: { ...frameOf(), image: { kind: 'encoded', data: readFileSync(path.join(dir, bmp)) } } }, ctx());
    const want = await sharp(path.join(dir, png)).toColourspace(color === 'GRAY' ? 'b-w' : 'srgb').raw().toBuffer({ resolveWithObject: true });
    expect([out.image!.width, out.image!.height]).toEqual([23, 17]);
    expect(Buffer.compare(Buffer.from(out.image!.data), want.data)).toBe(0);
  });

  it('refuses a truncated BMP with LG_ERR_IMAGE_DECODE saying so', async () => {
    const data = readFileSync(path.join(dir, 'rgb24.bmp')).subarray(0, 600);
    await expect((await decode()).run({ frame: { ...frameOf(), image: { kind: 'encoded', data } } }, ctx())).rejects.toMatchObject({ code: 'LG_ERR_IMAGE_DECODE', message: expect.stringContaining('truncated') });
  });
});
