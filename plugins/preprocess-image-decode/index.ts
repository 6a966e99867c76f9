import sharp from 'sharp';
import { z } from 'zod';
import { definePlugin, type EncodedImage, type RawImage } from '../../runtime/contract.js';
import { InstanceState } from '../lib/instance.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import { decodeBmp, isBmp } from './bmp.js';

const Config = z
  .object({
    color: z.enum(['RGB', 'GRAY']).default('RGB').describe('channels the decoded image is given in'),
    maxPixels: z.number().int().positive().default(100_000_000).describe('refuse larger images (decompression bombs)'),
    autoOrient: z.boolean().default(true).describe('apply the EXIF orientation'),
  })
  .strict();

/**
 * Why a frame holds no image at all, or undefined. Checked first: an empty raw
 * frame whose channels already fit would otherwise pass straight on to the
 * model, and sharp's "Input Buffer is empty" does not tell an operator that
 * the camera or FTP upload wrote an empty file.
 */
function emptiness(image: EncodedImage | RawImage): string | undefined {
  if (image.kind === 'encoded') return image.data.length === 0 ? '0 bytes: the file is empty' : undefined;
  const { width, height } = image;
  return Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0 ? undefined : `raw frame of ${width}x${height} pixels holds no image`;
}

export const imageDecode = definePlugin({
  manifest: {
    id: 'core/image-decode@1',
    kind: 'preprocess',
    description: 'Decodes JPEG, PNG, BMP, TIFF or WebP (or takes raw pixels) into 8-bit RGB or grey pixels; a corrupt image is a coded error.',
    config: Config,
    accepts: [{ type: 'image/encoded' }, { type: 'image/raw' }],
    produces: [{ type: 'image/raw' }],
  },
  async init(config, ctx) {
    // libvips threads per image: the frame loop already runs parts in parallel, so one decode must not take every core.
    sharp.concurrency(1);
    const channels = config.color === 'GRAY' ? 1 : 3;
    const state = new InstanceState(ctx.step, 'core/image-decode@1');
    return {
      close: () => state.close(),
      async run(part, ctx) {
        state.assertOpen();
        ctx.signal.throwIfAborted();
        const frameImage = part.frame.image;
        const empty = emptiness(frameImage);
        if (empty !== undefined) throw new LinegateError('LG_ERR_IMAGE_DECODE', [part.frame.ref, empty], { step: ctx.step });
        let src = frameImage;
        if (frameImage.kind === 'encoded' && isBmp(frameImage.data)) {
          try {
            src = decodeBmp(frameImage.data);
          } catch (e) {
            throw new LinegateError('LG_ERR_IMAGE_DECODE', [part.frame.ref, messageOf(e)], { step: ctx.step, cause: e });
          }
        }
        if (src.kind === 'raw' && src.data.length !== src.width * src.height * src.channels) {
          throw new LinegateError('LG_ERR_IMAGE_FORMAT', [part.frame.ref, `${src.data.length} bytes for ${src.width}x${src.height}x${src.channels}`], { step: ctx.step });
        }
        if (src.kind === 'raw' && src.channels === channels && (src.colorOrder === config.color || channels === 1)) return { image: src };
        try {
          // Inside the try: sharp's constructor itself throws on input it cannot take.
          const input =
            src.kind === 'raw'
              ? sharp(src.data, { raw: { width: src.width, height: src.height, channels: src.channels }, limitInputPixels: config.maxPixels })
              : sharp(src.data, { failOn: 'error', limitInputPixels: config.maxPixels, sequentialRead: true });
          // A BGR raw frame is swapped to RGB first: sharp treats 3-channel raw input as RGB.
          const pipeline = (src.kind === 'raw' && src.colorOrder === 'BGR' ? input.recomb([[0, 0, 1], [0, 1, 0], [1, 0, 0]]) : input);
          const oriented = config.autoOrient && src.kind === 'encoded' ? pipeline.rotate() : pipeline;
          const shaped = channels === 1 ? oriented.toColourspace('b-w') : oriented.removeAlpha().toColourspace('srgb');
          const { data, info } = await shaped.raw().toBuffer({ resolveWithObject: true });
          if (info.channels !== channels) throw new Error(`decoded to ${info.channels} channels, expected ${channels}`);
          const image: RawImage = { kind: 'raw', data, width: info.width, height: info.height, channels, colorOrder: config.color };
          return { image };
        } catch (e) {
          throw new LinegateError('LG_ERR_IMAGE_DECODE', [part.frame.ref, messageOf(e)], { step: ctx.step, cause: e });
        }
      },
    };
  },
});
