/**
 * Writes a data set's images as the model will see them at the station: each
 * image decoded by core/image-decode@1 and resized by the model plugin's own
 * preprocessing, saved as PNG at the model's input size. Training scripts read
 * these files, so training and the line share one preprocessing.
 *
 *   tsx models/tools/prepare-dataset.ts --spec input.json --src DIR --out DIR [--masks] [--tiles OVERLAP]
 *
 * --spec   the `input` object of a model.json (size, channels, resize, kernel)
 * --masks  PNG files whose stem matches a JPEG beside them are masks: resized
 *          with the same geometry, nearest-neighbour, thresholded at 128
 * --tiles  cut each image into model-size tiles as core/onnx-model@1 does with
 *          `tiling: { overlap: OVERLAP }`: `<stem>.t<i>.png` (and `.t<i>.mask.png`)
 *          per tile, and `<stem>.tiles.json` with each tile's source rectangle and
 *          its transform back to source pixels; without it, the spec's own
 *          `tiling` (a tiled package's input.json) decides
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { imageDecode } from '../../plugins/preprocess-image-decode/index.js';
import { InputSpec } from '../../plugins/model-onnx/manifest.js';
import { tileRects, toInputPixels, type Rect } from '../../plugins/model-onnx/preprocess.js';
import type { PluginContext, RawImage } from '../../runtime/contract.js';
import { pino } from 'pino';

export interface PrepareOptions {
  /** The `input` object of a model.json, parsed (InputSpec). */
  readonly spec: InputSpec;
  readonly src: string;
  readonly out: string;
  /** PNGs whose stem matches an image beside them are masks. */
  readonly masks?: boolean;
  /** Cut into model-size tiles with this overlap, as core/onnx-model@1's `tiling`. */
  readonly tilesOverlap?: number;
}

/** Writes every image under `src` (and its mask) as the model sees it; returns the counts. */
export async function prepareDataset(o: PrepareOptions): Promise<{ images: number; masks: number; out: string }> {
  const { spec } = o;
  const src = path.resolve(o.src);
  const out = path.resolve(o.out);
  // A package trained on tiles names its overlap (input.tiling), as the model step reads it.
  const overlap = o.tilesOverlap ?? spec.tiling?.overlap;
  if (overlap !== undefined && !(Number.isInteger(overlap) && overlap >= 0 && overlap < Math.min(spec.width, spec.height))) {
    throw new RangeError(`the tile overlap must be whole pixels, 0 to ${Math.min(spec.width, spec.height) - 1}`);
  }
  // A mask follows the image's geometry exactly (the same anchor), padded with "no defect" and never interpolated.
  const maskSpec: InputSpec = { ...spec, channels: 1, color: 'GRAY', kernel: 'nearest', resize: spec.resize.mode === 'letterbox' ? { ...spec.resize, pad: 0 } : spec.resize };
  const whole = (im: RawImage): Rect => ({ x: 0, y: 0, width: im.width, height: im.height });
  /** The regions the station feeds the model: the whole image, or its tiles. */
  const regionsOf = (im: RawImage): Rect[] => (overlap === undefined ? [whole(im)] : tileRects(whole(im), spec.width, spec.height, overlap));
  const png = async (px: Buffer, channels: 1 | 3): Promise<Buffer> =>
    sharp(px, { raw: { width: spec.width, height: spec.height, channels } }).toColourspace(channels === 1 ? 'b-w' : 'srgb').png().toBuffer();
  /** `<stem>.png`, or `<stem>.t<i>.png` for tile i. */
  const targetOf = (base: string, i: number, suffix: string): string => (overlap === undefined ? `${base}${suffix}.png` : `${base}.t${i}${suffix}.png`);
  const ctx: PluginContext = {
    log: pino({ level: 'silent' }),
    signal: new AbortController().signal,
    stationId: 'prepare',
    step: 'decode',
    timing: { cycleBudgetMs: 60_000, sinkTimeoutMs: 60_000, closeTimeoutMs: 10_000 },
    resolvePath: (p: string) => p,
    resolveAsset: (p: string) => p,
    dependency: (field: string) => {
      throw new Error(`prepare-dataset runs no step that provides ${field}`);
    },
  };
  const decode = await imageDecode.init(imageDecode.manifest.config.parse({ color: spec.channels === 1 ? 'GRAY' : 'RGB' }), ctx);
  let images = 0;
  let masks = 0;
  try {
    for await (const file of walk(src)) {
      const ext = path.extname(file).toLowerCase();
      const stem = path.relative(src, file).slice(0, -ext.length);
      const isMask = o.masks === true && ext === '.png';
      if (!isMask && !IMAGE_EXTENSIONS.includes(ext)) continue;
      const data = await readFile(file);
      const base = path.join(out, stem);
      await mkdir(path.dirname(base), { recursive: true });
      if (isMask) {
        const { data: px, info } = await sharp(data).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
        const mask: RawImage = { kind: 'raw', data: px, width: info.width, height: info.height, channels: 1, colorOrder: 'GRAY' };
        const rects = regionsOf(mask);
        for (let i = 0; i < rects.length; i++) {
          const resized = await toInputPixels(mask, maskSpec, rects[i]);
          await writeFile(targetOf(base, i, '.mask'), await png(Buffer.from(resized.data.map((v) => (v >= 128 ? 255 : 0))), 1));
        }
        masks++;
        continue;
      }
      const frame = { ref: file, partId: stem, sequence: images, capturedAt: new Date(), image: { kind: 'encoded' as const, data } };
      const { image } = await decode.run({ frame }, ctx);
      if (image === undefined) throw new Error(`${file}: not decoded`);
      const rects = regionsOf(image);
      const tiles = [];
      for (let i = 0; i < rects.length; i++) {
        const pixels = await toInputPixels(image, spec, rects[i]);
        await writeFile(targetOf(base, i, ''), await png(pixels.data, spec.channels));
        tiles.push({ file: path.basename(targetOf(base, i, '')), rect: rects[i], transform: pixels.transform });
      }
      if (overlap !== undefined) await writeFile(`${base}.tiles.json`, `${JSON.stringify({ source: { width: image.width, height: image.height }, overlap, tiles }, null, 1)}\n`);
      images++;
    }
  } finally {
    await decode.close?.();
  }
  return { images, masks, out };
}

const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp'];

async function* walk(dir: string): AsyncGenerator<string> {
  for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else yield p;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { spec: { type: 'string' }, src: { type: 'string' }, out: { type: 'string' }, masks: { type: 'boolean', default: false }, tiles: { type: 'string' } } });
  if (values.spec === undefined || values.src === undefined || values.out === undefined) {
    process.stderr.write('usage: prepare-dataset.ts --spec input.json --src DIR --out DIR [--masks] [--tiles OVERLAP]\n');
    process.exit(2);
  }
  const spec = InputSpec.parse(JSON.parse(await readFile(values.spec, 'utf8')));
  const counts = await prepareDataset({ spec, src: values.src, out: values.out, masks: values.masks, ...(values.tiles === undefined ? {} : { tilesOverlap: Number(values.tiles) }) });
  process.stdout.write(`${JSON.stringify(counts)}\n`);
}
