import type { FrameInput, Logger } from '../contract.js';
import { LinegateError } from '../errors.js';
import type { InspectionResult } from '../result.js';
import { withTimeout } from './bounded.js';
import type { Durability } from './sinks.js';

/**
 * Tells the source that a part's result is final (a hot folder moves its file). Bounded by `ms`; a
 * failure is logged, never thrown: the part already has its result, whatever the source does.
 */
export async function settlePart(frame: Pick<FrameInput, 'settle'>, result: InspectionResult, ms: number, log: Logger): Promise<void> {
  if (frame.settle === undefined) return;
  try {
    // Called on the frame (or its image-less copy), as the contract declares settle a method of it.
    await withTimeout(frame.settle(result), ms, () => new Error(`settling part ${result.partId} timed out`));
  } catch (err) {
    log.error({ err, partId: result.partId }, 'the source could not settle the part');
  }
}

/** What the settler tells the frame loop's health. */
export interface SettleHealth {
  /** Parts whose result the durable sinks do not all hold yet. */
  readonly waiting: number;
  /** Parts never settled since the start: a durable sink could not take their result. */
  readonly kept: number;
  /** Parts are being kept now (since the last one a durable sink could not take, no result was durable). */
  readonly keeping: boolean;
}

/**
 * "Durable before acknowledged": a part is settled with its source only once every durable sink
 * holds its result, so a crash at any moment loses nothing. A part a durable sink could not take is
 * never settled: the source keeps it (a hot folder leaves the file in processing, and inspects it
 * again at its next start, under the same result id). That state is logged once when it starts and
 * once when results are durable again, not once per part. The number of parts waiting is what the
 * frame loop's back-pressure counts.
 */
export class Settler {
  readonly #log: Logger;
  readonly #settleMs: number;
  readonly #onChange: () => void;
  readonly #waiting = new Set<Promise<void>>();
  /** Past the drain's deadline: a result that becomes durable later no longer settles its part. */
  #closed = false;
  #kept = 0;
  #keeping: { readonly since: string; count: number } | undefined;

  constructor(opts: { log: Logger; settleMs: number; onChange: () => void }) {
    this.#log = opts.log;
    this.#settleMs = opts.settleMs;
    this.#onChange = opts.onChange;
  }

  get waiting(): number {
    return this.#waiting.size;
  }

  health(): SettleHealth {
    return { waiting: this.#waiting.size, kept: this.#kept, keeping: this.#keeping !== undefined };
  }

  /** Settles the part once `durable` says every durable sink holds its result; never waits itself. */
  settle(frame: Pick<FrameInput, 'settle'>, result: InspectionResult, durable: Promise<Durability>): void {
    const task: Promise<void> = (async () => {
      const held = await durable;
      if (frame.settle === undefined) return; // nothing to keep or to tell: the sink's own failure was logged
      if (this.#closed) return this.#keep(result, { ok: false, missing: [{ sink: '(all durable sinks)', why: 'the station closed before they held it' }] });
      if (!held.ok) return this.#keep(result, held);
      this.#durableAgain();
      await settlePart(frame, result, this.#settleMs, this.#log);
    })()
      .catch((err: unknown) => this.#log.error({ err, partId: result.partId }, 'part could not be settled'))
      .finally(() => {
        this.#waiting.delete(task);
        this.#onChange();
      });
    this.#waiting.add(task);
  }

  /** Waits for every part still waiting, at most `ms`; past it the rest are not settled (their source keeps them). */
  async idle(ms: number): Promise<void> {
    const all = (async () => {
      while (this.#waiting.size > 0) await Promise.all([...this.#waiting]);
    })();
    await withTimeout(all, ms, () => new Error(`settles did not finish within ${ms} ms`)).catch(() => {
      this.#closed = true;
      this.#log.error(
        { code: 'LG_ERR_SINK_NOT_DURABLE', parts: this.#waiting.size, ms },
        `${this.#waiting.size} part(s) were not yet held by every durable sink ${ms} ms into the close: they are not settled, and their source keeps them for its next run`,
      );
    });
  }

  #keep(result: InspectionResult, held: Durability): void {
    this.#kept++;
    if (this.#keeping !== undefined) {
      this.#keeping.count++;
      return;
    }
    this.#keeping = { since: new Date().toISOString(), count: 1 };
    const sinks = held.missing.map((m) => m.sink).join(', ');
    const why = held.missing.map((m) => `${m.sink}: ${m.why}`).join('; ');
    const err = new LinegateError('LG_ERR_SINK_NOT_DURABLE', [result.partId, sinks, why]);
    this.#log.error({ err, code: err.code, partId: result.partId, missing: held.missing }, `${err.message}; further parts kept are counted, not logged, until results are durable again`);
  }

  #durableAgain(): void {
    const k = this.#keeping;
    if (k === undefined) return;
    this.#keeping = undefined;
    this.#log.info({ kept: k.count, since: k.since }, `the durable sinks hold results again; ${k.count} part(s) since ${k.since} were left with their source for its next run`);
  }
}
