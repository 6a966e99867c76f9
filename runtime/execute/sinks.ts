import type { EncodedImage, Logger, PluginContext, RawImage, SinkInstance } from '../contract.js';
import { LinegateError, messageOf } from '../errors.js';
import type { Delivery, InspectionResult } from '../result.js';
import type { PlannedStep } from '../compile/compile.js';
import { withTimeout } from './bounded.js';

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

interface Lane {
  readonly sink: StartedSink;
  readonly queue: { readonly result: InspectionResult; readonly image: Image | undefined }[];
  /** Image bytes held by the queue: a stalled sink must not hold the camera's output without bound. */
  imageBytes: number;
  running: Promise<void> | undefined;
}

/** Past this, a lane keeps the results but lets their images go (the result matters more than the picture). */
const LANE_IMAGE_BYTES = 256 * 1024 * 1024;

/**
 * Hands each final result to the sinks. Critical sinks (the PLC) are awaited
 * inside the part's cycle, each write bounded; the others get the result
 * through their own bounded lane and never slow the cycle down. A lane that is
 * full refuses the result with a counted, logged overflow: memory stays bounded
 * when a background sink stalls.
 */
export class SinkDispatcher {
  readonly #critical: StartedSink[];
  readonly #lanes: Lane[];
  readonly #timeoutMs: number;
  readonly #laneSize: number;
  readonly #laneImageBytes: number;
  readonly #log: Logger;
  readonly #onDelivery: (e: DeliveryEvent) => void;
  #overflows = 0;

  constructor(sinks: readonly StartedSink[], opts: { timeoutMs: number; laneSize: number; laneImageBytes?: number; log: Logger; onDelivery: (e: DeliveryEvent) => void }) {
    this.#critical = sinks.filter((s) => s.step.critical);
    this.#lanes = sinks.filter((s) => !s.step.critical).map((sink) => ({ sink, queue: [], imageBytes: 0, running: undefined }));
    this.#timeoutMs = opts.timeoutMs;
    this.#laneSize = opts.laneSize;
    this.#laneImageBytes = opts.laneImageBytes ?? LANE_IMAGE_BYTES;
    this.#log = opts.log;
    this.#onDelivery = opts.onDelivery;
  }

  get overflows(): number {
    return this.#overflows;
  }

  /** Writes to the critical sinks, records how each went, then queues the final record for the others. */
  async deliver(result: InspectionResult, image?: Image): Promise<InspectionResult> {
    const delivery: Record<string, Delivery> = {};
    const outcomes = await Promise.all(this.#critical.map((s) => this.#write(s, result, image)));
    this.#critical.forEach((s, i) => (delivery[s.step.name] = outcomes[i]!));
    for (const lane of this.#lanes) {
      const name = lane.sink.step.name;
      if (lane.queue.length >= this.#laneSize) {
        this.#overflows++;
        const err = new LinegateError('LG_ERR_SINK_OVERFLOW', [name, lane.sink.step.plugin.manifest.id, lane.queue.length, result.resultId]);
        this.#log.error({ err, sink: name }, err.message);
        delivery[name] = { status: 'skipped', critical: false, error: err.code };
      } else {
        delivery[name] = { status: 'pending', critical: false };
      }
    }
    const final: InspectionResult = Object.freeze({ ...result, delivery });
    for (const lane of this.#lanes) {
      if (delivery[lane.sink.step.name]!.status === 'pending') this.#enqueue(lane, final, image);
    }
    return final;
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
      this.#log.error({ err, pending: this.#lanes.map((l) => ({ sink: l.sink.step.name, results: l.queue.length })) }, 'sink flush timed out; undelivered results stay in the log above');
    });
  }

  #enqueue(lane: Lane, result: InspectionResult, image: Image | undefined): void {
    const keep = image !== undefined && lane.imageBytes + image.data.byteLength <= this.#laneImageBytes;
    if (image !== undefined && !keep) this.#log.warn({ sink: lane.sink.step.name, resultId: result.resultId, heldBytes: lane.imageBytes }, 'sink is far behind: this result goes to it without its image');
    if (keep) lane.imageBytes += image.data.byteLength;
    lane.queue.push({ result, image: keep ? image : undefined });
    if (lane.running !== undefined) return;
    lane.running = (async () => {
      for (let next = lane.queue.shift(); next !== undefined; next = lane.queue.shift()) {
        const delivery = await this.#write(lane.sink, next.result, next.image);
        if (next.image !== undefined) lane.imageBytes -= next.image.data.byteLength;
        this.#onDelivery({ resultId: next.result.resultId, sink: lane.sink.step.name, delivery });
      }
      lane.running = undefined;
    })();
  }

  async #write(sink: StartedSink, result: InspectionResult, image: Image | undefined): Promise<Delivery> {
    const { name } = sink.step;
    const id = sink.step.plugin.manifest.id;
    try {
      const status = await withTimeout(
        sink.instance.write(result, sink.ctx, image),
        this.#timeoutMs,
        () => new LinegateError('LG_ERR_SINK_TIMEOUT', [name, id, result.resultId, this.#timeoutMs], { step: name }),
      );
      return { status: status ?? 'delivered', critical: sink.step.critical, at: new Date().toISOString() };
    } catch (e) {
      const err = e instanceof LinegateError ? e : new LinegateError('LG_ERR_SINK_FAILED', [name, id, result.resultId, messageOf(e)], { step: name, cause: e });
      this.#log.error({ err, sink: name, resultId: result.resultId, partId: result.partId, critical: sink.step.critical }, err.message);
      return { status: 'failed', critical: sink.step.critical, at: new Date().toISOString(), error: `${err.code}: ${err.message}` };
    }
  }
}
