import { z } from 'zod';
import { labelScore, type InspectionResult } from '../../runtime/result.js';
import type { SampleReason } from './jobs.js';

export const SamplingConfig = z
  .object({
    fails: z.boolean().default(true).describe('every rejected part'),
    errors: z.boolean().default(true).describe('every part linegate could not inspect'),
    nearThreshold: z.number().min(0).max(1).default(0.05).describe('parts whose score for a label is within this of its threshold, either side (0: off)'),
    passFraction: z.number().min(0).max(1).default(0.01).describe('this fraction of the other passes, at random'),
    quotaPerHour: z
      .record(z.string(), z.number().int().nonnegative())
      .default({})
      .describe('most samples per label per clock hour, e.g. { good: 100, default: 500 }; a label without an entry (and no default) is unlimited'),
    goodLabels: z.array(z.string().min(1)).default(['good', 'ok', 'pass']).describe("source labels (ground truth) that mean a good part, e.g. the casting set's ok_front"),
  })
  .strict();
export type SamplingConfig = z.infer<typeof SamplingConfig>;

export interface Sample {
  readonly label: string;
  readonly labelSource: 'source' | 'model';
  readonly reasons: readonly SampleReason[];
  readonly why: readonly string[];
}

const HOUR_MS = 3_600_000;

/**
 * Chooses the parts worth a human look and a place in the next training set,
 * and says why for each: the model's rejects and errors, the parts it was
 * unsure about, and a trickle of passes so that "good" stays represented.
 * Quotas per label and hour keep a bad shift from flooding the set with one
 * defect.
 */
export class Sampler {
  readonly #c: SamplingConfig;
  readonly #random: () => number;
  #hour = -1;
  readonly #taken = new Map<string, number>();
  #skippedByQuota = 0;

  constructor(config: SamplingConfig, random: () => number = Math.random) {
    this.#c = config;
    this.#random = random;
  }

  get skippedByQuota(): number {
    return this.#skippedByQuota;
  }

  choose(r: InspectionResult, now = Date.now()): Sample | undefined {
    const reasons: SampleReason[] = [];
    const why: string[] = [];
    if (r.verdict === 'fail' && this.#c.fails) {
      reasons.push('fail');
      why.push(`rejected: ${r.reasons.map((x) => x.code).join(', ') || `code ${r.rejectCode}`}`);
    }
    if (r.verdict === 'error' && this.#c.errors) {
      reasons.push('error');
      why.push(`not inspected: ${r.reasons[0]?.code ?? `code ${r.rejectCode}`}`);
    }
    for (const line of this.#near(r)) {
      if (!reasons.includes('near-threshold')) reasons.push('near-threshold');
      why.push(line);
    }
    if (r.verdict === 'pass' && reasons.length === 0 && this.#c.passFraction > 0 && this.#random() < this.#c.passFraction) {
      reasons.push('random-pass');
      why.push(`random pass (${this.#c.passFraction * 100} % of passes)`);
    }
    if (reasons.length === 0) return undefined;
    const { label, labelSource } = this.#label(r);
    if (!this.#withinQuota(label, now)) return undefined;
    return { label, labelSource, reasons, why };
  }

  /** A frame chosen elsewhere (a shadow model's disagreement), under the same label quotas; undefined past the quota. */
  extra(r: InspectionResult, reason: SampleReason, why: readonly string[], now = Date.now()): Sample | undefined {
    const { label, labelSource } = this.#label(r);
    if (!this.#withinQuota(label, now)) return undefined;
    return { label, labelSource, reasons: [reason], why };
  }

  /** One line per label whose score lies within the band around the threshold it was judged by. */
  #near(r: InspectionResult): string[] {
    const band = this.#c.nearThreshold;
    if (band <= 0 || r.thresholds === undefined) return [];
    const out: string[] = [];
    for (const [label, t] of Object.entries(r.thresholds)) {
      const s = labelScore(r, label);
      if (Math.abs(s - t) <= band) out.push(`${label} score ${s.toFixed(3)} within ${band} of the threshold ${t}`);
    }
    return out;
  }

  /** Ground truth when the source knew it; otherwise what the station decided, marked for review. */
  #label(r: InspectionResult): { label: string; labelSource: 'source' | 'model' } {
    const truth = r.source.label;
    if (truth !== undefined) return { label: this.#c.goodLabels.includes(truth) ? 'good' : truth, labelSource: 'source' };
    if (r.verdict === 'pass') return { label: 'good', labelSource: 'model' };
    if (r.verdict === 'error') return { label: 'error', labelSource: 'model' };
    const fired = r.defects.filter((d) => d.rule !== undefined).sort((a, b) => b.score - a.score);
    return { label: fired[0]?.label ?? r.defects[0]?.label ?? 'defect', labelSource: 'model' };
  }

  #withinQuota(label: string, now: number): boolean {
    const hour = Math.floor(now / HOUR_MS);
    if (hour !== this.#hour) {
      this.#hour = hour;
      this.#taken.clear();
    }
    const quota = this.#c.quotaPerHour[label] ?? this.#c.quotaPerHour.default;
    const taken = this.#taken.get(label) ?? 0;
    if (quota !== undefined && taken >= quota) {
      this.#skippedByQuota++;
      return false;
    }
    this.#taken.set(label, taken + 1);
    return true;
  }
}
