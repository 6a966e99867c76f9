import sharp from 'sharp';
import { z } from 'zod';
import { definePlugin, type Findings } from '../../runtime/contract.js';
import type { Defect } from '../../runtime/result.js';

const Config = z
  .object({
    minBrightness: z.number().min(0).max(255).default(30).describe('mean grey level below which the image is too dark'),
    maxBrightness: z.number().min(0).max(255).default(225).describe('mean grey level above which it is washed out'),
    minContrast: z.number().min(0).max(128).default(8).describe('grey-level standard deviation below which the scene is flat'),
    minSharpness: z.number().min(0).default(3).describe('Laplacian standard deviation below which the image is out of focus'),
    analysisSize: z.number().int().min(32).max(4096).default(512).describe('longest side the image is reduced to before measuring'),
  })
  .strict();

const LAPLACIAN = { width: 3, height: 3, kernel: [0, 1, 0, 1, -4, 1, 0, 1, 0], offset: 128 };

/** How far `value` is past `limit`, as a severity in [0, 1]. */
const below = (value: number, limit: number): number => (limit <= 0 || value >= limit ? 0 : Math.min(1, (limit - value) / limit));

/**
 * Image-validity gate: exposure, contrast and focus, measured before any model
 * trusts the image (a fouled lens, a dead light or a camera fault would
 * otherwise be inspected as if it were a part).
 */
export const imageQuality = definePlugin({
  manifest: {
    id: 'core/image-quality@1',
    kind: 'postprocess',
    description: 'Measures exposure, contrast and focus; reports too-dark, too-bright, low-contrast and blurred images as findings.',
    config: Config,
    accepts: [{ type: 'image/raw' }],
    produces: [{ type: 'findings' }],
  },
  async init(config) {
    return {
      async run(part, ctx) {
        ctx.signal.throwIfAborted();
        const img = part.image;
        if (img === undefined) throw new Error('no decoded image: put core/image-decode@1 before this step');
        const grey = sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } })
          .toColourspace('b-w')
          .resize({ width: config.analysisSize, height: config.analysisSize, fit: 'inside', withoutEnlargement: true });
        const buf = await grey.raw().toBuffer({ resolveWithObject: true });
        const flat = sharp(buf.data, { raw: { width: buf.info.width, height: buf.info.height, channels: 1 } });
        const [tone, edges] = await Promise.all([flat.clone().stats(), flat.clone().convolve(LAPLACIAN).stats()]);
        const brightness = tone.channels[0]!.mean;
        const contrast = tone.channels[0]!.stdev;
        const sharpness = edges.channels[0]!.stdev;
        const severities: Record<string, number> = {
          'too-dark': below(brightness, config.minBrightness),
          'too-bright': below(255 - brightness, 255 - config.maxBrightness),
          'low-contrast': below(contrast, config.minContrast),
          blurred: below(sharpness, config.minSharpness),
        };
        const defects: Defect[] = Object.entries(severities)
          .filter(([, s]) => s > 0)
          .map(([label, score]) => ({ label, score }));
        const findings: Findings = {
          defects,
          scores: { brightness: brightness / 255, contrast: Math.min(1, contrast / 128), sharpness: Math.min(1, sharpness / 64), ...severities },
        };
        return { findings };
      },
    };
  },
});
