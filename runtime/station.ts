import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { DEPLOYMENT_RECORDS_SERVICE, EXTRA_SAMPLES_SERVICE, isDeploymentRecords, isExtraSamples, type EncodedImage, type FrameInput, type Health, type Logger, type RawImage } from './contract.js';
import { LinegateError, messageOf } from './errors.js';
import type { InspectionResult } from './result.js';
import { compileStationFile, type Plan } from './compile/compile.js';
import { ModelDeployer, type DeployHost } from './deploy/deployer.js';
import type { CalibrationChoice, DeployReport, ModelControl, ModelsStatus, PackageFiles, ShadowStatus } from './deploy/types.js';
import { startStation, type StartedStation } from './execute/lifecycle.js';
import { Pipeline } from './execute/pipeline.js';
import { FrameLoop } from './execute/loop.js';
import { buildResult } from './execute/outcome.js';
import { Slots } from './execute/slots.js';
import { runStages } from './execute/stages.js';
import { SinkDispatcher, type DeliveryEvent } from './execute/sinks.js';
import { STEPS_UP, StationStateError, canMove, type StationState } from './execute/station-state.js';
import type { RunSummary } from './execute/tally.js';
import { hungAfterMs } from './config/station-schema.js';
import { builtinRegistry } from './registry/builtins.js';
import type { Registry } from './registry/registry.js';

export type { RunSummary } from './execute/tally.js';
export type { DeliveryEvent } from './execute/sinks.js';
export type { StationState } from './execute/station-state.js';

export interface StationEventMap {
  /** A part's final result, after the critical sinks had it. */
  result: [InspectionResult];
  /** A frame the loop could not take; its `error` result still went to the sinks. */
  drop: [InspectionResult];
  /** A background sink finished with a result (delivered, spooled or failed). */
  delivery: [DeliveryEvent];
  /** The station moved from one state to the next (see execute/station-state.ts). */
  state: [to: StationState, from: StationState];
  /** The active model or the shadow changed (a deploy, a rollback, a shadow start or stop, new shadow counts). */
  model: [ModelsStatus];
}

/** How the station is doing: the worst of the frame loop's health and the steps'. */
export interface StationHealth {
  readonly status: Health['status'];
  readonly state: StationState;
  /** The frame loop's own health: drops, hung stage calls, what is in flight and queued. */
  readonly frames: Health;
  /** Each step that reports a health of its own (the sinks), by step name. */
  readonly steps: Readonly<Record<string, Health>>;
}

const WORST: readonly Health['status'][] = ['down', 'degraded', 'ok'];

/**
 * The composition root: compile -> start (downstream first) -> run -> stop
 * (drain) -> close (upstream first). Its life is one state machine (see
 * execute/station-state.ts) moved by `#moveTo` alone; `close()` is safe to call
 * twice, before `start()`, during it, and from a signal handler while `run()`
 * drains.
 */
export class Station extends EventEmitter<StationEventMap> implements ModelControl {
  /** The plan compiled from the station file: a deploy replaces the model step's part of it, never the rest. */
  readonly #filePlan: Plan;
  readonly #log: Logger;
  /** The stages every new part starts on, and the plan they came from. */
  #pipeline: Pipeline | undefined;
  #deployer: ModelDeployer | undefined;
  /** The last frame of the line that got a verdict: a deploy's warm-up input. */
  #lastImage: EncodedImage | RawImage | undefined;
  #state: StationState = 'NULL';
  #started: { started: StartedStation; close: () => Promise<void> } | undefined;
  #sinks: SinkDispatcher | undefined;
  #loop: FrameLoop | undefined;
  #starting: Promise<void> | undefined;
  #running: Promise<RunSummary> | undefined;
  #closing: Promise<void> | undefined;
  #stopRequested = false;
  /** On-demand inspections (inspectOnce): one slot of their own, apart from the frame loop's. */
  #oneOff: Slots | undefined;
  #oneOffSequence = 0;

  constructor(plan: Plan, log: Logger) {
    super();
    this.#filePlan = plan;
    this.#log = log.child({ station: plan.settings.id });
  }

  /** The plan in effect: the station file's, with the model step as the last deploy or rollback left it. */
  get plan(): Plan {
    return this.#pipeline?.plan ?? this.#filePlan;
  }

  static async open(file: string, log: Logger, registry: Registry = builtinRegistry()): Promise<Station> {
    return new Station(await compileStationFile(file, registry), log);
  }

  get state(): StationState {
    return this.#state;
  }

  /**
   * Calls every listener of `event`, each on its own: a listener that throws (or whose promise
   * rejects) is logged with the event name and the others still run, so no listener can stop a
   * part from being settled or a sink lane from moving.
   */
  override emit<K extends keyof StationEventMap>(event: K, ...args: StationEventMap[K]): boolean {
    const listeners = this.rawListeners(event) as ((...a: StationEventMap[K]) => unknown)[];
    for (const listener of listeners) {
      try {
        const r = listener.apply(this, args);
        if (r instanceof Promise) r.catch((err: unknown) => this.#listenerFailed(event, err));
      } catch (err) {
        this.#listenerFailed(event, err);
      }
    }
    return listeners.length > 0;
  }

  /** Starts every step, downstream first (each bounded by the init time-out), then tells the sinks. Memoised. */
  start(): Promise<void> {
    if (this.#state === 'NULL') this.#starting = this.#start();
    else if (this.#starting === undefined || !(this.#state === 'STARTING' || STEPS_UP.includes(this.#state))) {
      return Promise.reject(new StationStateError(this.#state, 'STARTING', 'start'));
    }
    return this.#starting;
  }

  /** Inspects frames until the source ends, `maxFrames` arrived, or `stop()`; resolves after the drain and sink flush. */
  run(opts: { maxFrames?: number } = {}): Promise<RunSummary> {
    // A run asked for before close() is drained by it; one asked for after would race the closing steps.
    if (this.#running === undefined && this.#closing !== undefined) return Promise.reject(new StationStateError(this.#state, 'PLAYING', 'run: close() was called'));
    return (this.#running ??= this.#run(opts));
  }

  /** Stops taking frames; `run()` then drains what is in flight and resolves. Before the run starts, the run takes none. */
  stop(): void {
    this.#stopRequested = true;
    this.#loop?.stop();
  }

  /** Stops, waits for the start and the drain, then closes every step upstream first. Idempotent. */
  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  /**
   * Inspects one image now, outside the frame loop: the compiled stages under the cycle budget and
   * the result built as the loop builds it, but no sink (no PLC, no queue) hears of it and no
   * station event is emitted. Only while the station is READY or PLAYING; one at a time, in a slot
   * of its own that a stage call outliving its budget keeps taken until it returns (an ONNX run
   * cannot be cancelled): a second call meanwhile is refused with LG_ERR_API_BUSY.
   */
  async inspectOnce(image: EncodedImage | RawImage, opts: { readonly partId?: string; readonly ref?: string; readonly signal?: AbortSignal } = {}): Promise<InspectionResult> {
    const state = this.#state;
    if ((state !== 'READY' && state !== 'PLAYING') || this.#started === undefined) {
      throw new LinegateError('LG_ERR_API_UNAVAILABLE', ['inspection', `the station is ${state}`]);
    }
    const settings = this.plan.settings;
    this.#oneOff ??= new Slots({ size: 1, hungAfterMs: hungAfterMs(settings), log: this.#log });
    if (this.#oneOff.free === 0) throw new LinegateError('LG_ERR_API_BUSY', ['inspection', 'another on-demand inspection is running']);
    const slot = this.#oneOff.take();
    const pipeline = this.#pipeline!;
    const release = pipeline.acquire();
    try {
      const arrivedAt = performance.now();
      const sequence = this.#oneOffSequence++;
      const ref = opts.ref ?? 'api:inspect';
      const input: FrameInput = { ref, image };
      const frame = { ...input, partId: opts.partId ?? `${settings.id}-inspect-${sequence}`, sequence, capturedAt: new Date() };
      const outcome = await runStages({ frame, arrivedAt, stages: pipeline.stages, stationId: settings.id, cycleBudgetMs: settings.cycleBudgetMs, slot, log: this.#log, ...(opts.signal === undefined ? {} : { signal: opts.signal }) });
      const result = buildResult(pipeline.plan, frame, outcome, performance.now() - arrivedAt);
      // Not the station's source: the record says the part came through the API.
      return { ...result, source: { step: 'api', plugin: 'linegate/inspect', ref } };
    } finally {
      release();
      slot.release();
    }
  }

  /** The active model, its history, thresholds and calibration, and the shadow (before the start: no model is active yet). */
  models(): ModelsStatus {
    // Before the stages are up (or when they could not start) no model is serving yet.
    if (this.#deployer === undefined || this.#pipeline === undefined) {
      return { station: this.plan.settings.id, active: null, history: [], canRollback: false, thresholds: {}, calibration: { file: null, status: 'none', madeFor: null }, shadow: { state: 'off' } };
    }
    return this.#deployer.models();
  }

  /** See ModelControl (runtime/deploy/types.ts): checked and warmed up beside the serving model, switched between two parts. */
  async deployModel(files: PackageFiles, o: { readonly by: string; readonly calibration?: CalibrationChoice; readonly signal?: AbortSignal }): Promise<DeployReport> {
    return this.#deployerFor('deploy').deployModel(files, o);
  }

  async rollbackModel(o: { readonly by: string; readonly signal?: AbortSignal }): Promise<DeployReport> {
    return this.#deployerFor('roll back').rollbackModel(o);
  }

  async startShadow(files: PackageFiles, o: { readonly by: string; readonly signal?: AbortSignal }): Promise<ShadowStatus> {
    return this.#deployerFor('start a shadow').startShadow(files, o);
  }

  async stopShadow(o: { readonly by: string }): Promise<ShadowStatus> {
    return this.#deployerFor('stop the shadow').stopShadow(o);
  }

  #deployerFor(what: string): ModelDeployer {
    if (this.#deployer === undefined) throw new LinegateError('LG_ERR_DEPLOY_STATE', [what, this.#state]);
    return this.#deployer;
  }

  #deployHost(): DeployHost {
    return {
      log: this.#log,
      running: () => (STEPS_UP.includes(this.#state) ? this.#started?.started : undefined),
      canDeploy: () => (this.#state === 'READY' || this.#state === 'PLAYING' ? true : this.#state),
      current: () => this.#pipeline!,
      swap: (next) => (this.#pipeline = next),
      lastImage: () => this.#lastImage,
      loaded: () => this.#loop?.saturated ?? false,
      samples: () => [...this.services(EXTRA_SAMPLES_SERVICE).values()].find(isExtraSamples),
      records: () => [...this.services(DEPLOYMENT_RECORDS_SERVICE).values()].find(isDeploymentRecords),
      changed: () => void this.emit('model', this.models()),
    };
  }

  /** The services steps that are up offer under `name` (a manifest's `provides`), by step name: e.g. the HTTP routes of an HTTP source. */
  services(name: string): ReadonlyMap<string, unknown> {
    const out = new Map<string, unknown>();
    const started = this.#started?.started;
    if (started === undefined || !STEPS_UP.includes(this.#state)) return out;
    for (const step of [started.source, ...started.stages, ...started.sinks]) {
      if (!(step.step.plugin.manifest.provides ?? []).includes(name)) continue;
      // The raw instance: the steps are up, and the closed-guard would make this sync call a promise.
      const service = step.raw.service?.(name);
      if (service !== undefined) out.set(step.step.name, service);
    }
    return out;
  }

  /** Results waiting in each background sink's lane, by step name (empty before the start). */
  laneDepths(): Readonly<Record<string, number>> {
    return this.#sinks?.depths() ?? {};
  }

  /** `down` with the state unless the steps are up; then the worst of the frame loop and the steps. */
  health(): StationHealth {
    const state = this.#state;
    if (!STEPS_UP.includes(state) || this.#started === undefined) {
      return { status: 'down', state, frames: { status: 'down', detail: `the station is ${state}` }, steps: {} };
    }
    const frames = this.#loop?.health() ?? { status: 'ok', detail: 'no frame taken yet' };
    const steps: Record<string, Health> = {};
    for (const sink of this.#started.started.sinks) {
      try {
        // The raw instance: the state says the step is up, and the closed-guard would turn this sync call into a promise.
        const h = sink.raw.health?.();
        if (h !== undefined) steps[sink.step.name] = h;
      } catch (err) {
        steps[sink.step.name] = { status: 'down', detail: `health() failed: ${messageOf(err)}` };
      }
    }
    const all = [frames.status, ...Object.values(steps).map((h) => h.status)];
    return { status: WORST.find((s) => all.includes(s)) ?? 'ok', state, frames, steps };
  }

  /** The one place the state changes; a move the machine does not allow is refused. */
  #moveTo(to: StationState, what: string): void {
    const from = this.#state;
    if (!canMove(from, to)) throw new StationStateError(from, to, what);
    this.#state = to;
    this.#log.debug({ from, to }, `station ${to}`);
    this.emit('state', to, from);
  }

  async #close(): Promise<void> {
    this.stop();
    // From NULL the move is synchronous, so no start() can slip in between.
    if (this.#state !== 'NULL') {
      await this.#starting?.catch(() => undefined);
      await this.#running?.catch(() => undefined);
      // Started without a run: the sinks were told the station is up, so they hear it go down too.
      await this.#sinks?.stopping();
      // An on-demand inspection still running: the stages must not be closed under it (bounded).
      await this.#oneOff?.idle(this.plan.settings.closeTimeoutMs);
    }
    this.#moveTo('CLOSING', 'close');
    // Upstream first: the source, then whatever stages a deploy left (a change in progress, a shadow, replaced ones), then the rest.
    await this.#started?.started.source.close();
    await this.#deployer?.close();
    await this.#pipeline?.retire(0);
    await this.#started?.close();
    this.#moveTo('CLOSED', 'close');
  }

  async #start(): Promise<void> {
    this.#moveTo('STARTING', 'start');
    const { deployer, plan } = await ModelDeployer.open(this.#filePlan, this.#deployHost()).catch((e: unknown) => {
      this.#moveTo('FAILED', 'fail');
      throw e;
    });
    this.#deployer = deployer;
    const cal = plan.calibrationUse;
    if (cal?.status === 'mismatch') {
      // Allowed by the station file, but never silent: the thresholds were chosen for another model.
      this.#log.warn({ calibration: cal.file, madeFor: cal.madeFor, models: plan.models?.map((m) => ({ step: m.step, name: m.model.name, version: m.model.version, sha256: m.model.sha256 })) }, 'the calibration was made for another model; applied because calibration.allowModelMismatch is set');
    }
    const t0 = Date.now();
    const { settings } = plan;
    try {
      this.#started = await startStation(plan, this.#log);
      this.#pipeline = new Pipeline(plan, this.#started.started.stages);
      this.#sinks = new SinkDispatcher(this.#started.started.sinks, {
        timeoutMs: settings.sinkTimeoutMs,
        laneSize: settings.sinkQueueSize,
        logIntervalMs: settings.healthWindowMs,
        log: this.#log,
        onDelivery: (e) => this.emit('delivery', e),
      });
      await this.#sinks.started(settings.initTimeoutMs);
    } catch (e) {
      await this.#sinks?.stopping();
      await this.#started?.close();
      this.#moveTo('FAILED', 'fail');
      throw e;
    }
    this.#moveTo('READY', 'start');
    // Into the history's own queue (ordered with the results after it); a start never waits on the history.
    void this.#deployer?.started();
    this.#log.info({ ms: Date.now() - t0 }, 'station started');
  }

  async #run(opts: { maxFrames?: number }): Promise<RunSummary> {
    await this.start();
    this.#moveTo('PLAYING', 'run');
    const { source } = this.#started!.started;
    const sinks = this.#sinks!;
    const loop = new FrameLoop({
      plan: this.plan,
      source,
      pipeline: () => this.#pipeline!,
      sinks,
      log: this.#log,
      hooks: {
        onResult: (r) => {
          this.#deployer?.noteResult(r);
          this.emit('result', r);
        },
        onDrop: (r) => this.emit('drop', r),
        onStopping: () => this.#intakeEnded(),
        onJudged: (r, frame) => {
          this.#lastImage = frame.image;
          this.#deployer?.offerShadow(r, frame);
        },
      },
    });
    this.#loop = loop;
    if (this.#stopRequested) loop.stop(); // a stop that came before the run: it takes no frame
    try {
      const summary = await loop.run(opts);
      this.#log.info({ summary }, 'station run ended');
      return summary;
    } finally {
      if (this.#state === 'PLAYING') this.#intakeEnded();
      await sinks.stopping();
      await sinks.flush(this.plan.settings.closeTimeoutMs);
      this.#moveTo('DRAINED', 'end the drain');
    }
  }

  /** The loop takes no more frames: the sinks hear it now (the PLC "not ready"), before the drain, so a last trigger still gets its verdict. */
  #intakeEnded(): void {
    this.#moveTo('DRAINING', 'drain');
    void this.#sinks!.stopping();
  }

  #listenerFailed(event: string, err: unknown): void {
    this.#log.error({ err, event }, `a ${event} listener failed; the station goes on`);
  }
}
