/**
 * Hostile image files, made byte by byte: what a camera, an FTP upload or a
 * malicious peer can put where linegate reads images.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { pngChunk } from '../../runtime/image-format.js';
import { ROOT } from './harness.js';

export const GOOD_DEFECT = path.join(ROOT, 'fixtures/casting/def_front/cast_def_0_103.jpeg');
export const GOOD_OK = path.join(ROOT, 'fixtures/casting/ok_front/cast_ok_0_1021.jpeg');

/**
 * A well-formed PNG header declaring `width` x `height` 8-bit grey pixels,
 * followed by a few rows of real, valid compressed data: a tiny file whose
 * decoder would have to allocate width x height bytes.
 */
export function pngBomb(width = 100_000, height = 100_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grey
  ihdr[10] = 0;
  ihdr[11] = 0;
  ihdr[12] = 0;
  const rows = deflateSync(Buffer.alloc((width + 1) * 4)); // 4 rows of filter byte + zero pixels
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', rows), pngChunk('IEND', Buffer.alloc(0))]);
}

/** Deterministic noise (a fixed LCG): bytes that are no image at all, behind a JPEG name. */
export function noise(n: number, seed = 7): Buffer {
  const out = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out[i] = x >>> 16;
  }
  return out;
}

/** A real JPEG cut off at `fraction` of its bytes: an upload that died half-way. */
export function truncatedJpeg(fraction = 0.4, file = GOOD_DEFECT): Buffer {
  const full = readFileSync(file);
  return full.subarray(0, Math.floor(full.length * fraction));
}

/** A real photo re-encoded as a 16-bit-per-sample grey PNG. */
export async function png16(file = GOOD_DEFECT): Promise<Buffer> {
  const png = await sharp(file).toColourspace('grey16').png().toBuffer();
  const meta = await sharp(png).metadata();
  if (meta.depth !== 'ushort') throw new Error(`the 16-bit fixture came out ${meta.depth}, not ushort`);
  return png;
}

/** A 1x1 pixel PNG. */
export function png1x1(): Promise<Buffer> {
  return sharp({ create: { width: 1, height: 1, channels: 3, background: '#808080' } })
    .png()
    .toBuffer();
}
