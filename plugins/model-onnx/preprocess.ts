import sharp from 'sharp';
import type { InputTransform, RawImage, SourceRect } from '../../runtime/contract.js';
import type { InputSpec } from './manifest.js';

/** A rectangle in source-image pixels. */
export type Rect = SourceRect;

/**
 * Maps model-input pixels back to source-image pixels:
 * `src = origin + (input - pad) / scale`, per axis. It is the model-output
 * contract's type (runtime/model-output.ts), so the decoders map boxes with
 * exactly what preprocessing wrote, whichever model plugin ran.
 */
export type Transform = InputTransform;

export { toSourceX, toSourceY } from '../../runtime/contract.js';

/** Pixels at the model's input size, interleaved, in the model's channel count (RGB order for 3 channels). */
export interface InputPixels {
  readonly data: Buffer;
  readonly transform: Transform;
}

/**
 * Crops `region` out of `image`, converts to the model's channel count and
 * resizes it the way the manifest says, all inside libvips. This one function
 * is what both the station and the training-data preparation use, so a model
 * never sees pixels at run time that differ from what it was trained on.
 */
export async function toInputPixels(image: RawImage, spec: InputSpec, region?: Rect): Promise<InputPixels> {
  const r: Rect = region ?? { x: 0, y: 0, width: image.width, height: image.height };
  if (isInputAlready(image, spec, r)) {
    // Already the model's size, channels and order (a 300x300 camera into a 300x300 model): the pipeline below
    // would copy the bytes unchanged, at the cost of a sharp call (~0.2 ms of the main thread, ~0.5 ms of CPU).
    return { data: Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), transform: { originX: 0, originY: 0, scaleX: 1, scaleY: 1, padX: 0, padY: 0, region: r } };
  }
  let img = sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } });
  if (image.colorOrder === 'BGR') img = img.recomb([[0, 0, 1], [0, 1, 0], [1, 0, 0]]);
  if (r.x !== 0 || r.y !== 0 || r.width !== image.width || r.height !== image.height) {
    img = img.extract({ left: r.x, top: r.y, width: r.width, height: r.height });
  }
  img = spec.channels === 1 ? img.toColourspace('b-w') : img.removeAlpha().toColourspace('srgb');
  const W = spec.width;
  const H = spec.height;
  const kernel = spec.kernel;
  const { mode } = spec.resize;
  let transform: Transform;
  if (r.width === W && r.height === H) {
    // Already the model's size: no resampling at all (and bit-exact parity with training data of that size).
    transform = { originX: r.x, originY: r.y, scaleX: 1, scaleY: 1, padX: 0, padY: 0, region: r };
  } else if (mode === 'stretch') {
    img = img.resize({ width: W, height: H, fit: 'fill', kernel });
    transform = { originX: r.x, originY: r.y, scaleX: W / r.width, scaleY: H / r.height, padX: 0, padY: 0, region: r };
  } else if (mode === 'letterbox') {
    const s = Math.min(W / r.width, H / r.height);
    const nw = Math.max(1, Math.round(r.width * s));
    const nh = Math.max(1, Math.round(r.height * s));
    // top-left (PaddleOCR) puts all the padding right and bottom: padX/padY are then 0 and toSourceX/Y need no other case.
    const centred = spec.resize.anchor === 'center';
    const left = centred ? Math.floor((W - nw) / 2) : 0;
    const top = centred ? Math.floor((H - nh) / 2) : 0;
    const pad = spec.resize.pad;
    const bg = { r: pad, g: pad, b: pad, alpha: 1 };
    // Resize and pad are two pipelines: sharp applies extend before resize within one.
    const resized = await img.resize({ width: nw, height: nh, fit: 'fill', kernel }).raw().toBuffer({ resolveWithObject: true });
    img = sharp(resized.data, { raw: { width: nw, height: nh, channels: resized.info.channels } }).extend({ top, bottom: H - nh - top, left, right: W - nw - left, background: bg });
    transform = { originX: r.x, originY: r.y, scaleX: nw / r.width, scaleY: nh / r.height, padX: left, padY: top, region: r };
  } else {
    const s = Math.max(W / r.width, H / r.height);
    const nw = Math.max(W, Math.round(r.width * s));
    const nh = Math.max(H, Math.round(r.height * s));
    const left = Math.floor((nw - W) / 2);
    const top = Math.floor((nh - H) / 2);
    const resized = await img.resize({ width: nw, height: nh, fit: 'fill', kernel }).raw().toBuffer({ resolveWithObject: true });
    img = sharp(resized.data, { raw: { width: nw, height: nh, channels: resized.info.channels } }).extract({ left, top, width: W, height: H });
    transform = { originX: r.x, originY: r.y, scaleX: nw / r.width, scaleY: nh / r.height, padX: -left, padY: -top, region: r };
  }
  // Padding (extend) adds colour channels to a grey image: the channel count is settled last.
  const { data, info } = await img.toColourspace(spec.channels === 1 ? 'b-w' : 'srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.width !== W || info.height !== H || info.channels !== spec.channels) {
    throw new Error(`preprocessing gave ${info.width}x${info.height}x${info.channels}, expected ${W}x${H}x${spec.channels}`);
  }
  return { data, transform };
}

/** The image is the model's input as it stands: whole, at the model's size, in its channels and order. */
function isInputAlready(image: RawImage, spec: InputSpec, r: Rect): boolean {
  const whole = r.x === 0 && r.y === 0 && r.width === image.width && r.height === image.height;
  const order = spec.channels === 1 ? image.colorOrder === 'GRAY' : image.colorOrder === 'RGB';
  return whole && image.width === spec.width && image.height === spec.height && image.channels === spec.channels && order;
}

/**
 * Per channel, a 256-entry table of `(v * scale - mean) / std`: the float
 * conversion is then one lookup per value instead of arithmetic.
 */
export function normaliseTables(spec: InputSpec): Float32Array[] {
  return Array.from({ length: spec.channels }, (_, c) => {
    const mean = spec.mean[spec.mean.length === 1 ? 0 : c]!;
    const std = spec.std[spec.std.length === 1 ? 0 : c]!;
    const t = new Float32Array(256);
    for (let v = 0; v < 256; v++) t[v] = (v * spec.scale - mean) / std;
    return t;
  });
}

/**
 * Interleaved RGB/grey bytes -> float32 in the model's layout and channel
 * order, written into `out` at `offset` (so a batch of tiles shares one
 * buffer). The one per-value JS loop: sharp cannot emit planar floats.
 */
export function writeTensor(pixels: Uint8Array, spec: InputSpec, tables: readonly Float32Array[], out: Float32Array, offset = 0): void {
  const n = spec.width * spec.height;
  const C = spec.channels;
  if (C === 1) {
    const t = tables[0]!;
    for (let i = 0; i < n; i++) out[offset + i] = t[pixels[i]!]!;
    return;
  }
  // Source is RGB; channel k of the tensor takes source channel src[k].
  const src = spec.color === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  if (spec.layout === 'NCHW') {
    for (let k = 0; k < 3; k++) {
      const t = tables[k]!;
      const s = src[k]!;
      const base = offset + k * n;
      for (let i = 0, p = s; i < n; i++, p += 3) out[base + i] = t[pixels[p]!]!;
    }
  } else {
    for (let i = 0, p = 0; i < n; i++, p += 3) {
      for (let k = 0; k < 3; k++) out[offset + i * 3 + k] = tables[k]![pixels[p + src[k]!]!]!;
    }
  }
}

/** Tiles of `tile` size covering `region` with at least `overlap` pixels shared between neighbours. */
export function tileRects(region: Rect, tileW: number, tileH: number, overlap: number): Rect[] {
  const starts = (length: number, size: number): number[] => {
    if (length <= size) return [0];
    const count = Math.ceil((length - overlap) / (size - overlap));
    const step = (length - size) / (count - 1);
    return Array.from({ length: count }, (_, i) => Math.round(i * step));
  };
  const w = Math.min(tileW, region.width);
  const h = Math.min(tileH, region.height);
  const out: Rect[] = [];
  for (const y of starts(region.height, h)) for (const x of starts(region.width, w)) out.push({ x: region.x + x, y: region.y + y, width: w, height: h });
  return out;
}
