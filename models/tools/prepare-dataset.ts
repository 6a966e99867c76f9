/**
 * Writes a data set's images as the model will see them at the station: each
 * image decoded by core/image-decode@1 and resized by the model plugin's own
 * preprocessing, saved as PNG at the model's input size. Training scripts read
 * these files, so training and the line share one preprocessing.
 *
 *   tsx models/tools/prepare-dataset.ts --spec input.json --src DIR --out DIR [--masks]
 *
 * --spec   the `input` object of a model.json (size, channels, resize, kernel)
 * --masks  PNG files whose stem matches a JPEG beside them are masks: resized
 *          with the same geometry, nearest-neighbour, thresholded at 128
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { imageDecode } from '../../plugins/preprocess-image-decode/index.js';
import { InputSpec } from '../../plugins/model-onnx/manifest.js';
import { toInputPixels } from '../../plugins/model-onnx/preprocess.js';
import { pino } from 'pino';

const { values } = parseArgs({ options: { spec: { type: 'string' }, src: { type: 'string' }, out: { type: 'string' }, masks: { type: 'boolean', default: false } } });
if (values.spec === undefined || values.src === undefined || values.out === undefined) {
  process.stderr.write('usage: prepare-dataset.ts --spec input.json --src DIR --out DIR [--masks]\n');
  process.exit(2);
}
const spec = InputSpec.parse(JSON.parse(await readFile(values.spec, 'utf8')));
const src = path.resolve(values.src);
const out = path.resolve(values.out);
const ctx = {
  log: pino({ level: 'silent' }),
  signal: new AbortController().signal,
  stationId: 'prepare',
  step: 'decode',
  resolvePath: (p: string) => p,
  resolveAsset: (p: string) => p,
};
const decode = await imageDecode.init(imageDecode.manifest.config.parse({ color: spec.channels === 1 ? 'GRAY' : 'RGB' }), ctx);

async function* walk(dir: string): AsyncGenerator<string> {
  for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else yield p;
  }
}

let images = 0;
let masks = 0;
for await (const file of walk(src)) {
  const ext = path.extname(file).toLowerCase();
  const rel = path.relative(src, file);
  const stem = rel.slice(0, -ext.length);
  const isMask = values.masks && ext === '.png';
  if (!isMask && !['.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp'].includes(ext)) continue;
  const data = await readFile(file);
  const target = path.join(out, `${stem}${isMask ? '.mask' : ''}.png`);
  await mkdir(path.dirname(target), { recursive: true });
  if (isMask) {
    const { data: px, info } = await sharp(data).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    const maskSpec = { ...spec, channels: 1 as const, color: 'GRAY' as const, kernel: 'nearest' as const, resize: spec.resize.mode === 'letterbox' ? { mode: 'letterbox' as const, pad: 0 } : spec.resize };
    const resized = await toInputPixels({ kind: 'raw', data: px, width: info.width, height: info.height, channels: 1, colorOrder: 'GRAY' }, maskSpec);
    const bin = Buffer.from(resized.data.map((v) => (v >= 128 ? 255 : 0)));
    await writeFile(target, await sharp(bin, { raw: { width: spec.width, height: spec.height, channels: 1 } }).toColourspace('b-w').png().toBuffer());
    masks++;
    continue;
  }
  const frame = { ref: file, partId: stem, sequence: images, capturedAt: new Date(), image: { kind: 'encoded' as const, data } };
  const { image } = await decode.run({ frame }, ctx);
  const pixels = await toInputPixels(image!, spec);
  await writeFile(target, await sharp(pixels.data, { raw: { width: spec.width, height: spec.height, channels: spec.channels } }).toColourspace(spec.channels === 1 ? 'b-w' : 'srgb').png().toBuffer());
  images++;
}
process.stdout.write(`${JSON.stringify({ images, masks, out })}\n`);
