import type { EncodedImage, Logger, PluginContext, RawImage, SinkInstance } from '../contract.js';
import { LinegateError, messageOf } from '../errors.js';
import type { Delivery, InspectionResult } from '../result.js';
import type { PlannedStep } from '../compile/compile.js';
import { Throttle } from '../observability/rate.js';
import { sleep, withTimeout } from './bounded.js';
import { withFrameHash } from './outcome.js';
import { SinkFaults } from './sink-faults.js';

export interface StartedSink {
  readonly step: PlannedStep;
  readonly instance: SinkInstance;
  readonly ctx: PluginContext;
}

export interface DeliveryEvent {
  readonly resultId: string;
  readonly sink: string;
  readonly delivery: Delivery;
}

type Image = EncodedImage | RawImage;

/** Whether every durable sink holds a result; the sinks that do not, and why. */
export interface Durability {
  readonly ok: boolean;
  readonly missing: readonly { readonly sink: string; readonly why: string }[];
}

/** A result handed to the sinks: the record as final (critical sinks done), and when the durable sinks hold it. */
export interface Dispatched {
  readonly final: InspectionResult;
  /** Resolves (never rejects) once every durable sink has taken the result or failed to. */
  readonly durable: Promise<Durability>;
}

interface Queued {
  readonly result: InspectionResult;
  readonly image: Image | undefined;
  /** For a durable sink: told how the write ended. */
  readonly done: ((d: Delivery) => void) | undefined;
}

interface Lane {
  readonly sink: StartedSink;
  readonly durable: boolean;
  readonly queue: Queued[];
  /** Image bytes held by the queue: a stalled sink must not hold the camera's output without bound. */
  imageBytes: number;
  running: Promise<void> | undefined;
  /** Results refused since the last overflow line, the last of them, and the line itself (one per interval). */
  refused: number;
  lastRefused: { readonly resultId: string; readonly behind: number } | undefined;
  readonly overflowLine: Throttle;
}

export interface DeliverOptions {
  /** The critical sinks get nothing (the bounded path for drops is full): each is recorded `skipped` with LG_ERR_SINK_OVERFLOW. */
  readonly skipCritical?: boolean;
}

/** Past this, a lane keeps the results but lets their images go (the result matters more than the picture). */
const LANE_IMAGE_BYTES = 256 * 1024 * 1024;

const HELD: Durability = Object.freeze({ ok: true, missing: [] });

/** Whether a sink step promises durability: its manifest's `durable`, decided from its config. */
export function isDurable(step: PlannedStep): boolean {
  const d = step.plugin.manifest.durable;
  return typeof d === 'function' ? d(step.config) === true : d === true;
}

const isKept = (d: Delivery): boolean => d.status === 'delivered' || d.status === 'spooled';

/**
 * Failures after which the sink kept nothing of the write and will take it once its disk (or its
 * spool's room) is back: the lane holds the result and tries again rather than losing it. The
 * lane's bound (laneSize) still holds, so memory stays bounded however long the fault lasts.
 */
const WAIT_AND_RETRY: ReadonlySet<string> = new Set(['LG_ERR_DISK_FULL', 'LG_ERR_QUEUE_SPOOL_FULL']);
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5000;

/**
 * Hands each final result to the sinks. Critical sinks (the PLC) are awaited
 * inside the part's cycle, each write bounded; the others get the result
 * through their own bounded lane and never slow the cycle down. A lane that is
 * full refuses the result with a counted overflow, logged once per interval:
 * memory stays bounded when a background sink stalls.
 */
export class SinkDispatcher {
  readonly #all: readonly StartedSink[];
  readonly #critical: StartedSink[];
  /** Critical sinks that promise durability: their outcome, known in the cycle, is part of the durable wait. */
  readonly #criticalDurable: ReadonlySet<StartedSink>;
  readonly #lanes: Lane[];
  readonly #timeoutMs: number;
  readonly #laneSize: number;
  readonly #laneImageBytes: number;
  readonly #log: Logger;
  readonly #onDelivery: (e: DeliveryEvent) => void;
  readonly #faults = new Map<string, SinkFaults>();
  #overflows = 0;
  #stopping: Promise<void> | undefined;
  /** Set once the final flush gave up: lanes stop waiting for a full disk and report what is left as failed. */
  readonly #giveUp = new AbortController();

  constructor(
    sinks: readonly StartedSink[],
    opts: { timeoutMs: number; laneSize: number; laneImageBytes?: number; logIntervalMs?: number; log: Logger; onDelivery: (e: DeliveryEvent) => void },
  ) {
    this.#all = sinks;
    this.#critical = sinks.filter((s) => s.step.critical);
    this.#criticalDurable = new Set(this.#critical.filter((s) => isDurable(s.step)));
    this.#timeoutMs = opts.timeoutMs;
    this.#laneSize = opts.laneSize;
    this.#laneImageBytes = opts.laneImageBytes ?? LANE_IMAGE_BYTES;
    this.#log = opts.log;
    this.#onDelivery = opts.onDelivery;
    const interval = opts.logIntervalMs ?? 5000;
    this.#lanes = sinks
      .filter((s) => !s.step.critical)
      .map((sink) => {
        const lane: Lane = { sink, durable: isDurable(sink.step), queue: [], imageBytes: 0, running: undefined, refused: 0, lastRefused: undefined, overflowLine: new Throttle(interval, () => this.#overflowLine(lane)) };
        return lane;
      });
    for (const s of sinks) this.#faults.set(s.step.name, new SinkFaults(s.step.name, opts.log));
  }

  get overflows(): number {
    return this.#overflows;
  }

  /** Results waiting in each background sink's lane, by step name (for metrics). */
  depths(): Record<string, number> {
    return Object.fromEntries(this.#lanes.map((l) => [l.sink.step.name, l.queue.length]));
  }

  /** Tells every sink the station is up (e.g. the PLC "ready"); each call bounded by `ms`; the first failure is thrown. */
  async started(ms: number): Promise<void> {
    await Promise.all(this.#all.map((s) => this.#call(s, 'started', ms, true)));
  }

  /** Tells every sink the station takes no more frames (e.g. the PLC "not ready"); once, each call bounded, failures logged. */
  stopping(): Promise<void> {
    return (this.#stopping ??= Promise.all(this.#all.map((s) => this.#call(s, 'stopping', this.#timeoutMs, false))).then(() => undefined));
  }

  /** Writes to the critical sinks, records how each went, then queues the final record for the others. */
  async deliver(result: InspectionResult, image?: Image, opts: DeliverOptions = {}): Promise<InspectionResult> {
    return (await this.dispatch(result, image, opts)).final;
  }

  /**
   * `deliver`, and a promise that resolves once every durable sink holds the result (or could not
   * take it): what a source's settle must wait for. Each write is bounded by the sink time-out, and
   * a lane never holds more than `laneSize` results, so the wait is bounded too.
   */
  async dispatch(result: InspectionResult, image?: Image, opts: DeliverOptions = {}): Promise<Dispatched> {
    const delivery: Record<string, Delivery> = {};
    if (opts.skipCritical === true) {
      for (const s of this.#critical) delivery[s.step.name] = { status: 'skipped', critical: true, error: 'LG_ERR_SINK_OVERFLOW' };
    } else {
      const outcomes = await Promise.all(this.#critical.map((s) => this.#write(s, result, image, 0)));
      this.#critical.forEach((s, i) => (delivery[s.step.name] = outcomes[i]!));
    }
    for (const lane of this.#lanes) {
      if (lane.queue.length >= this.#laneSize) {
        this.#overflows++;
        lane.refused++;
        lane.lastRefused = { resultId: result.resultId, behind: lane.queue.length };
        lane.overflowLine.note();
        delivery[lane.sink.step.name] = { status: 'skipped', critical: false, error: 'LG_ERR_SINK_OVERFLOW' };
      } else {
        delivery[lane.sink.step.name] = { status: 'pending', critical: false };
      }
    }
    // The content address is added here, once the PLC has its verdict: the history, the queues and the API all get it.
    const final: InspectionResult = Object.freeze({ ...(await withFrameHash(result, image)), delivery });
    const waits: Promise<Durability>[] = [];
    for (const s of this.#criticalDurable) waits.push(Promise.resolve(heldBy(s.step.name, delivery[s.step.name]!)));
    for (const lane of this.#lanes) {
      const pending = delivery[lane.sink.step.name]!.status === 'pending';
      if (!lane.durable) {
        if (pending) this.#enqueue(lane, final, image, undefined);
        continue;
      }
      if (!pending) {
        waits.push(Promise.resolve(heldBy(lane.sink.step.name, delivery[lane.sink.step.name]!)));
        continue;
      }
      waits.push(new Promise<Durability>((resolve) => this.#enqueue(lane, final, image, (d) => resolve(heldBy(lane.sink.step.name, d)))));
    }
    const durable = waits.length === 0 ? Promise.resolve(HELD) : Promise.all(waits).then(merge);
    return { final, durable };
  }

  /** Resolves when every lane is empty and each sink has flushed, or after `ms`. */
  async flush(ms: number): Promise<void> {
    const drain = Promise.all(
      this.#lanes.map(async (lane) => {
        while (lane.running !== undefined) await lane.running;
        await lane.sink.instance.flush?.();
      }),
    );
    await withTimeout(drain, ms, () => new Error(`sinks did not flush within ${ms} ms`)).catch((err: unknown) => {
      this.#giveUp.abort();
      this.#log.error({ err, pending: this.#lanes.map((l) => ({ sink: l.sink.step.name, results: l.queue.length })) }, 'sink flush timed out; undelivered results stay in the log above');
    });
    for (const lane of this.#lanes) lane.overflowLine.flush();
  }

  #enqueue(lane: Lane, result: InspectionResult, image: Image | undefined, done: Queued['done']): void {
    const keep = image !== undefined && lane.imageBytes + image.data.byteLength <= this.#laneImageBytes;
    if (image !== undefined && !keep) this.#log.warn({ sink: lane.sink.step.name, resultId: result.resultId, heldBytes: lane.imageBytes }, 'sink is far behind: this result goes to it without its image');
    if (keep) lane.imageBytes += image.data.byteLength;
    lane.queue.push({ result, image: keep ? image : undefined, done });
    lane.running ??= this.#drainLane(lane);
  }

  /** Writes a lane's results in order; nothing a listener does may stop it (a wedged lane would hold every later result). */
  async #drainLane(lane: Lane): Promise<void> {
    try {
      for (let next = lane.queue.shift(); next !== undefined; next = lane.queue.shift()) {
        const delivery = await this.#writeWaiting(lane, next);
        if (next.image !== undefined) lane.imageBytes -= next.image.data.byteLength;
        next.done?.(delivery);
        try {
          this.#onDelivery({ resultId: next.result.resultId, sink: lane.sink.step.name, delivery });
        } catch (err) {
          this.#log.error({ err, event: 'delivery', sink: lane.sink.step.name, resultId: next.result.resultId }, 'a delivery listener failed; the lane goes on');
        }
      }
    } finally {
      lane.running = undefined;
    }
  }

  /**
   * One write, held at the head of its lane while the sink says it kept nothing and will take it
   * later (a full disk): results behind it wait in order, the lane's bound still applies, and the
   * sink's fault is one log line, not one per try.
   */
  async #writeWaiting(lane: Lane, next: Queued): Promise<Delivery> {
    let waitMs = RETRY_FIRST_MS;
    for (;;) {
      const delivery = await this.#write(lane.sink, next.result, next.image, lane.queue.length);
      const code = delivery.error?.split(':', 1)[0];
      if (delivery.status !== 'failed' || code === undefined || !WAIT_AND_RETRY.has(code) || this.#giveUp.signal.aborted) return delivery;
      await sleep(waitMs, this.#giveUp.signal);
      waitMs = Math.min(RETRY_MAX_MS, waitMs * 2);
    }
  }

  #overflowLine(lane: Lane): void {
    const { refused, lastRefused } = lane;
    lane.refused = 0;
    if (refused === 0 || lastRefused === undefined) return;
    const name = lane.sink.step.name;
    const err = new LinegateError('LG_ERR_SINK_OVERFLOW', [name, lane.sink.step.plugin.manifest.id, lastRefused.behind, lastRefused.resultId]);
    const counts = refused === 1 ? '' : ` (with ${refused - 1} more refused since the last report)`;
    this.#log.error({ err, code: err.code, sink: name, refused, total: this.#overflows }, `${err.message}${counts}; ${this.#overflows} refused in all`);
  }

  /** A lifecycle call on one sink, bounded; `rethrow` for the ones the station cannot go on without. */
  async #call(sink: StartedSink, call: 'started' | 'stopping', ms: number, rethrow: boolean): Promise<void> {
    const fn = sink.instance[call];
    if (fn === undefined) return;
    const { name } = sink.step;
    try {
      await withTimeout(fn.call(sink.instance), ms, () => new Error(`sink "${name}" did not finish ${call}() within ${ms} ms`));
    } catch (err) {
      if (rethrow) throw err;
      this.#log.warn({ err, sink: name }, call === 'stopping' ? 'sink could not prepare for the stop' : `sink ${call}() failed`);
    }
  }

  async #write(sink: StartedSink, result: InspectionResult, image: Image | undefined, behind: number): Promise<Delivery> {
    const { name } = sink.step;
    const id = sink.step.plugin.manifest.id;
    try {
      const status = await withTimeout(
        sink.instance.write(result, sink.ctx, image, { behind }),
        this.#timeoutMs,
        () => new LinegateError('LG_ERR_SINK_TIMEOUT', [name, id, result.resultId, this.#timeoutMs], { step: name }),
      );
      this.#faults.get(name)?.ok();
      return { status: status ?? 'delivered', critical: sink.step.critical, at: new Date().toISOString() };
    } catch (e) {
      const err = e instanceof LinegateError ? e : new LinegateError('LG_ERR_SINK_FAILED', [name, id, result.resultId, messageOf(e)], { step: name, cause: e });
      this.#faults.get(name)?.failed(err, { resultId: result.resultId, partId: result.partId, critical: sink.step.critical });
      return { status: 'failed', critical: sink.step.critical, at: new Date().toISOString(), error: `${err.code}: ${err.message}` };
    }
  }
}

/** What one durable sink's delivery says about the result being held. */
function heldBy(sink: string, d: Delivery): Durability {
  return isKept(d) ? HELD : { ok: false, missing: [{ sink, why: d.error ?? d.status }] };
}

function merge(all: readonly Durability[]): Durability {
  const missing = all.flatMap((d) => d.missing);
  return missing.length === 0 ? HELD : { ok: false, missing };
}
