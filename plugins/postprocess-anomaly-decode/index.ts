import { z } from 'zod';
import { definePlugin, modelOutputCaps, tensorOf } from '../../runtime/contract.js';
import { InstanceState } from '../lib/instance.js';
import type { Defect } from '../../runtime/result.js';
import { decoderRun } from '../lib/decoder.js';
import { dedupeRegions, mapRegions, type ScoredRegion } from '../lib/map-regions.js';

const Config = z
  .object({
    minAreaPx: z.number().int().min(1).optional().describe("anomalous blobs smaller than this (model-input pixels) are ignored; default: the model's decode spec"),
  })
  .strict();

/**
 * Anomaly outputs (anomalib's export contract: pred_score, pred_label,
 * anomaly_map, pred_mask; scores normalised so the trained threshold is 0.5)
 * -> the image score, and, for an anomalous image, its anomalous regions.
 * The image score decides, as the model was validated; regions say where.
 */
export const anomalyDecode = definePlugin({
  manifest: {
    id: 'core/anomaly-decode@1',
    kind: 'postprocess',
    description: 'Decodes anomaly models (anomalib contract): image score plus thresholded anomaly-map regions in source pixels.',
    config: Config,
    accepts: [modelOutputCaps('anomaly', 'anomaly')],
    produces: [{ type: 'findings' }],
  },
  async init(config, ctx) {
    const state = new InstanceState(ctx.step, 'core/anomaly-decode@1');
    return {
      close: () => state.close(),
      run: state.guard(decoderRun('anomaly', (model, spec, ctx) => {
        const label = model.labels[0]!;
        const scoreT = tensorOf(model, spec.score);
        const items = scoreT.dims[0] ?? 1;
        let imageScore = 0;
        for (let b = 0; b < items; b++) imageScore = Math.max(imageScore, Number(scoreT.data[b]));
        imageScore = Math.min(1, Math.max(0, imageScore));
        const defects: Defect[] = [];
        if (imageScore >= spec.threshold) {
          const regions: ScoredRegion[] = [];
          if (spec.map !== undefined) {
            const map = tensorOf(model, spec.map);
            const [H, W] = map.dims.slice(-2) as [number, number];
            const plane = H * W;
            const mask = spec.mask === undefined ? undefined : model.tensors[spec.mask];
            for (let b = 0; b < items; b++) {
              const m = (map.data as Float32Array).subarray(b * plane, (b + 1) * plane);
              const k = mask === undefined ? undefined : (mask.data as Uint8Array).subarray(b * plane, (b + 1) * plane);
              regions.push(...mapRegions(m, k, W, H, spec.threshold, model.transforms[b]!, config.minAreaPx ?? spec.minAreaPx, ctx.calibration?.mmPerPixel));
            }
          }
          const kept = dedupeRegions(regions, items);
          if (kept.length === 0) defects.push({ label, score: imageScore });
          else for (const r of kept) defects.push({ label, score: Math.max(r.score, imageScore), region: r.region, box: r.region.box });
        }
        return { defects, scores: { defect: imageScore, [label]: imageScore } };
      })),
    };
  },
});
