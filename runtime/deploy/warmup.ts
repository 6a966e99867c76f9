import { performance } from 'node:perf_hooks';
import type { Caps, EncodedImage, Frame, Logger, RawImage } from '../contract.js';
import { LinegateError } from '../errors.js';
import { greyPng } from '../image-format.js';
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
