import { EventEmitter } from 'node:events';
import type { Health, Logger } from './contract.js';
import type { InspectionResult } from './result.js';
import { compileStationFile, type Plan } from './compile/compile.js';
import { startStation, type StartedStation } from './execute/lifecycle.js';
import { FrameLoop, type RunSummary } from './execute/loop.js';
import { SinkDispatcher, type DeliveryEvent } from './execute/sinks.js';
import { builtinRegistry } from './registry/builtins.js';
import type { Registry } from './registry/registry.js';

export type { RunSummary } from './execute/loop.js';
export type { DeliveryEvent } from './execute/sinks.js';

export interface StationEventMap {
  /** A part's final result, after the critical sinks had it. */
  result: [InspectionResult];
  /** A frame the loop could not take; its `error` result still went to the sinks. */
  drop: [InspectionResult];
  /** A background sink finished with a result (delivered, spooled or failed). */
  delivery: [DeliveryEvent];
}

/**
 * The composition root: compile -> start (downstream first) -> run -> stop
 * (drain) -> close (upstream first). Each transition happens once; `close()`
 * is safe to call twice and from a signal handler while `run()` drains.
 */
export class Station extends EventEmitter<StationEventMap> {
  readonly plan: Plan;
  readonly #log: Logger;
  #started: { started: StartedStation; close: () => Promise<void> } | undefined;
  #sinks: SinkDispatcher | undefined;
  #loop: FrameLoop | undefined;
  #running: Promise<RunSummary> | undefined;
  #closing: Promise<void> | undefined;
  #stopRequested = false;

  constructor(plan: Plan, log: Logger) {
    super();
    this.plan = plan;
    this.#log = log.child({ station: plan.settings.id });
  }

  static async open(file: string, log: Logger, registry: Registry = builtinRegistry()): Promise<Station> {
    return new Station(await compileStationFile(file, registry), log);
  }

  /** Starts every step, downstream first; bounded by the station's init time-out per step. */
  async start(): Promise<void> {
    if (this.#started !== undefined) return;
    if (this.#closing !== undefined) throw new Error('station is closed');
    const t0 = Date.now();
    this.#started = await startStation(this.plan, this.#log);
    const { settings } = this.plan;
    this.#sinks = new SinkDispatcher(this.#started.started.sinks, {
      timeoutMs: settings.sinkTimeoutMs,
      laneSize: settings.sinkQueueSize,
      log: this.#log,
      onDelivery: (e) => this.emit('delivery', e),
    });
    for (const sink of this.#started.started.sinks) await sink.instance.started?.();
    this.#log.info({ ms: Date.now() - t0 }, 'station started');
  }

  /** Inspects frames until the source ends, `maxFrames` arrived, or `stop()`; resolves after the drain and sink flush. */
  run(opts: { maxFrames?: number } = {}): Promise<RunSummary> {
    return (this.#running ??= this.#run(opts));
  }

  async #run(opts: { maxFrames?: number }): Promise<RunSummary> {
    await this.start();
    const { source, stages } = this.#started!.started;
    const sinks = this.#sinks!;
    this.#loop = new FrameLoop({
      plan: this.plan,
      source,
      stages,
      sinks,
      log: this.#log,
      hooks: { onResult: (r) => this.emit('result', r), onDrop: (r) => this.emit('drop', r) },
    });
    if (this.#stopRequested) this.#loop.stop(); // a signal that came while the steps were starting
    const summary = await this.#loop.run(opts);
    await sinks.flush(this.plan.settings.closeTimeoutMs);
    this.#log.info({ summary }, 'station run ended');
    return summary;
  }

  /** The worst of the steps' health, with each step that reports one; `ok` before the start. */
  health(): { readonly status: Health['status']; readonly steps: Readonly<Record<string, Health>> } {
    const steps: Record<string, Health> = {};
    for (const sink of this.#started?.started.sinks ?? []) {
      const h = sink.instance.health?.();
      if (h !== undefined) steps[sink.step.name] = h;
    }
    const all = Object.values(steps).map((h) => h.status);
    return { status: all.includes('down') ? 'down' : all.includes('degraded') ? 'degraded' : 'ok', steps };
  }

  /** Stops taking frames; `run()` then drains what is in flight and resolves. */
  stop(): void {
    if (this.#stopRequested) return;
    this.#stopRequested = true;
    this.#loop?.stop();
    for (const sink of this.#started?.started.sinks ?? []) {
      sink.instance.stopping?.().catch((err: unknown) => this.#log.warn({ err, sink: sink.step.name }, 'sink could not prepare for the stop'));
    }
  }

  /** Stops, waits for the drain, then closes every step upstream first. Idempotent. */
  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      this.stop();
      await this.#running?.catch(() => undefined);
      await this.#started?.close();
    })());
  }
}
