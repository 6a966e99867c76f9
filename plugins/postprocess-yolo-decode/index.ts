import { z } from 'zod';
import { boxToSource, definePlugin, modelOutputCaps, tensorOf, type InputTransform } from '../../runtime/contract.js';
import { InstanceState } from '../lib/instance.js';
import type { Defect } from '../../runtime/result.js';
import { nms, type Scored } from '../lib/nms.js';
import { decoderRun } from '../lib/decoder.js';

const Config = z
  .object({
    scoreThreshold: z.number().min(0).max(1).optional().describe("candidates below are dropped; default: the model's decode spec"),
    iouThreshold: z.number().min(0).max(1).optional().describe("class-wise NMS overlap; default: the model's decode spec"),
    maxDetections: z.number().int().min(1).max(10_000).optional(),
  })
  .strict();

interface Candidate extends Scored {
  readonly item: number;
}

/**
 * Ultralytics YOLO (v8/v11) detection outputs -> boxes in source pixels.
 * `xywh-scores` (1, 4+nc, N): centre/size in input pixels then per-class
 * scores (already sigmoid, no objectness): filter, class-wise NMS. `end2end`
 * (1, N, 6): x1 y1 x2 y2 score class, NMS done in the graph. Boxes go back
 * through the letterbox/stretch transform of their tile and are clipped.
 */
export function decodeYolo(
  data: Float32Array,
  dims: readonly number[],
  format: 'xywh-scores' | 'end2end',
  nc: number,
  transforms: readonly InputTransform[],
  opts: { scoreThreshold: number; iouThreshold: number; maxDetections: number },
): { cls: number; score: number; box: { x: number; y: number; w: number; h: number } }[] {
  const items = dims[0]!;
  const candidates: Candidate[] = [];
  if (format === 'xywh-scores') {
    const rows = dims[1]!;
    const n = dims[2]!;
    if (rows !== 4 + nc) throw new Error(`output [${dims.join(',')}] should have ${4 + nc} rows (4 box values + ${nc} classes)`);
    for (let b = 0; b < items; b++) {
      const base = b * rows * n;
      for (let a = 0; a < n; a++) {
        let best = 0;
        let cls = -1;
        for (let c = 0; c < nc; c++) {
          const s = data[base + (4 + c) * n + a]!;
          if (s > best) {
            best = s;
            cls = c;
          }
        }
        if (cls < 0 || best < opts.scoreThreshold) continue;
        const cx = data[base + a]!;
        const cy = data[base + n + a]!;
        const w = data[base + 2 * n + a]!;
        const h = data[base + 3 * n + a]!;
        candidates.push({ x1: cx - w / 2, y1: cy - h / 2, x2: cx + w / 2, y2: cy + h / 2, score: best, cls, item: b });
      }
    }
  } else {
    const k = dims[1]!;
    if (dims[2] !== 6) throw new Error(`output [${dims.join(',')}] should end in 6 values (x1 y1 x2 y2 score class)`);
    for (let b = 0; b < items; b++) {
      for (let r = 0; r < k; r++) {
        const o = (b * k + r) * 6;
        const score = data[o + 4]!;
        if (score < opts.scoreThreshold) continue;
        const cls = Math.round(data[o + 5]!);
        if (cls < 0 || cls >= nc) continue;
        candidates.push({ x1: data[o]!, y1: data[o + 1]!, x2: data[o + 2]!, y2: data[o + 3]!, score, cls, item: b });
      }
    }
  }
  // NMS in source pixels, so boxes from overlapping tiles suppress each other too.
  const mapped = candidates.flatMap((c) => {
    const box = boxToSource(transforms[c.item]!, c.x1, c.y1, c.x2, c.y2);
    return box === undefined ? [] : [{ x1: box.x, y1: box.y, x2: box.x + box.w, y2: box.y + box.h, score: c.score, cls: c.cls, box }];
  });
  const kept = format === 'end2end' && items === 1 ? mapped.sort((a, b) => b.score - a.score).slice(0, opts.maxDetections) : nms(mapped, opts.iouThreshold, opts.maxDetections);
  return kept.map((k) => ({ cls: k.cls, score: k.score, box: k.box }));
}

export const yoloDecode = definePlugin({
  manifest: {
    id: 'core/yolo-decode@1',
    kind: 'postprocess',
    description: 'Decodes YOLOv8/v11 detection outputs (raw with NMS, or end-to-end) into labelled boxes in source-image pixels.',
    config: Config,
    accepts: [modelOutputCaps('detection', 'yolo')],
    produces: [{ type: 'findings' }],
  },
  async init(config, ctx) {
    const state = new InstanceState(ctx.step, 'core/yolo-decode@1');
    return {
      close: () => state.close(),
      run: state.guard(decoderRun('yolo', (model, spec) => {
        const out = tensorOf(model, spec.output);
        const dets = decodeYolo(out.data as Float32Array, out.dims, spec.format, model.labels.length, model.transforms, {
          scoreThreshold: config.scoreThreshold ?? spec.scoreThreshold,
          iouThreshold: config.iouThreshold ?? spec.iouThreshold,
          maxDetections: config.maxDetections ?? spec.maxDetections,
        });
        const defects: Defect[] = dets.map((d) => ({ label: model.labels[d.cls]!, score: d.score, box: d.box }));
        const scores: Record<string, number> = { defect: 0 };
        for (const d of defects) {
          scores[d.label] = Math.max(scores[d.label] ?? 0, d.score);
          scores.defect = Math.max(scores.defect!, d.score);
        }
        return { defects, scores };
      })),
    };
  },
});
