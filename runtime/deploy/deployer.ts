import path from 'node:path';
import type { DeploymentRecords, EncodedImage, ExtraSamples, Logger, RawImage } from '../contract.js';
import { LinegateError, isLinegateError, messageOf } from '../errors.js';
import type { InspectionResult } from '../result.js';
import type { Plan, PlannedStep } from '../compile/compile.js';
import { describeModels } from '../compile/models.js';
import { startStages, type StartedStation } from '../execute/lifecycle.js';
import { Pipeline } from '../execute/pipeline.js';
import { DeployJournal } from './journal.js';
import { modelStep, packageRef, planForModel, type Replanned } from './replan.js';
import { ShadowRunner } from './shadow.js';
import { PackageStore } from './store.js';
import type { CalibrationChoice, DeployReport, Deployment, ModelControl, ModelsStatus, PackageFiles, ShadowStatus } from './types.js';
import { warmUp, type WarmUp } from './warmup.js';

/** What the deployer needs of its station: the running steps, the current pipeline, and a way to swap it between parts. */
export interface DeployHost {
  readonly log: Logger;
  /** The source and sinks while the steps are up, else undefined (deploys are refused then). */
  running(): StartedStation | undefined;
  /** READY or PLAYING: what a deploy needs; else the state, for the refusal. */
  canDeploy(): true | string;
  current(): Pipeline;
  /** Makes `next` the pipeline every later part starts on. */
  swap(next: Pipeline): void;
  /** The last frame a part of the line brought: the warm-up's input. */
  lastImage(): EncodedImage | RawImage | undefined;
  /** Parts waiting or every slot taken: a shadow steps aside. */
  loaded(): boolean;
  samples(): ExtraSamples | undefined;
  /** The models' status changed (a switch, a shadow start or stop, new shadow counts). */
  changed(): void;
  /** The traceability history, when the station keeps one: each activation goes there too. */
  records(): DeploymentRecords | undefined;
}

const HISTORY_LIMIT = 50;
const SHADOW_TELL_MS = 500;

/**
 * Live model deployment for one station: packages stored and checked, a new pipeline started and
 * warmed up beside the serving one, the activation journaled (fsync'd), then the swap between two
 * parts. One change at a time; anything refused leaves the serving model untouched.
 */
export class ModelDeployer implements ModelControl {
  readonly #host: DeployHost;
  readonly #plan: Plan;
  readonly #journal: DeployJournal;
  readonly #store: PackageStore;
  readonly #startedAt = new Date();
  readonly #abort = new AbortController();
  #busy: Promise<unknown> | undefined;
  #shadow: ShadowRunner | undefined;
  #lastShadow: (ShadowStatus & { state: 'running' }) | undefined;
  #thresholds: Record<string, number> = {};
  readonly #retiring = new Set<Promise<void>>();
  #closing: Promise<void> | undefined;
  #tellTimer: NodeJS.Timeout | undefined;
  #startPrune: Promise<void> = Promise.resolve();

  private constructor(host: DeployHost, plan: Plan, journal: DeployJournal) {
    this.#host = host;
    this.#plan = plan;
    this.#journal = journal;
    this.#store = new PackageStore(stationDir(plan), host.log);
  }

  /**
   * The deployer, and the plan the station starts on: the station file's, unless the journal says a
   * deploy or rollback came after it and the file still names the model that chain began from
   * (an edited station file is a new start). The package it names must still check, else the start
   * is refused (LG_ERR_DEPLOY_RESTORE): a station never comes back on another model silently.
   */
  static async open(filePlan: Plan, host: DeployHost): Promise<{ deployer: ModelDeployer; plan: Plan }> {
    // A plan compiled without reading its packages (compileStation alone) does not know its model yet.
    const plan = filePlan.models === undefined ? Object.freeze({ ...filePlan, models: Object.freeze(await describeModels(filePlan)) }) : filePlan;
    const journal = await DeployJournal.open(path.join(stationDir(plan), 'journal.jsonl'), host.log);
    const deployer = new ModelDeployer(host, plan, journal);
    const top = deployer.#chain().at(-1);
    if (top === undefined) return { deployer, plan };
    const step = modelStep(plan);
    let restored: Replanned;
    try {
      restored = await planForModel(plan, step, path.resolve(plan.root, top.dir), top.calibration ?? 'leave', host.log);
    } catch (e) {
      throw new LinegateError('LG_ERR_DEPLOY_RESTORE', [`${top.name}@${top.version}`, top.dir, isLinegateError(e) ? `${e.code}: ${e.message}` : messageOf(e)], { cause: e });
    }
    if (restored.model.sha256 !== top.sha256) {
      throw new LinegateError('LG_ERR_DEPLOY_RESTORE', [`${top.name}@${top.version}`, top.dir, `its weights are not the ones activated (sha256 ${restored.model.sha256.slice(0, 12)}, journal ${top.sha256.slice(0, 12)})`]);
    }
    host.log.info({ model: `${top.name}@${top.version}`, dir: top.dir, action: top.action, by: top.by, at: top.activatedAt }, 'station comes back on its last activated model (the deploy journal)');
    return { deployer, plan: restored.plan };
  }

  models(): ModelsStatus {
    const chain = this.#chain();
    const plan = this.#host.current().plan;
    const cal = plan.calibrationUse;
    const start = this.#startEntry();
    const history = [...(start === undefined ? [] : [start]), ...this.#journal.entries.slice(-HISTORY_LIMIT)].reverse();
    return {
      station: plan.settings.id,
      active: chain.at(-1) ?? start ?? null,
      history,
      canRollback: chain.length >= 1,
      thresholds: { ...this.#thresholds },
      calibration: {
        file: cal === undefined ? null : path.relative(plan.root, cal.file),
        status: cal === undefined ? 'none' : cal.status === 'skipped' ? 'not-applied' : 'applied',
        madeFor: cal?.madeFor ?? null,
      },
      shadow: this.#shadow?.status() ?? (this.#lastShadow === undefined ? { state: 'off' } : { state: 'off', last: this.#lastShadow }),
    };
  }

  /** A part's result: the thresholds the active model runs with are the ones its last result used. */
  noteResult(r: InspectionResult): void {
    if (r.thresholds !== undefined && r.model?.sha256 === this.#host.current().plan.models?.[0]?.model.sha256) this.#thresholds = { ...r.thresholds };
  }

  /** A judged part for the shadow, if one runs. */
  offerShadow(...args: Parameters<ShadowRunner['offer']>): void {
    this.#shadow?.offer(...args);
  }

  deployModel(files: PackageFiles, o: { readonly by: string; readonly calibration?: CalibrationChoice; readonly signal?: AbortSignal }): Promise<DeployReport> {
    return this.#exclusive('deploy', o.signal, async (signal) => {
      const step = modelStep(this.#plan);
      const calibration = o.calibration ?? 'leave';
      const { dir, replanned } = await this.#receive(files, step, calibration, signal);
      const active = this.models().active;
      if (active?.sha256 === replanned.model.sha256) {
        return { ...(await this.#report(active, active, 0)), warnings: [`${active.name}@${active.version} (sha256 ${active.sha256.slice(0, 12)}) is the active model already: nothing changed`] };
      }
      return this.#activate(replanned, step, dir, { action: 'deploy', by: o.by, calibration }, signal);
    });
  }

  rollbackModel(o: { readonly by: string; readonly signal?: AbortSignal }): Promise<DeployReport> {
    return this.#exclusive('rollback', o.signal, async (signal) => {
      const step = modelStep(this.#plan);
      const chain = this.#chain();
      if (chain.length === 0) throw new LinegateError('LG_ERR_DEPLOY_NO_PREVIOUS', ['the active model is the one the station file names, and nothing was deployed before it']);
      const target = chain.at(-2) ?? this.#startEntry();
      if (target === undefined) throw new LinegateError('LG_ERR_DEPLOY_NO_PREVIOUS', ['the model the station file names cannot be read']);
      const replanned = await planForModel(this.#plan, step, path.resolve(this.#plan.root, target.dir), target.calibration ?? 'leave', this.#host.log);
      signal.throwIfAborted();
      return this.#activate(replanned, step, target.dir, { action: 'rollback', by: o.by, ...(target.calibration === undefined ? {} : { calibration: target.calibration }) }, signal);
    });
  }

  startShadow(files: PackageFiles, o: { readonly by: string; readonly signal?: AbortSignal }): Promise<ShadowStatus> {
    return this.#exclusive('shadow start', o.signal, async (signal) => {
      const step = modelStep(this.#plan);
      const { replanned } = await this.#receive(files, step, 'leave', signal);
      const { pipeline } = await this.#startPipeline(replanned.plan, signal);
      const runner = new ShadowRunner(pipeline, replanned.model, o.by, {
        log: this.#host.log.child({ shadow: `${replanned.model.name}@${replanned.model.version}` }),
        loaded: () => this.#host.loaded(),
        samples: () => this.#host.samples(),
        onChange: () => this.#shadowChanged(),
      });
      const old = this.#shadow;
      this.#shadow = runner;
      if (old !== undefined) this.#retire(old.close(this.#plan.settings.closeTimeoutMs));
      this.#host.log.info({ model: `${replanned.model.name}@${replanned.model.version}`, sha256: replanned.model.sha256, by: o.by }, 'shadow model started: it judges frames after their verdicts, the PLC never hears it');
      this.#host.changed();
      return runner.status();
    });
  }

  stopShadow(o: { readonly by: string }): Promise<ShadowStatus> {
    return this.#exclusive('shadow stop', undefined, async () => {
      const old = this.#shadow;
      this.#shadow = undefined;
      if (old === undefined) return this.models().shadow;
      // The frame it is judging, if any, ends first (bounded): the counts it stops with are final.
      await old.close(this.#plan.settings.closeTimeoutMs);
      this.#lastShadow = old.status();
      this.#host.log.info({ model: `${old.model.name}@${old.model.version}`, by: o.by, last: this.#lastShadow }, 'shadow model stopped');
      this.#host.changed();
      return this.models().shadow;
    });
  }

  /** Ends a change in progress (its new stages are closed), the shadow, and every pipeline still retiring. Idempotent. */
  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      this.#abort.abort(new LinegateError('LG_ERR_DEPLOY_STATE', ['deploy', 'CLOSING']));
      clearTimeout(this.#tellTimer);
      await this.#busy?.catch(() => undefined);
      await this.#shadow?.close(this.#plan.settings.closeTimeoutMs);
      await Promise.all(this.#retiring);
    })());
  }

  /** Stores the upload, checks it as a package for `step`, and keeps it under its own name; the staging folder goes either way. */
  async #receive(files: PackageFiles, step: PlannedStep, calibration: CalibrationChoice, signal: AbortSignal): Promise<{ dir: string; replanned: Replanned }> {
    const staging = await this.#store.stage(files, Math.floor(this.#plan.settings.deploy.maxPackageMiB * 1024 * 1024));
    let checked: Replanned;
    try {
      checked = await planForModel(this.#plan, step, staging, calibration, this.#host.log);
    } catch (e) {
      await this.#store.discard(staging);
      throw e;
    }
    signal.throwIfAborted();
    const dir = await this.#store.keep(staging, checked.model);
    // Planned again at its final place: the path the plan, the journal and a restart name.
    return { dir: packageRef(this.#plan.root, dir), replanned: await planForModel(this.#plan, step, dir, calibration, this.#host.log) };
  }

  /** The new stages started beside the serving ones and warmed up; closed again when anything fails. */
  async #startPipeline(plan: Plan, signal: AbortSignal): Promise<{ pipeline: Pipeline; warm: WarmUp }> {
    const running = this.#host.running();
    if (running === undefined) throw new LinegateError('LG_ERR_DEPLOY_STATE', ['deploy', 'not running']);
    const pipeline = new Pipeline(plan, await startStages(plan, this.#host.log, running));
    try {
      signal.throwIfAborted();
      const warm = await warmUp(pipeline, this.#host.lastImage(), this.#host.log, signal);
      signal.throwIfAborted();
      return { pipeline, warm };
    } catch (e) {
      await pipeline.retire(0);
      throw e;
    }
  }

  /** Starts and warms up the new pipeline, journals the activation, then swaps it in; the old one closes once its parts are done. */
  async #activate(replanned: Replanned, step: PlannedStep, dir: string, how: Pick<Deployment, 'action' | 'by' | 'calibration'>, signal: AbortSignal): Promise<DeployReport> {
    const previous = this.models().active;
    const { pipeline, warm } = await this.#startPipeline(replanned.plan, signal);
    const { model } = replanned;
    const base = this.#fileBase();
    const entry: Deployment = {
      step: step.name,
      name: model.name,
      version: model.version,
      sha256: model.sha256,
      dir,
      activatedAt: new Date().toISOString(),
      by: how.by,
      action: how.action,
      ...(how.calibration === undefined ? {} : { calibration: how.calibration }),
      ...(base === undefined ? {} : { base }),
    };
    try {
      // Durable before acknowledged: a switch the journal does not hold would be undone by a restart.
      await this.#journal.append(entry);
    } catch (e) {
      await pipeline.retire(0);
      throw e;
    }
    const old = this.#host.current();
    this.#host.swap(pipeline);
    this.#thresholds = { ...warm.thresholds };
    this.#retire(old.retire(this.#plan.settings.closeTimeoutMs));
    const active = this.#journal.entries.at(-1)!;
    await this.#record(active);
    this.#host.log.info(
      { model: `${model.name}@${model.version}`, sha256: model.sha256, action: how.action, by: how.by, previous: previous === null ? null : `${previous.name}@${previous.version}`, warmupMs: Math.round(warm.ms), thresholds: warm.thresholds, warnings: replanned.warnings },
      `model ${how.action === 'rollback' ? 'rolled back to' : 'deployed:'} ${model.name}@${model.version}; the next part is judged by it`,
    );
    await this.#prune();
    this.#host.changed();
    return { ...(await this.#report(active, previous, warm.ms)), warnings: [...replanned.warnings] };
  }

  async #report(active: Deployment, previous: Deployment | null, warmupMs: number): Promise<DeployReport> {
    const status = this.models();
    return { deployment: active, previous: previous === active ? null : previous, thresholds: status.thresholds, calibration: status.calibration, warmupMs: Math.round(warmupMs * 1000) / 1000, warnings: [] };
  }

  /** One change at a time, only while the station runs, and never past close. */
  async #exclusive<T>(what: string, outer: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.#closing !== undefined) throw new LinegateError('LG_ERR_DEPLOY_STATE', [what, 'CLOSING']);
    const can = this.#host.canDeploy();
    if (can !== true) throw new LinegateError('LG_ERR_DEPLOY_STATE', [what, can]);
    if (this.#busy !== undefined) throw new LinegateError('LG_ERR_DEPLOY_BUSY', [what]);
    const signal = outer === undefined ? this.#abort.signal : AbortSignal.any([this.#abort.signal, outer]);
    const run = this.#startPrune.then(() => fn(signal));
    this.#busy = run;
    try {
      return await run;
    } finally {
      this.#busy = undefined;
    }
  }

  /**
   * The model the station starts on, into the traceability history: a start (the station file's
   * model, or the one the journal brought back) is an activation too. Called once the sinks are up.
   */
  async started(): Promise<void> {
    // Uploads a crash left half-written, and packages past deploy.keep, go now rather than at the next deploy
    // (which waits for this: a prune must never race a package being activated). Set before the first await.
    this.#startPrune = this.#prune().catch((err: unknown) => this.#host.log.warn({ err: messageOf(err) }, 'old deployed packages could not be pruned'));
    const top = this.#chain().at(-1);
    const active = top === undefined ? this.#startEntry() : { ...top, activatedAt: new Date().toISOString(), action: 'start' as const, by: `restart (${top.action} by ${top.by} at ${top.activatedAt})` };
    if (active !== undefined) await this.#record(active);
    await this.#startPrune;
  }

  /** The journal is the record a restart trusts; the history copy is for people, so a failure there is logged, never a refused switch. */
  async #record(d: Deployment): Promise<void> {
    const records = this.#host.records();
    if (records === undefined) return;
    try {
      await records.record(this.#plan.settings.id, d);
    } catch (err) {
      this.#host.log.warn({ err: messageOf(err), model: `${d.name}@${d.version}`, action: d.action }, 'a model activation could not be kept in the history (the deploy journal has it)');
    }
  }

  /** Shadow counts change with every frame it judges: told at most every SHADOW_TELL_MS, not at line rate. */
  #shadowChanged(): void {
    if (this.#tellTimer !== undefined || this.#closing !== undefined) return;
    this.#tellTimer = setTimeout(() => {
      this.#tellTimer = undefined;
      this.#host.changed();
    }, SHADOW_TELL_MS);
    this.#tellTimer.unref();
  }

  #retire(closing: Promise<void>): void {
    const tracked = closing.catch((err: unknown) => this.#host.log.error({ err }, 'closing a replaced pipeline failed')).finally(() => this.#retiring.delete(tracked));
    this.#retiring.add(tracked);
  }

  /** The deploys and rollbacks since the station file last named its current model, oldest first. */
  #chain(): Deployment[] {
    return this.#journal.chain(this.#fileBase());
  }

  /** The model the station file names: its folder and weights (a copy of the same weights under another folder is another model). */
  #fileBase(): Deployment['base'] {
    const start = this.#startEntry();
    return start === undefined ? undefined : { dir: start.dir, sha256: start.sha256 };
  }

  /** The model the station file names, as the first activation of the chain. */
  #startEntry(): Deployment | undefined {
    const m = this.#plan.models?.[0];
    if (m === undefined) return undefined;
    const step = this.#plan.stages.find((s) => s.name === m.step);
    const dir = String((step?.config as { model?: unknown } | undefined)?.model ?? '');
    return { step: m.step, name: m.model.name, version: m.model.version, sha256: m.model.sha256, dir: dir === '' ? '.' : dir, activatedAt: this.#startedAt.toISOString(), by: 'station file', action: 'start' };
  }

  async #prune(): Promise<void> {
    const protect = new Set<string>();
    for (const d of [...this.#chain().slice(-2), this.#startEntry()]) if (d !== undefined) protect.add(path.resolve(this.#plan.root, d.dir));
    if (this.#shadow !== undefined) protect.add(path.resolve(this.#plan.root, String((modelStep(this.#shadow.pipeline.plan).config as { model: string }).model)));
    await this.#store.prune(this.#plan.settings.deploy.keep, protect);
  }
}

const stationDir = (plan: Plan): string => path.resolve(plan.root, plan.settings.deploy.dir, plan.settings.id);
