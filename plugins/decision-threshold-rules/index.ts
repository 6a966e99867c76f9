import { z } from 'zod';
import { definePlugin, type Decision, type Part, type PluginContext } from '../../runtime/contract.js';
import { InstanceState } from '../lib/instance.js';
import type { Defect, Reason } from '../../runtime/result.js';
import { insideAny, type Polygon } from './geometry.js';

const Point = z.tuple([z.number(), z.number()]);
const PolygonSchema = z.array(Point).min(3).describe('[[x, y], ...] in source-image pixels');

const Rule = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_.-]+$/).optional().describe('names the rule in reasons; default: reject-<label>'),
    label: z.string().min(1).describe("defect label the rule looks at; '*' for any"),
    minScore: z.number().min(0).max(1).optional().describe("defects scoring at least this count; default: the model's threshold for the label, else 0.5; calibration overrides"),
    minAreaPx: z.number().min(0).optional().describe('defects smaller than this (source pixels) do not count'),
    minAreaMm2: z.number().min(0).optional().describe('defects smaller than this (mm², needs calibration mmPerPixel) do not count'),
    maxCount: z.number().int().min(0).default(0).describe('the part fails when more defects than this count'),
    include: z.array(PolygonSchema).optional().describe('only defects whose centre lies in one of these count'),
    exclude: z.array(PolygonSchema).optional().describe('defects whose centre lies in one of these never count'),
    verdict: z.enum(['fail', 'error']).default('fail').describe('error: the part cannot be judged (e.g. a bad image); the PLC gets "not decidable"'),
    rejectCode: z.number().int().min(1).max(899).describe('numeric code the PLC receives when this rule fires'),
  })
  .strict();

const Config = z
  .object({
    rules: z.array(Rule).min(1).describe('checked in order; the first rule that fires gives the reject code'),
  })
  .strict()
  .superRefine((c, ctx) => {
    const ids = new Set<string>();
    c.rules.forEach((r, i) => {
      const id = r.id ?? `reject-${r.label}`;
      if (ids.has(id)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'id'], message: `rule id "${id}" is used twice` });
      ids.add(id);
    });
  });

type RuleConfig = z.infer<typeof Rule> & { readonly id: string };

/** Where a rule's score threshold comes from, most specific first: the station's calibration, the rule, the model, 0.5. */
function thresholdFor(rule: RuleConfig, part: Part, ctx: PluginContext): { value: number; from: string } {
  const cal = ctx.calibration?.thresholds[rule.label];
  if (cal !== undefined) return { value: cal, from: 'calibration' };
  if (rule.minScore !== undefined) return { value: rule.minScore, from: 'rule' };
  // Any model plugin's output carries its thresholds (the model-output contract), not only core/onnx-model's.
  const model = part.modelOutput;
  if (model !== undefined) return { value: model.thresholds.perLabel[rule.label] ?? model.thresholds.default, from: `model ${model.model.name}@${model.model.version}` };
  return { value: 0.5, from: 'default' };
}

function areaOf(d: Defect): number | undefined {
  return d.region?.areaPx ?? (d.box === undefined ? undefined : d.box.w * d.box.h);
}

/** A defect counts for a rule when label, score, size and position all say so; a defect without geometry is never excused by size or place. */
function counts(rule: RuleConfig, d: Defect, minScore: number, mmPerPixel: number | undefined): boolean {
  if (rule.label !== '*' && d.label !== rule.label) return false;
  if (d.score < minScore) return false;
  const area = areaOf(d);
  if (rule.minAreaPx !== undefined && area !== undefined && area < rule.minAreaPx) return false;
  if (rule.minAreaMm2 !== undefined) {
    const mm2 = d.region?.areaMm2 ?? (area !== undefined && mmPerPixel !== undefined ? area * mmPerPixel * mmPerPixel : undefined);
    if (mm2 !== undefined && mm2 < rule.minAreaMm2) return false;
  }
  const box = d.region?.box ?? d.box;
  if (box !== undefined) {
    const c: [number, number] = [box.x + box.w / 2, box.y + box.h / 2];
    if (rule.include !== undefined && !insideAny(c, rule.include as Polygon[])) return false;
    if (rule.exclude !== undefined && insideAny(c, rule.exclude as Polygon[])) return false;
  }
  return true;
}

/** Per-label reject rules over the findings; a part no rule fires on passes. */
export const thresholdRules = definePlugin({
  manifest: {
    id: 'core/threshold-rules@1',
    kind: 'decision',
    description: 'Reject rules per label (minimum score, minimum area in px or mm², maximum count, ROI include/exclude polygons), each with its reject code; thresholds overridable by calibration.',
    config: Config,
    accepts: [{ type: 'findings' }],
    produces: [{ type: 'decision' }],
  },
  async init(config, ctx) {
    const rules: RuleConfig[] = config.rules.map((r) => ({ ...r, id: r.id ?? `reject-${r.label}` }));
    for (const r of rules) {
      if (r.minAreaMm2 !== undefined && ctx.calibration?.mmPerPixel === undefined) {
        ctx.log.warn({ rule: r.id }, 'rule has minAreaMm2 but the station has no calibrated mmPerPixel: only regions that carry mm² are measured');
      }
    }
    const state = new InstanceState(ctx.step, 'core/threshold-rules@1');
    return {
      close: () => state.close(),
      async run(part, run) {
        state.assertOpen();
        run.signal.throwIfAborted();
        const findings = part.findings;
        if (findings === undefined) throw new Error('no findings to decide on');
        const firedBy = new Map<Defect, string>();
        const reasons: Reason[] = [];
        const fired: RuleConfig[] = [];
        let verdict: Decision['verdict'] = 'pass';
        const thresholds: Record<string, number> = {};
        for (const rule of rules) {
          const t = thresholdFor(rule, part, run);
          // Two rules on one label: the lower threshold is where the label starts to matter.
          thresholds[rule.label] = Math.min(thresholds[rule.label] ?? 1, t.value);
          const hits = findings.defects.filter((d) => counts(rule, d, t.value, run.calibration?.mmPerPixel));
          if (hits.length <= rule.maxCount) continue;
          for (const d of hits) if (!firedBy.has(d)) firedBy.set(d, rule.id);
          const top = Math.max(...hits.map((d) => d.score));
          reasons.push({
            code: rule.id,
            rejectCode: rule.rejectCode,
            message: `${hits.length} ${rule.label} defect(s) scoring >= ${t.value} (${t.from}; max ${rule.maxCount} allowed; top score ${top.toFixed(3)})`,
            step: run.step,
          });
          fired.push(rule);
          if (rule.verdict === 'error') verdict = 'error';
          else if (verdict === 'pass') verdict = 'fail';
        }
        const defects = findings.defects.map((d) => (firedBy.has(d) ? { ...d, rule: firedBy.get(d)! } : d));
        // The code is the first fired rule's of the final verdict: an `error` rule outranks `fail` ones.
        const decisive = fired.find((r) => r.verdict === verdict);
        const decision: Decision = { verdict, rejectCode: decisive?.rejectCode ?? 0, reasons, defects, thresholds };
        return { decision };
      },
    };
  },
});
