import { z } from 'zod';
import { definePlugin, modelOutputCaps, tensorOf } from '../../runtime/contract.js';
import { InstanceState } from '../lib/instance.js';
import type { Defect } from '../../runtime/result.js';
import { activate } from '../lib/activation.js';
import { decoderRun } from '../lib/decoder.js';
import { dedupeRegions, mapRegions } from '../lib/map-regions.js';

const Config = z
  .object({
    minAreaPx: z.number().int().min(1).optional().describe("blobs smaller than this (model-input pixels) are noise; default: the model's decode spec"),
    threshold: z.number().min(0).max(1).default(0.5).describe('per-pixel probability for a pixel to belong to a class (sigmoid outputs)'),
  })
  .strict();

/**
 * Semantic segmentation (N, classes, H, W) -> one region per connected blob of
 * each defect class: area in source pixels (and mm² with a calibrated scale),
 * bounding box, and the blob's peak probability as its score.
 */
export const segmentDecode = definePlugin({
  manifest: {
    id: 'core/segment-decode@1',
    kind: 'postprocess',
    description: 'Decodes segmentation masks into defect regions (connected components with area in px and mm², and a bounding box).',
    config: Config,
    accepts: [modelOutputCaps('segmentation', 'segmentation')],
    produces: [{ type: 'findings' }],
  },
  async init(config, ctx) {
    const state = new InstanceState(ctx.step, 'core/segment-decode@1');
    return {
      close: () => state.close(),
      run: state.guard(decoderRun('segmentation', (model, spec, ctx) => {
        const out = tensorOf(model, spec.output);
        const [items, channels, H, W] = out.dims as [number, number, number, number];
        const nc = model.labels.length;
        if (out.dims.length !== 4 || (channels !== nc && !(channels === 1 && nc === 1))) throw new Error(`output [${out.dims.join(',')}] is not (N, ${nc}, H, W)`);
        const data = out.data as Float32Array;
        const plane = H * W;
        const background = spec.backgroundLabel === undefined ? -1 : model.labels.indexOf(spec.backgroundLabel);
        const probs = new Float64Array(channels);
        const found: { label: string; regions: ReturnType<typeof mapRegions> }[][] = [];
        for (let b = 0; b < items; b++) {
          // One activation per pixel fills every class's map and mask.
          const maps = Array.from({ length: channels }, () => new Float32Array(plane));
          const masks = Array.from({ length: channels }, () => new Uint8Array(plane));
          const base = b * channels * plane;
          for (let i = 0; i < plane; i++) {
            activate(spec.activation, data, base + i, channels, plane, probs);
            let top = 0;
            for (let k = 1; k < channels; k++) if (probs[k]! > probs[top]!) top = k;
            for (let k = 0; k < channels; k++) {
              maps[k]![i] = probs[k]!;
              // softmax: a pixel belongs to its most likely class; sigmoid: to every class above the threshold
              masks[k]![i] = probs[k]! >= config.threshold && (spec.activation !== 'softmax' || k === top) ? 1 : 0;
            }
          }
          found.push(
            maps.flatMap((map, c) =>
              c === background ? [] : [{ label: model.labels[c]!, regions: mapRegions(map, masks[c], W, H, config.threshold, model.transforms[b]!, config.minAreaPx ?? spec.minAreaPx, ctx.calibration?.mmPerPixel) }],
            ),
          );
        }
        const defects: Defect[] = [];
        const scores: Record<string, number> = { defect: 0 };
        for (let c = 0; c < channels; c++) {
          if (c === background) continue;
          const label = model.labels[c]!;
          const all = found.flatMap((perItem) => perItem.filter((f) => f.label === label).flatMap((f) => f.regions));
          for (const r of dedupeRegions(all, items)) {
            defects.push({ label, score: r.score, region: r.region, box: r.region.box });
            scores[label] = Math.max(scores[label] ?? 0, r.score);
            scores.defect = Math.max(scores.defect!, r.score);
          }
        }
        return { defects, scores };
      })),
    };
  },
});
