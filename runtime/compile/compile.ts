import type { z } from 'zod';
import { STAGE_KINDS, type Calibration, type Caps, type PluginKind, type PluginModule, type StageKind } from '../contract.js';
import { calibrationPath, loadCalibration } from '../config/calibration.js';
import { LinegateError, LinegateErrors } from '../errors.js';
import { deepFreeze } from '../config/freeze.js';
import { loadDataFile, stationRoot } from '../config/load.js';
import { StationFile, calibrationSetting, type StationSettings, type StepSpec, type SinkSpec } from '../config/station-schema.js';
import { loadExternalPlugins } from '../registry/load-external.js';
import { HISTORY_PLUGIN_ID, HISTORY_STEP } from '../history-file.js';
import type { Registry } from '../registry/registry.js';
import { formatCaps, negotiate } from './caps.js';
import { bindCalibration, describeModels, type CalibrationUse, type PlannedModel } from './models.js';

export interface PlannedStep {
  readonly name: string;
  /** Where the step sits in the station file, e.g. `stages[1]`. */
  readonly path: string;
  readonly kind: PluginKind;
  readonly plugin: PluginModule;
  readonly config: unknown;
  /** Sinks only. */
  readonly critical: boolean;
}

/** A checked, frozen execution plan: nothing about it is re-validated while frames flow. */
export interface Plan {
  readonly file: string;
  readonly root: string;
  readonly settings: StationSettings;
  readonly calibration?: Calibration;
  /** How the calibration relates to the model the station runs (present when the station has a calibration file). */
  readonly calibrationUse?: CalibrationUse;
  /** The model each model step names, when its plugin can say (`describeModel`) and the package reads. */
  readonly models?: readonly PlannedModel[];
  readonly source: PlannedStep;
  readonly stages: readonly PlannedStep[];
  readonly sinks: readonly PlannedStep[];
}

/** Reads, validates and compiles a station file; throws `LinegateErrors` listing every problem found. */
export async function compileStationFile(file: string, builtins: Registry): Promise<Plan> {
  const loaded = await loadDataFile(file);
  return compileStationData(loaded.data, loaded.file, builtins);
}

export interface CompileOptions {
  /**
   * station: apply the calibration as the station file says (refuse one made for another model unless it allows it);
   * own-model: leave out a calibration made for another model, so the model is judged at its own thresholds (compare).
   */
  readonly calibration?: 'station' | 'own-model';
}

/** The same from data already read (replay swaps the source before compiling); `file` anchors relative paths. */
export async function compileStationData(data: unknown, file: string, builtins: Registry, o: CompileOptions = {}): Promise<Plan> {
  const loaded = { data, file };
  const registry = builtins.clone();
  const shape = StationFile.safeParse(loaded.data);
  if (shape.success && shape.data.plugins.length > 0) {
    await loadExternalPlugins(shape.data.plugins, loaded.file, stationRoot(loaded.file, shape.data.station.root), registry);
  }
  const plan = compileStation(loaded.data, loaded.file, registry);
  const setting = calibrationSetting(plan.settings);
  const calibration = await loadCalibration(plan.root, plan.settings.id, setting.file);
  const models = Object.freeze(await describeModels(plan));
  if (calibration === undefined) return Object.freeze({ ...plan, models });
  const use = bindCalibration(calibration, calibrationPath(plan.root, plan.settings.id, setting.file), models, {
    allowMismatch: setting.allowModelMismatch,
    skipMismatch: o.calibration === 'own-model',
  });
  const calibrationUse = deepFreeze(use);
  return Object.freeze(use.status === 'skipped' ? { ...plan, models, calibrationUse } : { ...plan, models, calibration, calibrationUse });
}

const issuePath = (base: string, path: readonly PropertyKey[]): string =>
  path.reduce<string>((acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc === '' ? String(key) : `${acc}.${String(key)}`), base);

export function compileStation(data: unknown, file: string, registry: Registry): Plan {
  const parsed = StationFile.safeParse(data);
  if (!parsed.success) {
    throw new LinegateErrors(
      parsed.error.issues.map((issue) => {
        const where = issuePath('', issue.path) || '(top level)';
        return new LinegateError('LG_ERR_STATION_INVALID', [where, issue.message], { path: where, ...stepOf(data, issue.path) });
      }),
    );
  }
  const station = parsed.data;
  const errors: LinegateError[] = [];

  const plan = (spec: StepSpec | SinkSpec, path: string, allowed: readonly PluginKind[]): PlannedStep | undefined => {
    const plugin = registry.get(spec.use);
    if (plugin === undefined) {
      const near = registry.suggest(spec.use);
      errors.push(
        new LinegateError('LG_ERR_PLUGIN_UNKNOWN', [spec.name, spec.use, near.length > 0 ? ` (did you mean ${near.join(' or ')}?)` : ''], {
          step: spec.name,
          path: `${path}.use`,
        }),
      );
      return undefined;
    }
    const { kind } = plugin.manifest;
    if (!allowed.includes(kind)) {
      errors.push(new LinegateError('LG_ERR_STATION_WRONG_KIND', [spec.name, spec.use, kind, allowed.join(' or ')], { step: spec.name, path: `${path}.use` }));
      return undefined;
    }
    const config = (plugin.manifest.config as z.ZodType).safeParse(spec.config ?? {});
    if (!config.success) {
      for (const issue of config.error.issues) {
        const field = issuePath(`${path}.config`, issue.path);
        errors.push(new LinegateError('LG_ERR_STATION_STEP_CONFIG', [spec.name, spec.use, field, issue.message], { step: spec.name, path: field }));
      }
      return undefined;
    }
    const critical = 'critical' in spec && spec.critical !== undefined ? spec.critical : plugin.manifest.critical === true;
    // The config is frozen deeply; the step and plugin only shallowly (a zod schema must stay usable).
    return Object.freeze({ name: spec.name, path, kind, plugin, config: deepFreeze(config.data), critical: kind === 'sink' && critical });
  };

  const sinkSpecs = withHistory(station, registry, errors);
  const source = plan(station.source, 'source', ['source']);
  const stages = station.stages.map((s, i) => plan(s, `stages[${i}]`, STAGE_KINDS));
  const sinks = sinkSpecs.map(([s, path]) => plan(s, path, ['sink']));

  const seen = new Map<string, string>();
  for (const [spec, path] of [
    [station.source, 'source'] as const,
    ...station.stages.map((s, i) => [s, `stages[${i}]`] as const),
    ...sinkSpecs,
  ]) {
    if (seen.has(spec.name)) errors.push(new LinegateError('LG_ERR_STATION_DUPLICATE_STEP', [spec.name], { step: spec.name, path: `${path}.name` }));
    seen.set(spec.name, path);
  }

  const ordered = checkOrder(stages, errors);
  // Out-of-order stages are never neighbours-compatible too; one error says it better than three.
  if (ordered) checkNeighbours([source, ...stages], errors);
  const planned = [source, ...stages, ...sinks].filter((s): s is PlannedStep => s !== undefined);
  checkDependencies(startOrder({ source, stages, sinks }), new Set(seen.keys()), errors);
  checkTiming(planned, station.station, errors);

  if (errors.length > 0) throw new LinegateErrors(errors);
  return Object.freeze({
    file,
    root: stationRoot(file, station.station.root),
    settings: deepFreeze(station.station),
    source: source!,
    stages: Object.freeze(stages as PlannedStep[]),
    sinks: Object.freeze(sinks as PlannedStep[]),
  });
}

/**
 * The station's sinks with their paths, and the history sink the station gets by default: unless
 * it says `history: false` or lists a `core/history@1` sink itself. A registry without the plugin
 * (an embedded or test registry of its own) gets none: the built-in registry always has it.
 */
function withHistory(station: StationFile, registry: Registry, errors: LinegateError[]): (readonly [SinkSpec, string])[] {
  const listed = station.sinks.map((s, i) => [s, `sinks[${i}]`] as const);
  const h = station.history;
  if (h === false || station.sinks.some((s) => s.use === HISTORY_PLUGIN_ID) || registry.get(HISTORY_PLUGIN_ID) === undefined) return listed;
  const taken = [station.source, ...station.stages, ...station.sinks].find((s) => s.name === HISTORY_STEP);
  if (taken !== undefined) {
    errors.push(
      new LinegateError('LG_ERR_STATION_INVALID', ['history', `the history sink is a step named "${HISTORY_STEP}", and step "${taken.name}" (${taken.use}) has that name: rename that step, or set history: false`], {
        path: 'history',
        step: taken.name,
      }),
    );
    return listed;
  }
  return [...listed, [{ name: HISTORY_STEP, use: HISTORY_PLUGIN_ID, config: { ...(h ?? {}) } }, 'history'] as const];
}

/**
 * The order steps start in: downstream first (sinks, then the stages from the decision back, then
 * the source), so nothing produces before its consumer is ready. They close in the reverse order.
 */
export function startOrder<S>(plan: { readonly source: S; readonly stages: readonly S[]; readonly sinks: readonly S[] }): S[] {
  return [...[...plan.sinks].reverse(), ...[...plan.stages].reverse(), plan.source];
}

/** Each declared dependency names a step that exists, provides the service, and starts before its dependent. */
function checkDependencies(order: readonly (PlannedStep | undefined)[], stepNames: ReadonlySet<string>, errors: LinegateError[]): void {
  const known = order.filter((s): s is PlannedStep => s !== undefined);
  const at = new Map(known.map((s, i) => [s.name, i] as const));
  for (const step of known) {
    const id = step.plugin.manifest.id;
    for (const dep of step.plugin.manifest.requires ?? []) {
      const name = (step.config as Record<string, unknown> | undefined)?.[dep.field];
      const fail = (why: string): void =>
        void errors.push(new LinegateError('LG_ERR_STATION_DEPENDENCY', [step.name, id, dep.service, dep.field, why], { step: step.name, path: `${step.path}.config.${dep.field}` }));
      if (typeof name !== 'string') {
        fail('the field names no step');
        continue;
      }
      const provider = known.find((s) => s.name === name);
      if (provider === undefined) {
        // A step that exists but did not compile is reported already.
        if (!stepNames.has(name)) fail(`the station has no step named "${name}"`);
      } else if (!(provider.plugin.manifest.provides ?? []).includes(dep.service)) {
        const offers = provider.plugin.manifest.provides ?? [];
        fail(`step "${name}" (${provider.plugin.manifest.id}) provides ${offers.length === 0 ? 'nothing' : offers.join(', ')}`);
      } else if (at.get(name)! > at.get(step.name)!) {
        fail(`step "${name}" starts after "${step.name}" (sinks start first, then stages from the decision back, then the source)`);
      }
    }
  }
}

/** What each plugin finds impossible in its own time limits against the station's. */
function checkTiming(steps: readonly PlannedStep[], settings: StationSettings, errors: LinegateError[]): void {
  const timing = { cycleBudgetMs: settings.cycleBudgetMs, sinkTimeoutMs: settings.sinkTimeoutMs, closeTimeoutMs: settings.closeTimeoutMs };
  for (const step of steps) {
    for (const problem of step.plugin.manifest.checkTiming?.(step.config, timing) ?? []) {
      errors.push(new LinegateError('LG_ERR_STATION_TIMING', [step.name, step.plugin.manifest.id, problem], { step: step.name, path: `${step.path}.config` }));
    }
  }
}

const RANK: Record<StageKind, number> = { preprocess: 0, model: 1, postprocess: 2, decision: 3 };

/** Stages run preprocess* model* postprocess* and end in exactly one decision; false when they do not. */
function checkOrder(stages: readonly (PlannedStep | undefined)[], errors: LinegateError[]): boolean {
  const known = stages.filter((s): s is PlannedStep => s !== undefined);
  if (known.length < stages.length) return true; // unknown plugins already reported; order would only add noise
  const before = errors.length;
  for (let i = 1; i < known.length; i++) {
    const prev = known[i - 1]!;
    const cur = known[i]!;
    if (RANK[cur.kind as StageKind] < RANK[prev.kind as StageKind] || (prev.kind === 'decision' && cur.kind === 'decision')) {
      errors.push(new LinegateError('LG_ERR_STATION_KIND_ORDER', [cur.name, cur.kind, prev.name, prev.kind], { step: cur.name, path: cur.path }));
    }
  }
  if (!known.some((s) => s.kind === 'decision')) {
    errors.push(new LinegateError('LG_ERR_STATION_NO_DECISION', [], { path: 'stages' }));
  }
  return errors.length === before;
}

export interface StepCaps {
  readonly step: PlannedStep;
  readonly accepts?: readonly Caps[];
  readonly produces?: readonly Caps[];
}

/**
 * Downstream accepts what its upstream neighbour produces (GStreamer caps
 * negotiation, before any data flows). At compile time from the manifests;
 * again after start with the caps each instance narrowed them to.
 */
export function checkNeighbours(chain: readonly (PlannedStep | StepCaps | undefined)[], errors: LinegateError[]): void {
  const capsOf = (s: PlannedStep | StepCaps): StepCaps => ('step' in s ? s : { step: s });
  for (let i = 1; i < chain.length; i++) {
    const a = chain[i - 1];
    const b = chain[i];
    if (a === undefined || b === undefined) continue;
    const { step: up, produces: upProduces } = capsOf(a);
    const { step: down, accepts: downAccepts } = capsOf(b);
    const produces = upProduces ?? up.plugin.manifest.produces ?? [];
    const accepts = downAccepts ?? down.plugin.manifest.accepts ?? [];
    if (negotiate(produces, accepts) === undefined) {
      errors.push(
        new LinegateError('LG_ERR_STATION_INCOMPATIBLE', [up.name, formatCaps(produces), down.name, formatCaps(accepts)], {
          step: down.name,
          path: down.path,
        }),
      );
    }
  }
}

/** For a schema issue inside a step, the step's name (when the file gives one). */
function stepOf(data: unknown, path: readonly PropertyKey[]): { step?: string } {
  let node: unknown = data;
  let step: string | undefined;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) break;
    node = (node as Record<PropertyKey, unknown>)[key];
    const name = typeof node === 'object' && node !== null ? (node as { name?: unknown }).name : undefined;
    if (typeof name === 'string') step = name;
  }
  return step === undefined ? {} : { step };
}

/** The plan as plain data, for `linegate check` and the API. */
export function describePlan(plan: Plan): Record<string, unknown> {
  const step = (s: PlannedStep): Record<string, unknown> => ({
    name: s.name,
    use: s.plugin.manifest.id,
    kind: s.kind,
    ...(s.kind === 'sink' ? { critical: s.critical } : {}),
    ...(s.plugin.manifest.accepts ? { accepts: formatCaps(s.plugin.manifest.accepts) } : {}),
    ...(s.plugin.manifest.produces ? { produces: formatCaps(s.plugin.manifest.produces) } : {}),
    config: s.config,
  });
  const models = (plan.models ?? []).map((m) => ({ step: m.step, name: m.model.name, version: m.model.version, sha256: m.model.sha256 }));
  return {
    file: plan.file,
    root: plan.root,
    station: plan.settings,
    ...(models.length === 0 ? {} : { models }),
    ...(plan.calibrationUse === undefined ? {} : { calibration: plan.calibrationUse }),
    source: step(plan.source),
    stages: plan.stages.map(step),
    sinks: plan.sinks.map(step),
  };
}
