import { performance } from 'node:perf_hooks';
import { deflateSync } from 'node:zlib';
import type { Caps, EncodedImage, Frame, Logger, RawImage } from '../contract.js';
import { LinegateError } from '../errors.js';
import { hungAfterMs } from '../config/station-schema.js';
import type { Pipeline } from '../execute/pipeline.js';
import { Slots } from '../execute/slots.js';
import { runStages } from '../execute/stages.js';

/** What the warm-up of a new pipeline found: how long it took, and the thresholds its decision used. */
export interface WarmUp {
  readonly ms: number;
  readonly thresholds: Readonly<Record<string, number>>;
}

/**
 * One part through the new pipeline before it serves: the last frame the station saw (the real
 * input), else a mid-grey frame of the kind its source produces. Any stage error refuses the
 * deploy; a verdict of either kind is fine (grey is neither good nor bad). The first run of a
 * session is the slow one (allocation, kernel selection): it happens here, not on a part.
 */
export async function warmUp(pipeline: Pipeline, last: EncodedImage | RawImage | undefined, log: Logger, signal?: AbortSignal): Promise<WarmUp> {
  const plan = pipeline.plan;
  const image = last ?? greyFrame(plan.source.plugin.manifest.produces ?? []);
  const frame: Frame = { ref: 'deploy:warm-up', image, partId: `${plan.settings.id}-warm-up`, sequence: 0, capturedAt: new Date() };
  const slots = new Slots({ size: 1, hungAfterMs: hungAfterMs(plan.settings), log });
  const slot = slots.take();
  const t0 = performance.now();
  try {
    // The init time-out, not the cycle budget: a first run may take longer than a part may.
    const outcome = await runStages({ frame, arrivedAt: t0, stages: pipeline.stages, stationId: plan.settings.id, cycleBudgetMs: plan.settings.initTimeoutMs, slot, log, ...(signal === undefined ? {} : { signal }) });
    const model = plan.models?.[0]?.model;
    const what = model === undefined ? 'the new model' : `${model.name}@${model.version}`;
    if (outcome.error !== undefined) throw new LinegateError('LG_ERR_DEPLOY_WARMUP', [what, `${outcome.error.code}: ${outcome.error.message}`], { cause: outcome.error });
    if (outcome.part?.decision === undefined) throw new LinegateError('LG_ERR_DEPLOY_WARMUP', [what, 'the pipeline gave no decision']);
    return { ms: performance.now() - t0, thresholds: { ...outcome.part.decision.thresholds } };
  } finally {
    slot.release();
  }
}

/** A 640x480 mid-grey frame: raw pixels for a source that gives raw frames, else a PNG. */
function greyFrame(produces: readonly Caps[]): EncodedImage | RawImage {
  const W = 640;
  const H = 480;
  if (produces.some((c) => c.type === 'image/raw') && !produces.some((c) => c.type === 'image/encoded')) {
    return { kind: 'raw', data: new Uint8Array(W * H * 3).fill(128), width: W, height: H, channels: 3, colorOrder: 'RGB' };
  }
  return { kind: 'encoded', data: greyPng(W, H), format: 'png' };
}

/** An 8-bit greyscale PNG of one value, by hand: the runtime keeps image libraries inside their plugins. */
export function greyPng(width: number, height: number, value = 128): Buffer {
  const row = Buffer.alloc(width + 1, value);
  row[0] = 0; // filter: none
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8 bits, greyscale, deflate, adaptive filtering, no interlace
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
