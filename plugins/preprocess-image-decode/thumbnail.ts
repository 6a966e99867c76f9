import sharp from 'sharp';
import { decodeBmp, isBmp } from './bmp.js';

/** A downscaled JPEG of an image, with the size of the image it came from. Plain types: runtime/ calls this without seeing sharp. */
export interface Thumbnail {
  readonly data: Buffer;
  readonly mime: 'image/jpeg';
  readonly width: number;
  readonly height: number;
  /** The source size after EXIF orientation: the pixel space the pipeline's boxes are in (image-decode orients by default). */
  readonly sourceWidth: number;
  readonly sourceHeight: number;
}

/**
 * Downscales an encoded image (JPEG, PNG, TIFF, WebP, or BMP through the same
 * decoder the pipeline uses) so that its longer side is at most `maxSide`,
 * never enlarging. The EXIF orientation is applied, as core/image-decode@1
 * does by default, so overlays in source pixels line up. Throws on an image
 * that cannot be decoded; the caller decides what to show instead.
 */
export async function thumbnail(data: Uint8Array, maxSide: number): Promise<Thumbnail> {
  const input = isBmp(data)
    ? rawInput(decodeBmp(data))
    : sharp(data, { failOn: 'error' }).autoOrient();
  const meta = await input.metadata();
  // autoOrient is the oriented size for encoded input; raw input has no orientation.
  const sourceWidth = meta.autoOrient?.width ?? meta.width;
  const sourceHeight = meta.autoOrient?.height ?? meta.height;
  const { data: jpeg, info } = await input
    .resize({ width: maxSide, height: maxSide, fit: 'inside', withoutEnlargement: true })
    .flatten({ background: '#ffffff' })
    .jpeg({ quality: 80, mozjpeg: false })
    .toBuffer({ resolveWithObject: true });
  return { data: jpeg, mime: 'image/jpeg', width: info.width, height: info.height, sourceWidth, sourceHeight };
}

function rawInput(image: ReturnType<typeof decodeBmp>): ReturnType<typeof sharp> {
  const raw = sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } });
  // sharp reads 3-channel raw as RGB; a BGR bitmap is swapped so the thumbnail's colours are right.
  return image.colorOrder === 'BGR' ? raw.recomb([[0, 0, 1], [0, 1, 0], [1, 0, 0]]) : raw;
}
