import { z } from 'zod';
import { definePlugin, modelOutputCaps, tensorOf } from '../../runtime/contract.js';
import { InstanceState } from '../lib/instance.js';
import type { Defect } from '../../runtime/result.js';
import { activate } from '../lib/activation.js';
import { decoderRun } from '../lib/decoder.js';

const Config = z.object({}).strict();

/**
 * Class probabilities -> findings. Every label that is not a good label is a
 * defect candidate scored by its probability; `scores.defect` is 1 - p(good).
 * With tiles, each tile is classified and the worst tile counts (its box is
 * the tile).
 */
export const classifyDecode = definePlugin({
  manifest: {
    id: 'core/classify-decode@1',
    kind: 'postprocess',
    description: 'Decodes a classification output (softmax, sigmoid or probabilities) into defect scores per label.',
    config: Config,
    accepts: [modelOutputCaps('classification', 'classification')],
    produces: [{ type: 'findings' }],
  },
  async init(_config, ctx) {
    const state = new InstanceState(ctx.step, 'core/classify-decode@1');
    return {
      close: () => state.close(),
      run: state.guard(decoderRun('classification', (model, spec) => {
        const out = tensorOf(model, spec.output);
        const nc = model.labels.length;
        const items = out.data.length / nc;
        if (!Number.isInteger(items) || out.dims.at(-1) !== nc) throw new Error(`output ${spec.output} [${out.dims.join(',')}] does not end in ${nc} classes`);
        const data = out.data as Float32Array;
        const good = new Set(spec.goodLabels.map((l) => model.labels.indexOf(l)));
        const probs = new Float64Array(nc);
        const best = new Float64Array(nc);
        let worst = { defect: -1, item: 0 };
        for (let n = 0; n < items; n++) {
          activate(spec.activation, data, n * nc, nc, 1, probs);
          let pGood = 0;
          for (let c = 0; c < nc; c++) {
            if (good.has(c)) pGood += probs[c]!;
            else best[c] = Math.max(best[c]!, probs[c]!);
          }
          if (1 - pGood > worst.defect) worst = { defect: 1 - pGood, item: n };
        }
        const tile = items > 1 ? model.transforms[worst.item]?.region : undefined;
        const defects: Defect[] = [];
        const scores: Record<string, number> = { defect: clamp01(worst.defect) };
        for (let c = 0; c < nc; c++) {
          if (good.has(c)) continue;
          const label = model.labels[c]!;
          scores[label] = clamp01(best[c]!);
          defects.push({ label, score: clamp01(best[c]!), ...(tile === undefined ? {} : { box: { x: tile.x, y: tile.y, w: tile.width, h: tile.height } }) });
        }
        return { defects, scores };
      })),
    };
  },
});

const clamp01 = (v: number): number => Math.min(1, Math.max(0, v));
