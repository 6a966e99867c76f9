import type { Logger, PluginContext, ServiceProvider, SinkInstance, SourceInstance, StageInstance } from '../contract.js';
import { LinegateError, LinegateErrors, isLinegateError, messageOf } from '../errors.js';
import { checkNeighbours, startOrder, type Plan, type PlannedStep } from '../compile/compile.js';
import { withTimeout } from './bounded.js';
import { makeContext } from './context.js';

export interface StartedStep<I> {
  readonly step: PlannedStep;
  /** The instance behind the closed-guard: for what it declares (caps, services), and for sync calls the station makes only while the step is up (health). */
  readonly raw: I;
  readonly instance: I;
  readonly ctx: PluginContext;
  /** Aborts the step's signal and closes it; idempotent and bounded. */
  close(): Promise<void>;
}

export interface StartedStation {
  readonly source: StartedStep<SourceInstance>;
  readonly stages: readonly StartedStep<StageInstance>[];
  readonly sinks: readonly StartedStep<SinkInstance>[];
}

interface Closable {
  close?(): Promise<void>;
}

/**
 * Starts one step: `init` bounded by the station's init time-out, the
 * instance wrapped so that `close()` is memoised (safe twice) and bounded, and
 * nothing runs after it (a late call gets LG_ERR_PLUGIN_CLOSED). An instance
 * that arrives after its time-out is closed at once: its timers and sockets
 * must not keep the process alive.
 */
export async function startStep<I extends Closable>(plan: Plan, step: PlannedStep, log: Logger, dependencies?: ReadonlyMap<string, unknown>): Promise<StartedStep<I>> {
  const controller = new AbortController();
  const ctx = makeContext(plan, step, log, controller.signal, dependencies);
  const id = step.plugin.manifest.id;
  const { initTimeoutMs, closeTimeoutMs } = plan.settings;
  let raw: I;
  const init = step.plugin.init(step.config as never, ctx) as Promise<unknown> as Promise<I>;
  try {
    raw = await withTimeout(init, initTimeoutMs, () => {
      controller.abort();
      return new LinegateError('LG_ERR_PLUGIN_INIT_TIMEOUT', [step.name, id, initTimeoutMs], { step: step.name });
    });
  } catch (e) {
    controller.abort();
    init.then(
      (late) => {
        ctx.log.warn({ step: step.name }, `step "${step.name}" started after its init time-out: closing it`);
        return late.close === undefined ? undefined : withTimeout(late.close(), closeTimeoutMs, () => new LinegateError('LG_ERR_PLUGIN_CLOSE_TIMEOUT', [step.name, id, closeTimeoutMs], { step: step.name }));
      },
      () => undefined,
    ).catch((err: unknown) => ctx.log.error({ err }, `closing the late instance of step "${step.name}" failed`));
    if (isLinegateError(e) && e.step !== undefined) throw e;
    throw new LinegateError('LG_ERR_PLUGIN_INIT', [step.name, id, isLinegateError(e) ? `${e.code}: ${e.message}` : messageOf(e)], { step: step.name, cause: e });
  }
  let closing: Promise<void> | undefined;
  const closed = (): LinegateError => new LinegateError('LG_ERR_PLUGIN_CLOSED', [step.name, id], { step: step.name });
  const instance = guard(raw, () => closing !== undefined, closed);
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      controller.abort();
      if (raw.close === undefined) return;
      await withTimeout(raw.close(), closeTimeoutMs, () => new LinegateError('LG_ERR_PLUGIN_CLOSE_TIMEOUT', [step.name, id, closeTimeoutMs], { step: step.name })).catch(
        (err: unknown) => ctx.log.error({ err }, `closing step "${step.name}" failed`),
      );
    })());
  return { step, raw, instance, ctx, close };
}

/** A view of `raw` whose methods refuse to run once the step is closed. */
function guard<I extends Closable>(raw: I, isClosed: () => boolean, closed: () => Error): I {
  const view: Record<string, unknown> = {};
  for (const key of methodNames(raw)) {
    if (key === 'close') continue;
    const fn = (raw as Record<string, unknown>)[key] as (...args: unknown[]) => unknown;
    view[key] = (...args: unknown[]) => {
      if (isClosed()) {
        if (key === 'frames') return (async function* () {})();
        return Promise.reject(closed());
      }
      return fn.apply(raw, args);
    };
  }
  return view as I;
}

function methodNames(obj: object): string[] {
  const names = new Set<string>();
  for (let o: object | null = obj; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const k of Object.getOwnPropertyNames(o)) if (k !== 'constructor' && typeof (obj as Record<string, unknown>)[k] === 'function') names.add(k);
  }
  return [...names];
}

/**
 * Starts a compiled station in its start order (downstream first: see
 * compile's `startOrder`), handing each step the services it declared it
 * needs. On a failure, whatever had started is closed again.
 */
export async function startStation(plan: Plan, log: Logger): Promise<{ started: StartedStation; close: () => Promise<void> }> {
  const byName = new Map<string, StartedStep<Closable & ServiceProvider>>();
  const closeAll = (): Promise<void> => closeUpstreamFirst(startOrder(plan).flatMap((s) => byName.get(s.name) ?? []).reverse());
  try {
    for (const step of startOrder(plan)) byName.set(step.name, await startStep(plan, step, log, dependenciesOf(step, byName)));
    const get = <I>(s: PlannedStep): StartedStep<I> => byName.get(s.name) as unknown as StartedStep<I>;
    const source = get<SourceInstance>(plan.source);
    const stages = plan.stages.map((s) => get<StageInstance>(s));
    negotiate(source, stages);
    let closing: Promise<void> | undefined;
    return { started: { source, stages, sinks: plan.sinks.map((s) => get<SinkInstance>(s)) }, close: () => (closing ??= closeAll()) };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/**
 * Starts a new set of stages for a station already running (a model deploy): the stages of `plan`,
 * decision first, each bounded like any start, with the running source and sinks to depend on, and
 * checked against the running source's caps. On a failure whatever had started is closed again, so
 * a refused package leaves nothing behind.
 */
export async function startStages(plan: Plan, log: Logger, running: StartedStation): Promise<StartedStep<StageInstance>[]> {
  const byName = new Map<string, StartedStep<Closable & ServiceProvider>>();
  for (const s of [running.source, ...running.sinks]) byName.set(s.step.name, s as unknown as StartedStep<Closable & ServiceProvider>);
  const mine: StartedStep<StageInstance>[] = [];
  try {
    for (const step of [...plan.stages].reverse()) {
      const started = await startStep<StageInstance>(plan, step, log, dependenciesOf(step, byName));
      byName.set(step.name, started as unknown as StartedStep<Closable & ServiceProvider>);
      mine.unshift(started);
    }
    negotiate(running.source, mine);
    return mine;
  } catch (e) {
    await closeUpstreamFirst(mine);
    throw e;
  }
}

/** The services a step declared it needs, from the steps that started before it (compile checked they exist). */
function dependenciesOf(step: PlannedStep, started: ReadonlyMap<string, StartedStep<ServiceProvider>>): Map<string, unknown> {
  const deps = new Map<string, unknown>();
  for (const { field, service } of step.plugin.manifest.requires ?? []) {
    const name = String((step.config as Record<string, unknown>)[field]);
    const offered = started.get(name)?.raw.service?.(service);
    if (offered === undefined) {
      throw new LinegateError('LG_ERR_STATION_DEPENDENCY', [step.name, step.plugin.manifest.id, service, field, `step "${name}" started but offers no ${service}`], { step: step.name });
    }
    deps.set(field, offered);
  }
  return deps;
}

/** Neighbours checked again with the caps the started instances narrowed theirs to (e.g. the loaded model's task). */
function negotiate(source: StartedStep<SourceInstance>, stages: readonly StartedStep<StageInstance>[]): void {
  const errors: LinegateError[] = [];
  checkNeighbours([source.step, ...stages.map((s) => ({ step: s.step, ...s.raw.caps }))], errors);
  if (errors.length > 0) throw new LinegateErrors(errors);
}

/** `steps` is in pipeline order; each close is already bounded. */
async function closeUpstreamFirst(steps: readonly StartedStep<Closable>[]): Promise<void> {
  for (const s of steps) await s.close();
}
