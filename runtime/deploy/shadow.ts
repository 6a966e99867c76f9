import { performance } from 'node:perf_hooks';
import type { ExtraSamples, Frame, Logger, ModelDescription } from '../contract.js';
import { messageOf } from '../errors.js';
import type { InspectionResult } from '../result.js';
import { hungAfterMs } from '../config/station-schema.js';
import { buildResult } from '../execute/outcome.js';
import type { Pipeline } from '../execute/pipeline.js';
import { Slots } from '../execute/slots.js';
import { runStages } from '../execute/stages.js';
import type { Agreement, ShadowStatus } from './types.js';

export interface ShadowOptions {
  readonly log: Logger;
  /** The station is busy (parts waiting, every slot taken): the shadow skips the frame rather than compete with the line. */
  readonly loaded: () => boolean;
  /** Where disagreements go for retraining (the queue sink), when the station has one. */
  readonly samples: () => ExtraSamples | undefined;
  /** Its counts changed (at most a few times a second: the API's event stream and metrics read them). */
  readonly onChange: () => void;
}

/** The primary's class a comparison is counted under: pass, error, or the label that failed the part. */
export function classOf(r: InspectionResult): string {
  if (r.verdict !== 'fail') return r.verdict;
  return r.defects.find((d) => d.rule !== undefined)?.label ?? r.reasons[0]?.code ?? 'fail';
}

/**
 * A candidate model judging the line's frames after their verdicts are out, never on a part's
 * critical path and never heard by the PLC: one frame at a time, skipped while it is still busy or
 * while the station itself has parts waiting (it is dropped first under load). Agreement is counted
 * by the primary's class; a disagreement goes to the samples queue with reason `shadow`.
 */
export class ShadowRunner {
  readonly pipeline: Pipeline;
  readonly model: ModelDescription;
  readonly by: string;
  readonly since = new Date();
  readonly #o: ShadowOptions;
  readonly #slots: Slots;
  #running: Promise<void> | undefined;
  #closed = false;
  #frames = 0;
  #skipped = 0;
  #failed = 0;
  #queued = 0;
  readonly #byClass = new Map<string, { total: number; agree: number }>();

  constructor(pipeline: Pipeline, model: ModelDescription, by: string, o: ShadowOptions) {
    this.pipeline = pipeline;
    this.model = model;
    this.by = by;
    this.#o = o;
    this.#slots = new Slots({ size: 1, hungAfterMs: hungAfterMs(pipeline.plan.settings), log: o.log });
  }

  /** Offers a judged frame; returns at once (the comparison runs on its own). */
  offer(primary: InspectionResult, frame: Frame): void {
    if (this.#closed) return;
    if (this.#running !== undefined || this.#slots.free === 0 || this.#o.loaded()) {
      this.#skipped++;
      return;
    }
    this.#running = this.#judge(primary, frame)
      .catch((err: unknown) => this.#o.log.error({ err, partId: primary.partId }, 'the shadow model failed on a frame; the line is not affected'))
      .finally(() => {
        this.#running = undefined;
        this.#o.onChange();
      });
  }

  status(): ShadowStatus & { state: 'running' } {
    let total = 0;
    let agree = 0;
    const byClass: Agreement['byClass'] = {};
    for (const [k, v] of this.#byClass) {
      byClass[k] = { ...v };
      total += v.total;
      agree += v.agree;
    }
    return {
      state: 'running',
      model: { name: this.model.name, version: this.model.version, sha256: this.model.sha256 },
      since: this.since.toISOString(),
      by: this.by,
      frames: this.#frames,
      skipped: this.#skipped,
      failed: this.#failed,
      queued: this.#queued,
      agreement: { total, agree, rate: total === 0 ? null : agree / total, byClass },
    };
  }

  /** Lets a running comparison end (bounded), then closes the shadow's stages. Idempotent. */
  async close(waitMs: number): Promise<void> {
    this.#closed = true;
    await this.pipeline.retire(waitMs);
  }

  async #judge(primary: InspectionResult, frame: Frame): Promise<void> {
    const plan = this.pipeline.plan;
    const release = this.pipeline.acquire();
    const slot = this.#slots.take();
    const t0 = performance.now();
    // The pipeline is held to the end (the sample queued too): once close() returns, the counts are final.
    try {
      let shadow: InspectionResult;
      try {
        const outcome = await runStages({ frame, arrivedAt: t0, stages: this.pipeline.stages, stationId: plan.settings.id, cycleBudgetMs: plan.settings.cycleBudgetMs, slot, log: this.#o.log });
        shadow = buildResult(plan, frame, outcome, performance.now() - t0);
      } finally {
        slot.release();
      }
      await this.#compare(primary, shadow, frame);
    } finally {
      release();
    }
  }

  async #compare(primary: InspectionResult, shadow: InspectionResult, frame: Frame): Promise<void> {
    this.#frames++;
    if (shadow.verdict === 'error') {
      // A shadow that cannot judge says nothing about agreement; its failures are counted apart.
      this.#failed++;
      return;
    }
    const key = classOf(primary);
    const c = this.#byClass.get(key) ?? { total: 0, agree: 0 };
    c.total++;
    const agrees = shadow.verdict === primary.verdict;
    if (agrees) c.agree++;
    this.#byClass.set(key, c);
    if (!agrees) await this.#keep(primary, shadow, frame);
  }

  async #keep(primary: InspectionResult, shadow: InspectionResult, frame: Frame): Promise<void> {
    const samples = this.#o.samples();
    if (samples === undefined) return;
    const say = (r: InspectionResult): string => `${r.verdict}${Object.keys(r.scores).length === 0 ? '' : ` (${Object.entries(r.scores).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')})`}`;
    const who = `${this.model.name}@${this.model.version}`;
    try {
      const kept = await samples.submit({
        result: primary,
        image: frame.image,
        reason: 'shadow',
        why: [`shadow ${who} says ${say(shadow)}; the station (${primary.model === null ? 'no model' : `${primary.model.name}@${primary.model.version}`}) said ${say(primary)}`],
        other: { model: shadow.model, verdict: shadow.verdict, rejectCode: shadow.rejectCode, scores: shadow.scores, defects: shadow.defects },
      });
      if (kept) this.#queued++;
    } catch (err) {
      this.#o.log.warn({ err: messageOf(err), partId: primary.partId }, 'a shadow disagreement could not be queued as a sample');
    }
  }
}
