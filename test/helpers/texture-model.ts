import sharp from 'sharp';
import { node, onnxFile } from './onnx-build.js';

/*
 * Issue 12's scenario in miniature: a classifier "trained" with bilinear
 * resizing, and the outputs its training framework would give.
 *
 * The model is a real ONNX graph: 64x64 grey, 0-1 values (scale 1/255, mean
 * 0, std 1: a ToTensor without Normalize, which is what a draft assumes) ->
 * 3x3 Laplacian -> |.| -> mean = edge strength -> two logits -> Softmax ->
 * `probs`. Edge strength is what a resampling kernel changes most (lanczos3
 * sharpens, bilinear smooths), so the graph is small but as kernel-sensitive
 * as a real texture classifier.
 *
 * The reference side is independent of linegate's preprocessing and of
 * onnxruntime: PIL's Image.resize(BILINEAR) (what torchvision's Resize runs on
 * PIL images), re-implemented from Pillow's ImagingResample, then the same
 * arithmetic as the graph in plain JS. Only the JPEG decode is shared.
 */

export const SIZE = 64;
const LAPLACIAN = [0, -1, 0, -1, 4, -1, 0, -1, 0];
/** Logit difference 200 x (edge strength - 0.0322): probabilities mid-range on the magnetic-tile fixtures, none within 0.06 of 0.5. */
const W = [100, -100];
const B = [-3.22, 3.22];
export const LABELS = ['rough', 'smooth'];

/** Writes the texture classifier's ONNX file; its output `probs` is computed by a Softmax. */
export function textureClassifier(dir: string, name: string): string {
  return onnxFile(dir, name, {
    inputs: [['image', [1, 1, SIZE, SIZE]]],
    outputs: [['probs', [1, 2]]],
    initializers: [
      { name: 'laplacian', dims: [1, 1, 3, 3], values: LAPLACIAN },
      { name: 'w', dims: [1, 2], values: W },
      { name: 'b', dims: [2], values: B },
    ],
    nodes: [
      node('Conv', ['image', 'laplacian'], ['edges'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
      node('Abs', ['edges'], ['magnitude']),
      node('ReduceMean', ['magnitude'], ['strength'], { axes: [2, 3], keepdims: 0 }),
      node('MatMul', ['strength', 'w'], ['scaled']),
      node('Add', ['scaled', 'b'], ['logits']),
      node('Softmax', ['logits'], ['probs']),
    ],
  });
}

/** Pillow's resampling coefficients for one axis, bilinear (triangle) filter, antialiased when shrinking. */
function coefficients(inSize: number, outSize: number): { min: number; weights: number[] }[] {
  const scale = inSize / outSize;
  const filterScale = Math.max(1, scale);
  const support = filterScale; // the bilinear filter's support is 1, widened by the shrink factor
  return Array.from({ length: outSize }, (_, x) => {
    const centre = (x + 0.5) * scale;
    const min = Math.max(Math.trunc(centre - support + 0.5), 0);
    const max = Math.min(Math.trunc(centre + support + 0.5), inSize);
    const raw: number[] = [];
    for (let i = min; i < max; i++) raw.push(Math.max(0, 1 - Math.abs((i - centre + 0.5) / filterScale)));
    const sum = raw.reduce((a, b) => a + b, 0);
    return { min, weights: raw.map((k) => k / sum) };
  });
}

const clampByte = (v: number): number => Math.min(255, Math.max(0, Math.round(v)));

/** PIL `Image.resize((w, h), BILINEAR)` of a grey image: horizontal pass, then vertical, rounding to 8 bits after each as Pillow does. */
export function pilBilinear(src: Uint8Array, w: number, h: number, outW: number, outH: number): Uint8Array {
  const cx = coefficients(w, outW);
  const cy = coefficients(h, outH);
  const tmp = new Uint8Array(outW * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < outW; x++) {
      const { min, weights } = cx[x]!;
      let s = 0;
      for (let i = 0; i < weights.length; i++) s += src[y * w + min + i]! * weights[i]!;
      tmp[y * outW + x] = clampByte(s);
    }
  }
  const out = new Uint8Array(outW * outH);
  for (let y = 0; y < outH; y++) {
    const { min, weights } = cy[y]!;
    for (let x = 0; x < outW; x++) {
      let s = 0;
      for (let i = 0; i < weights.length; i++) s += tmp[(min + i) * outW + x]! * weights[i]!;
      out[y * outW + x] = clampByte(s);
    }
  }
  return out;
}

/** The classifier's probabilities for 64x64 grey pixels, in plain JS (float64: the float32 graph differs by ~1e-7). */
export function textureProbs(px: Uint8Array): number[] {
  const at = (x: number, y: number): number => (x < 0 || y < 0 || x >= SIZE || y >= SIZE ? 0 : px[y * SIZE + x]! / 255);
  let sum = 0;
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      let e = 0;
      for (let k = 0; k < 9; k++) e += LAPLACIAN[k]! * at(x + (k % 3) - 1, y + Math.floor(k / 3) - 1);
      sum += Math.abs(e);
    }
  }
  const strength = sum / (SIZE * SIZE);
  const logits = W.map((w, i) => strength * w + B[i]!);
  const m = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** What the training framework gives for an image file: decode to grey, PIL bilinear to 64x64, the model. */
export async function referenceProbs(file: string): Promise<number[]> {
  const { data, info } = await sharp(file).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  return textureProbs(pilBilinear(data, info.width, info.height, SIZE, SIZE));
}
