/**
 * The plugin contract. Everything a plugin author needs is here, and this file
 * depends on no other runtime module (only on the result record's types and
 * on model-output.ts, the model-output part of this contract kept in a file
 * of its own), so a third-party plugin can be written against it alone.
 */
import type { z } from 'zod';
import type { Defect, InspectionResult, ModelRef, Reason, DeliveryStatus } from './result.js';
import type { ModelOutput } from './model-output.js';

export type {
  Activation,
  AnomalyDecode,
  ClassificationDecode,
  DecodeKind,
  DecodeSpec,
  InputTransform,
  ModelOutput,
  ModelTask,
  ModelThresholds,
  SegmentationDecode,
  SourceRect,
  YoloDecode,
} from './model-output.js';
export {
  TASK_OF_DECODE,
  areaToSource,
  boxToSource,
  identityTransform,
  modelOutputCaps,
  modelOutputOf,
  modelOutputPatch,
  pointToSource,
  tensorOf,
  toSourceX,
  toSourceY,
} from './model-output.js';

export type StageKind = 'preprocess' | 'model' | 'postprocess' | 'decision';
export type PluginKind = 'source' | StageKind | 'sink';

export const PLUGIN_KINDS: readonly PluginKind[] = ['source', 'preprocess', 'model', 'postprocess', 'decision', 'sink'];
export const STAGE_KINDS: readonly StageKind[] = ['preprocess', 'model', 'postprocess', 'decision'];

/** `<namespace>/<name>@<major>`; a breaking change makes a new id (`@2`) and leaves `@1` alone. */
export type PluginId = `${string}/${string}@${number}`;
export const PLUGIN_ID_PATTERN = /^[a-z0-9][a-z0-9-]*\/[a-z0-9][a-z0-9-]*@[1-9][0-9]*$/;

/**
 * What a step takes or gives (GStreamer "caps"). `type` names a slot of the
 * part record; `params` narrow it (e.g. a tensor's width). Two caps match when
 * their types are equal and every param both sides name is equal, or `*`.
 * `model/output` carries `task` and `decode` (see `modelOutputCaps`): the
 * model's task and the decode kind of its `ModelOutput`.
 */
export type CapsType = 'image/encoded' | 'image/raw' | 'tensor' | 'model/output' | 'findings' | 'decision';
export interface Caps {
  readonly type: CapsType;
  readonly params?: Readonly<Record<string, string | number | boolean>>;
}

/** The subset of pino's logger that plugins may use. */
export interface Logger {
  trace(obj: object | string, msg?: string): void;
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  fatal(obj: object | string, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export interface EncodedImage {
  readonly kind: 'encoded';
  readonly data: Buffer;
  /** File extension or MIME subtype when the source knows it (`jpeg`, `png`); decoders sniff the bytes anyway. */
  readonly format?: string;
}

export interface RawImage {
  readonly kind: 'raw';
  /** Interleaved 8-bit pixels, row-major, `channels` per pixel. */
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: 1 | 3 | 4;
  readonly colorOrder: 'GRAY' | 'RGB' | 'BGR' | 'RGBA';
}

export interface Tensor {
  readonly type: 'float32' | 'uint8' | 'int64' | 'int32' | 'bool';
  readonly dims: readonly number[];
  readonly data: Float32Array | Uint8Array | BigInt64Array | Int32Array;
}

/**
 * The PLC trigger a frame answers. Identity travels with the data, as a Kafka
 * record carries its key and offset: the sink that answers the PLC finds its
 * cycle by `id`, never by matching part ids.
 */
export interface TriggerRef {
  /** linegate's own id for this trigger: a restarted PLC's counter 1 is not the counter 1 before the restart. */
  readonly id: string;
  /** The PLC's TriggerCounter, echoed back with the verdict. */
  readonly counter: number;
  /** When linegate saw the trigger; the PLC's deadline runs from here. */
  readonly raisedAt: Date;
}

/** What a source yields. The runtime adds the sequence number and timestamps. */
export interface FrameInput {
  readonly partId?: string;
  /** Set by a PLC-triggered source: the cycle this frame's verdict answers. */
  readonly trigger?: TriggerRef;
  /** Where the frame came from: a file path, a camera URI. */
  readonly ref: string;
  readonly image: EncodedImage | RawImage;
  /** Ground truth when the source knows it (the folder source's sub-folder). */
  readonly label?: string;
  readonly capturedAt?: Date;
  /**
   * A stable identity for this frame, the same each time the source yields it (a hot folder's file
   * yielded again after a crash, before its settle). The result id is derived from it (with the
   * station, the source step and `capturedAt`), so a re-inspection gets the same result id and a
   * durable sink that already holds the first result recognises the second (BullMQ by job id).
   * Leave it unset for a source that never yields a frame twice: the result id is then random.
   */
  readonly key?: string;
  /**
   * Called once the part's result is final, the critical sinks have it, and every durable sink
   * holds it durably ("durable before acknowledged"); also for a dropped part. A hot folder moves
   * its file here; awaited, bounded. NOT called when a durable sink could not take the result (or
   * not before the station closed): the part is then the source's to keep for its next run.
   */
  settle?(result: InspectionResult): Promise<void>;
}

export interface Frame extends FrameInput {
  readonly partId: string;
  readonly sequence: number;
  readonly capturedAt: Date;
}

export interface Findings {
  readonly defects: readonly Defect[];
  /** Named image-level scores in [0, 1], e.g. `{ defect: 0.93 }`. */
  readonly scores: Readonly<Record<string, number>>;
}

export interface Decision {
  readonly verdict: 'pass' | 'fail' | 'error';
  /** 0 for pass; the firing rule's code for fail. */
  readonly rejectCode: number;
  readonly reasons: readonly Reason[];
  /** The findings' defects, each marked with the rule it fired, if any. */
  readonly defects: readonly Defect[];
  /** The score threshold each label was judged against (for near-threshold sampling, replay sweeps). */
  readonly thresholds?: Readonly<Record<string, number>>;
}

/** The record a part carries through the stages; each caps type is one slot. */
export interface Part {
  readonly frame: Frame;
  readonly image?: RawImage;
  readonly tensors?: Readonly<Record<string, Tensor>>;
  /** The model's output tensors by name (the `model/output` slot); the same object as `modelOutput.tensors`. */
  readonly outputs?: Readonly<Record<string, Tensor>>;
  /** What a decoder reads: tensors, transforms back to source pixels, labels, decode spec, thresholds, model identity. */
  readonly modelOutput?: ModelOutput;
  readonly findings?: Findings;
  readonly decision?: Decision;
  /** The model that judged the part, for the result record; the same object as `modelOutput.model`. */
  readonly model?: ModelRef;
  /** Side data between cooperating plugins that no typed slot covers, keyed by plugin (what a decoder reads is `modelOutput`). */
  readonly meta?: Readonly<Record<string, unknown>>;
}

/** What a stage returns: the slots it filled. The runtime merges it into the part. */
export type PartPatch = Partial<Omit<Part, 'frame'>>;

/** Per-station calibration (calibration/<station>.json), validated at load and frozen. */
export interface Calibration {
  readonly station: string;
  /** Region of interest in source-image pixels. */
  readonly roi?: { readonly x: number; readonly y: number; readonly width: number; readonly height: number };
  /** Physical scale, for defect areas in mm². */
  readonly mmPerPixel?: number;
  /** Minimum defect score per label; overrides the decision rules' own minScore. */
  readonly thresholds: Readonly<Record<string, number>>;
  readonly provenance: Readonly<Record<string, unknown>>;
}

/** The station's time limits, for steps whose own limits must fit inside them (a PLC's deadline). */
export interface StationTiming {
  readonly cycleBudgetMs: number;
  readonly sinkTimeoutMs: number;
  readonly closeTimeoutMs: number;
}

export interface PluginContext {
  readonly log: Logger;
  /** Aborted on close; for a stage run, also when the part's cycle budget is spent. */
  readonly signal: AbortSignal;
  readonly stationId: string;
  readonly step: string;
  readonly timing: StationTiming;
  /** The station's calibration, when it has one. */
  readonly calibration?: Calibration;
  /** Resolves a path from the station file against the station root. */
  resolvePath(path: string): string;
  /** Resolves an asset reference; only inside models/, calibration/, fixtures/ of the station root, never through `..`. */
  resolveAsset(ref: string): string;
  /**
   * The service that the step named in `config[field]` provides, for a dependency the manifest
   * declares in `requires` (checked at compile time, started before this step). The runtime cannot
   * know the service's type: the plugin checks it (e.g. with instanceof) before use.
   */
  dependency(field: string): unknown;
}

/** What a step's `verify` gets: its context before anything starts (no dependency: no step is up). */
export type VerifyContext = Omit<PluginContext, 'dependency'>;

/** A model step's model as its package states it (see `PluginManifest.describeModel`). */
export interface ModelDescription {
  readonly name: string;
  readonly version: string;
  /** sha256 of the weights: the identity a calibration is bound to. */
  readonly sha256: string;
  readonly task?: string;
  /** The package's own score thresholds, which a decision falls back to without calibration or rule. */
  readonly thresholds?: { readonly default: number; readonly perLabel: Readonly<Record<string, number>> };
  /** How an image becomes the model's input (size, resize, kernel, colour, scale/mean/std), as plain data for reports. */
  readonly preprocessing?: Readonly<Record<string, unknown>>;
  /** How the output is decoded (score floor, NMS overlap, ...), as plain data for reports. */
  readonly decode?: Readonly<Record<string, unknown>>;
}

/** Offers services to the steps that declare a dependency on this one. */
export interface ServiceProvider {
  /** The object behind a service the manifest `provides`; asked once, when a dependent step starts. */
  service?(name: string): unknown;
}

/**
 * A service a sink may offer (`provides: [EXTRA_SAMPLES_SERVICE]`): frames chosen for retraining by
 * the runtime rather than by the sink's own sampling, e.g. the frames a shadow model disagreed on.
 */
export const EXTRA_SAMPLES_SERVICE = 'linegate/extra-samples@1';

export interface ExtraSample {
  /** The record of the part as the station judged it (what the PLC got). */
  readonly result: InspectionResult;
  readonly image: EncodedImage | RawImage;
  readonly reason: 'shadow';
  /** One line per finding, e.g. "shadow casting-cls@2 says fail (defect 0.91), the station said pass". */
  readonly why: readonly string[];
  /** What the other model found: its verdict, scores and defects. */
  readonly other: { readonly model: ModelRef | null; readonly verdict: string; readonly rejectCode: number; readonly scores: Readonly<Record<string, number>>; readonly defects: readonly Defect[] };
}

export interface ExtraSamples {
  /** Resolves once the sample is kept durably (or refused by the sink's quota: false). */
  submit(sample: ExtraSample): Promise<boolean>;
}

/**
 * A service a sink may offer (the traceability history does): it keeps each model activation
 * beside the results, so "which model judged this station's parts then, and who put it there"
 * is answered from the same place as the results.
 */
export const DEPLOYMENT_RECORDS_SERVICE = 'linegate/deployment-records@1';

/** A model activation as the deploy journal holds it (runtime/deploy/types.ts `Deployment`). */
export interface DeploymentRecord {
  readonly step: string;
  readonly name: string;
  readonly version: string;
  readonly sha256: string;
  readonly dir: string;
  readonly activatedAt: string;
  readonly by: string;
  readonly action: string;
}

export interface DeploymentRecords {
  record(station: string, d: DeploymentRecord): Promise<void>;
}

export const isDeploymentRecords = (s: unknown): s is DeploymentRecords => typeof s === 'object' && s !== null && typeof (s as { record?: unknown }).record === 'function';

export const isExtraSamples = (s: unknown): s is ExtraSamples => typeof s === 'object' && s !== null && typeof (s as { submit?: unknown }).submit === 'function';

export interface SourceInstance extends ServiceProvider {
  frames(ctx: PluginContext): AsyncIterable<FrameInput>;
  close?(): Promise<void>;
}

/** Caps an instance knows only once started (e.g. the task of the model it loaded); checked before the first frame. */
export interface InstanceCaps {
  readonly accepts?: readonly Caps[];
  readonly produces?: readonly Caps[];
}

export interface StageInstance extends ServiceProvider {
  run(part: Part, ctx: PluginContext): Promise<PartPatch>;
  /** Narrows the manifest's caps after init; the runtime negotiates neighbours again with these. */
  readonly caps?: InstanceCaps;
  close?(): Promise<void>;
}

/** How a step is doing, for `linegate run`'s summary, logs and the health endpoint. */
export interface Health {
  /** ok: working; degraded: working around a fault (e.g. spooling while Redis is away); down: not working. */
  readonly status: 'ok' | 'degraded' | 'down';
  readonly detail: string;
  readonly data?: Readonly<Record<string, unknown>>;
}

/** What the runtime tells a sink about one write. */
export interface WriteInfo {
  /**
   * Results waiting behind this one in the sink's lane (0 for a critical sink). A sink may skip
   * a wait that only improves its report (e.g. "delivered" rather than "spooled") while others wait.
   */
  readonly behind: number;
}

export interface SinkInstance extends ServiceProvider {
  /** The whole station is up (every step started): e.g. tell the PLC "ready". */
  started?(): Promise<void>;
  /** The station takes no more frames (it is draining): e.g. tell the PLC "not ready". */
  stopping?(): Promise<void>;
  /**
   * Resolve with how the result was delivered (default `delivered`); throw when it was not.
   * `image` is the frame as the source gave it, for sinks that keep images (an archive); a
   * background sink that fell far behind may get a result without it. A durable sink (see
   * `PluginManifest.durable`) resolves only once the result is on disk (fsync'd), and resolves
   * again, without a second copy, for a result id it already holds.
   */
  write(result: InspectionResult, ctx: PluginContext, image?: EncodedImage | RawImage, info?: WriteInfo): Promise<DeliveryStatus | void>;
  /** Wait until everything written so far is delivered or durably spooled. */
  flush?(): Promise<void>;
  health?(): Health;
  close?(): Promise<void>;
}

export type InstanceOf<K extends PluginKind> = K extends 'source' ? SourceInstance : K extends 'sink' ? SinkInstance : StageInstance;

export interface PluginManifest<K extends PluginKind = PluginKind, S extends z.ZodType = z.ZodType> {
  readonly id: PluginId;
  readonly kind: K;
  readonly description: string;
  /** Parsed once when the station is compiled, then frozen. */
  readonly config: S;
  /** Alternatives this step can take from its upstream neighbour; absent for sources and sinks. */
  readonly accepts?: readonly Caps[];
  /** What this step gives its downstream neighbour; absent for sinks. */
  readonly produces?: readonly Caps[];
  /** Sinks only: awaited inside the part's cycle (a PLC) rather than fed in the background. */
  readonly critical?: boolean;
  /**
   * Sinks only: a resolved `write()` means the result is stored durably (on disk, fsync'd), so the
   * source may settle the part (a hot folder moves its file to done) only once every durable sink
   * has it. A function decides from the parsed config (e.g. only with fsync on), once, at start.
   */
  readonly durable?: boolean | ((config: z.infer<S>) => boolean);
  /** Services this plugin's instances offer to other steps (fastify-plugin's decorators), e.g. `opcua-plc/triggers@1`. */
  readonly provides?: readonly string[];
  /** Steps this plugin needs, each named by a config field; a missing or unfit step is a compile error. */
  readonly requires?: readonly StepDependency[];
  /**
   * What in this step's config cannot work with the station's time limits (a PLC deadline shorter than
   * the cycle budget, ...); each problem is a compile error. Called once, with the parsed config.
   */
  readonly checkTiming?: (config: z.infer<S>, timing: StationTiming) => readonly string[];
  /**
   * Checks the resources this step's config names (a model package: its files, their sha256, the
   * graph against model.json) the way `init` would use them, without starting anything: `linegate
   * check` runs it, and `run` before the first step starts, so a station that could not start is
   * bad input with every problem listed. Resolves with the problems found (coded errors, each
   * naming the step), an empty list when there are none.
   */
  readonly verify?: (config: z.infer<S>, ctx: VerifyContext) => Promise<readonly Error[]>;
  /**
   * Model steps: the model this config names, read without starting anything, so the compiler can
   * refuse a calibration made for another model and replay can say what it judged with. Rejects
   * when the package cannot be read (`verify` reports why).
   */
  readonly describeModel?: (config: z.infer<S>, ctx: VerifyContext) => Promise<ModelDescription>;
}

/** A step another step cannot work without, declared in the manifest and checked before the first frame. */
export interface StepDependency {
  /** The config field that names the step, e.g. `plc`. */
  readonly field: string;
  /** What that step must provide (one of its manifest's `provides`). */
  readonly service: string;
}

export interface PluginModule<K extends PluginKind = PluginKind, S extends z.ZodType = z.ZodType> {
  readonly manifest: PluginManifest<K, S>;
  init(config: Readonly<z.infer<S>>, ctx: PluginContext): Promise<InstanceOf<K>>;
}

/** Identity helper that gives a plugin definition its precise types. */
export function definePlugin<K extends PluginKind, S extends z.ZodType>(plugin: PluginModule<K, S>): PluginModule<K, S> {
  return plugin;
}
