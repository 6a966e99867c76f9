import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { RawImage } from '../runtime/contract.js';
import { Histogram } from '../runtime/observability/histogram.js';
import { imageDecode } from '../plugins/preprocess-image-decode/index.js';
import { loadModelPackage } from '../plugins/model-onnx/manifest.js';
import { normaliseTables, toInputPixels, writeTensor } from '../plugins/model-onnx/preprocess.js';
import { openSession } from '../plugins/model-onnx/session.js';
import { contextFor } from '../test/helpers/samples.js';
import { ROOT } from '../test/helpers/station.js';

const r2 = (v: number): number => Math.round(v * 100) / 100;

function images(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? images(p) : /\.(jpe?g|png)$/i.test(n) && !n.endsWith('.mask.png') ? [p] : [];
  });
}

/**
 * One model package on its fixture images: preprocessing (sharp resize +
 * float conversion) and inference timed separately, per image, single stream.
 */
export async function benchModel(pkgDir: string, fixtures: string, iterations: number): Promise<Record<string, unknown>> {
  const abs = path.join(ROOT, pkgDir);
  if (!existsSync(path.join(abs, 'model.onnx'))) return { skipped: `${pkgDir}/model.onnx is not here (a link into ../shared?)` };
  const pkg = await loadModelPackage(abs);
  const spec = pkg.manifest.input;
  const session = await openSession(pkg, { intraOpThreads: 0, interOpThreads: 1, threadSpinning: false });
  const ctx = contextFor(new AbortController().signal);
  const decode = await imageDecode.init(imageDecode.manifest.config.parse({ color: spec.channels === 1 ? 'GRAY' : 'RGB' }), ctx);
  const files = images(path.join(ROOT, fixtures)).filter((f) => !/\/[^/]+\.png$/.test(f) || !existsSync(f.replace(/\.png$/, '.jpg')));
  const decoded: RawImage[] = [];
  for (const f of files) {
    const { image } = await decode.run({ frame: { ref: f, partId: f, sequence: 0, capturedAt: new Date(), image: { kind: 'encoded', data: readFileSync(f) } } }, ctx);
    decoded.push(image!);
  }
  const tables = normaliseTables(spec);
  const size = spec.width * spec.height * spec.channels;
  const dims = spec.layout === 'NCHW' ? [1, spec.channels, spec.height, spec.width] : [1, spec.height, spec.width, spec.channels];
  const buf = new Float32Array(size);
  const pre = new Histogram();
  const inf = new Histogram();
  const signal = new AbortController().signal;
  for (let i = 0; i < 5; i++) await session.run(buf, dims, signal); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) {
    const a = performance.now();
    const px = await toInputPixels(decoded[i % decoded.length]!, spec);
    writeTensor(px.data, spec, tables, buf);
    const b = performance.now();
    await session.run(buf, dims, signal);
    const c = performance.now();
    pre.record(b - a);
    inf.record(c - b);
  }
  const seconds = (performance.now() - t0) / 1000;
  await session.close();
  return {
    model: `${pkg.manifest.name}@${pkg.manifest.version}`,
    input: `${spec.width}x${spec.height}x${spec.channels}`,
    images: decoded.length,
    iterations,
    preprocessMs: { p50: r2(pre.quantile(0.5)), p99: r2(pre.quantile(0.99)) },
    inferenceMs: { p50: r2(inf.quantile(0.5)), p99: r2(inf.quantile(0.99)) },
    framesPerSecond: r2(iterations / seconds),
    ratios: { preprocessOfTotal: r2(pre.quantile(0.5) / (pre.quantile(0.5) + inf.quantile(0.5))) },
  };
}
