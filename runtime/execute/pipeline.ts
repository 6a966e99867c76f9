import type { StageInstance } from '../contract.js';
import type { Plan } from '../compile/compile.js';
import type { StartedStep } from './lifecycle.js';

/**
 * The stages a part runs through and the plan they were compiled from, as one unit: a model
 * deploy replaces the whole unit between two parts. A part takes the pipeline current when it
 * starts and keeps it to its result (its record names the model that judged it); a replaced
 * pipeline is closed once its last part is done, so no part loses its stages mid-way.
 */
export class Pipeline {
  readonly plan: Plan;
  readonly stages: readonly StartedStep<StageInstance>[];
  #users = 0;
  #retired = false;
  #closing: Promise<void> | undefined;
  #idle: (() => void)[] = [];

  constructor(plan: Plan, stages: readonly StartedStep<StageInstance>[]) {
    this.plan = plan;
    this.stages = stages;
  }

  /** Parts running on it now. */
  get users(): number {
    return this.#users;
  }

  /** Holds the stages open for one part; the function returned lets go (once). */
  acquire(): () => void {
    this.#users++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#users--;
      if (this.#users === 0) for (const f of this.#idle.splice(0)) f();
    };
  }

  /**
   * No new part takes it; closes the stages upstream first once the parts on it are done, or after
   * `waitMs` (a stage call that outlived its budget can keep a part for long: the stages' own close
   * is bounded and lets a running model call finish). Idempotent.
   */
  retire(waitMs: number): Promise<void> {
    this.#retired = true;
    return (this.#closing ??= (async () => {
      if (this.#users > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, waitMs);
          this.#idle.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      for (const s of this.stages) await s.close();
    })());
  }

  get retired(): boolean {
    return this.#retired;
  }
}
