import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Frame, Logger, PluginContext, PluginModule, StageInstance } from '../contract.js';
import { LinegateError } from '../errors.js';
import { builtinRegistry } from '../registry/builtins.js';
import { loadModelPackage } from '../../plugins/model-onnx/manifest.js';
import { DEFAULT_TOLERANCE, checkImage, loadParityRef, summarise, type ParityCheck } from '../../plugins/model-onnx/parity.js';
import type { CommandContext, LogOptions } from './context.js';
import { EXIT } from './io.js';

export interface ParityOptions extends LogOptions {
  readonly ref: string;
  readonly tolerance?: number;
  readonly json?: boolean;
}

/** The two steps a station runs before any decoder, with no ROI and no tiling: what the package alone promises. */
const DECODE = 'core/image-decode@1';
const MODEL = 'core/onnx-model@1';

function stageOf(id: string): PluginModule {
  const plugin = builtinRegistry().get(id);
  if (plugin === undefined) throw new Error(`built-in plugin ${id} is not registered`);
  return plugin;
}

const isStage = (x: unknown): x is StageInstance => typeof x === 'object' && x !== null && typeof (x as { run?: unknown }).run === 'function';

async function startStage(plugin: PluginModule, config: unknown, ctx: PluginContext): Promise<StageInstance> {
  // The plugin's own schema makes the config; every config schema is an object, so the cast only restates that.
  const instance: unknown = await plugin.init(plugin.manifest.config.parse(config) as object, ctx);
  if (!isStage(instance)) throw new Error(`${plugin.manifest.id} did not start as a stage`);
  return instance;
}

function contextFor(log: Logger, signal: AbortSignal, step: string): PluginContext {
  return {
    log: log.child({ step, command: 'models parity' }),
    signal,
    stationId: 'parity',
    step,
    timing: { cycleBudgetMs: 60_000, sinkTimeoutMs: 60_000, closeTimeoutMs: 10_000 },
    // The package and the images are named on the command line, not by a station file: nothing to confine them to.
    resolvePath: (p) => path.resolve(p),
    resolveAsset: (p) => path.resolve(p),
    dependency: (field) => {
      throw new LinegateError('LG_ERR_CLI_USAGE', [`models parity runs no step that provides ${field}`]);
    },
  };
}

const fmt = (n: number): string => (Number.isFinite(n) ? n.toExponential(2) : String(n));

/**
 * `models parity <pkg> --ref ref.json`: every reference image through the
 * station's own image decode and model step (the package's preprocessing and
 * session, not a copy of them), each output compared with what the training
 * framework gave. Exit 0 within tolerance, 3 (a failed gate) beyond it, 2
 * when the reference or the package is unusable.
 */
export async function parityCommand(pkg: string, opts: ParityOptions, ctx: CommandContext): Promise<number> {
  const log = ctx.logger(opts);
  const dir = path.resolve(pkg);
  // The reference is checked first: a typo in it should not cost a model load.
  const ref = await loadParityRef(opts.ref);
  for (const c of ref.cases) {
    const ok = await stat(c.file).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!ok) throw new LinegateError('LG_ERR_PARITY_REF', [ref.file, `image ${c.name} is not there (${c.file})`]);
  }
  const tolerance = opts.tolerance ?? ref.tolerance ?? DEFAULT_TOLERANCE;
  const { manifest } = await loadModelPackage(dir);
  const abort = new AbortController();
  const decode = await startStage(stageOf(DECODE), { color: manifest.input.channels === 1 ? 'GRAY' : 'RGB' }, contextFor(log, abort.signal, 'decode'));
  const modelCtx = contextFor(log, abort.signal, 'model');
  let model: StageInstance;
  try {
    model = await startStage(stageOf(MODEL), { model: dir, warmup: false }, modelCtx);
  } catch (e) {
    await decode.close?.();
    throw e;
  }
  const checks: ParityCheck[] = [];
  try {
    for (const [k, c] of ref.cases.entries()) {
      const format = path.extname(c.file).slice(1).toLowerCase();
      const frame: Frame = { ref: c.file, partId: c.name, sequence: k, capturedAt: new Date(), image: { kind: 'encoded', data: await readFile(c.file), format } };
      const { image } = await decode.run({ frame }, contextFor(log, abort.signal, 'decode'));
      const { outputs } = await model.run({ frame, ...(image === undefined ? {} : { image }) }, modelCtx);
      checks.push(...checkImage(ref, c, outputs ?? {}, tolerance));
    }
  } finally {
    abort.abort();
    await model.close?.();
    await decode.close?.();
  }
  const outputs = summarise(checks);
  const failures = checks.filter((c) => !c.ok);
  const report = {
    package: dir,
    model: { name: manifest.name, version: manifest.version, sha256: manifest.sha256, kernel: manifest.input.kernel },
    ref: ref.file,
    format: ref.format,
    tolerance,
    images: ref.cases.length,
    passed: failures.length === 0,
    outputs,
    failures,
  };
  if (opts.json === true) ctx.io.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    const lines = [`parity ${manifest.name}@${manifest.version} against ${ref.file}: ${report.passed ? 'PASS' : 'FAIL'} (${ref.cases.length} images, tolerance ${tolerance})`];
    for (const o of outputs) lines.push(`  ${o.output.padEnd(14)} max |diff| ${fmt(o.maxAbsDiff)} on ${o.image}${o.passed ? '' : `, ${o.failed} of ${o.checks} checks beyond tolerance`}`);
    ctx.io.stdout.write(`${lines.join('\n')}\n`);
  }
  if (report.passed) return EXIT.ok;
  const worst = failures.reduce((a, b) => (b.diff - b.allowed > a.diff - a.allowed ? b : a));
  log.error(
    { failures: failures.length, worst },
    `parity failed: ${failures.length} check(s) beyond tolerance, worst ${worst.output} (${worst.kind}) on ${worst.image}: |diff| ${fmt(worst.diff)} > ${fmt(worst.allowed)}. Check model.json's preprocessing (input.kernel ${manifest.input.kernel}, resize ${manifest.input.resize.mode}, color ${manifest.input.color}, scale/mean/std) against the training code`,
  );
  return EXIT.gate;
}
