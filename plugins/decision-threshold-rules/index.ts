import { z } from 'zod';
import { definePlugin, type Decision } from '../../runtime/contract.js';
import type { Defect, Reason } from '../../runtime/result.js';

const Rule = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_.-]+$/).optional().describe('names the rule in reasons; default: reject-<label>'),
    label: z.string().min(1).describe("defect label the rule looks at; '*' for any"),
    minScore: z.number().min(0).max(1).default(0.5).describe('defects scoring at least this count'),
    maxCount: z.number().int().min(0).default(0).describe('the part fails when more defects than this count'),
    rejectCode: z.number().int().min(1).max(899).describe('numeric code the PLC receives when this rule fails the part'),
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

/** Per-label reject rules over the findings; a part no rule fires on passes. */
export const thresholdRules = definePlugin({
  manifest: {
    id: 'core/threshold-rules@1',
    kind: 'decision',
    description: 'Fails a part when defects of a label reach a minimum score more often than allowed; each rule carries its reject code.',
    config: Config,
    accepts: [{ type: 'findings' }],
    produces: [{ type: 'decision' }],
  },
  async init(config) {
    const rules = config.rules.map((r) => ({ ...r, id: r.id ?? `reject-${r.label}` }));
    return {
      async run(part, ctx) {
        ctx.signal.throwIfAborted();
        const findings = part.findings;
        if (findings === undefined) throw new Error('no findings to decide on');
        const firedBy = new Map<Defect, string>();
        const reasons: Reason[] = [];
        let rejectCode = 0;
        for (const rule of rules) {
          const hits = findings.defects.filter((d) => (rule.label === '*' || d.label === rule.label) && d.score >= rule.minScore);
          if (hits.length <= rule.maxCount) continue;
          for (const d of hits) if (!firedBy.has(d)) firedBy.set(d, rule.id);
          const top = Math.max(...hits.map((d) => d.score));
          reasons.push({
            code: rule.id,
            rejectCode: rule.rejectCode,
            message: `${hits.length} ${rule.label} defect(s) scoring >= ${rule.minScore} (max ${rule.maxCount} allowed; top score ${top.toFixed(3)})`,
            step: ctx.step,
          });
          if (rejectCode === 0) rejectCode = rule.rejectCode;
        }
        const defects = findings.defects.map((d) => (firedBy.has(d) ? { ...d, rule: firedBy.get(d)! } : d));
        const decision: Decision = { verdict: reasons.length > 0 ? 'fail' : 'pass', rejectCode, reasons, defects };
        return { decision };
      },
    };
  },
});
