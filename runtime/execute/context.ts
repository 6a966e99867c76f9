import path from 'node:path';
import type { Logger, PluginContext } from '../contract.js';
import { LinegateError } from '../errors.js';
import type { Plan, PlannedStep } from '../compile/compile.js';

const ASSET_DIRS = ['models', 'calibration', 'fixtures'];

/**
 * A step's context. `dependencies` holds, by config field, the services of the steps this one
 * declared it needs (started before it: see compile's start order).
 */
export function makeContext(plan: Plan, step: PlannedStep, log: Logger, signal: AbortSignal, dependencies: ReadonlyMap<string, unknown> = new Map()): PluginContext {
  const root = plan.root;
  // Packages deployed through the API live in the deploy folder (var/deploy by default), not in models/.
  const deployDir = path.resolve(root, plan.settings.deploy.dir);
  const { cycleBudgetMs, sinkTimeoutMs, closeTimeoutMs } = plan.settings;
  return {
    log: log.child({ step: step.name, plugin: step.plugin.manifest.id }),
    signal,
    stationId: plan.settings.id,
    step: step.name,
    timing: Object.freeze({ cycleBudgetMs, sinkTimeoutMs, closeTimeoutMs }),
    ...(plan.calibration === undefined ? {} : { calibration: plan.calibration }),
    resolvePath: (p) => path.resolve(root, p),
    resolveAsset: (ref) => {
      const abs = path.resolve(root, ref);
      const rel = path.relative(root, abs);
      const top = rel.split(path.sep)[0] ?? '';
      const climbs = ref.split(/[\\/]/).includes('..');
      // The deploy folder may lie outside the station root (deploy.dir absolute): a package there is named by its absolute path.
      if (!climbs && inside(deployDir, abs)) return abs;
      if (climbs || rel.startsWith('..') || path.isAbsolute(rel) || !ASSET_DIRS.includes(top)) {
        throw new LinegateError('LG_ERR_STATION_PATH', [ref, step.name], { step: step.name });
      }
      return abs;
    },
    dependency: (field) => {
      if (!dependencies.has(field)) {
        throw new LinegateError('LG_ERR_STATION_DEPENDENCY', [step.name, step.plugin.manifest.id, 'a step', field, 'its manifest declares no dependency on that field'], { step: step.name });
      }
      return dependencies.get(field);
    },
  };
}

const inside = (dir: string, p: string): boolean => {
  const rel = path.relative(dir, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
};

/** The same context with another signal (a part's cycle budget), without a new logger per part. */
export const withSignal = (ctx: PluginContext, signal: AbortSignal): PluginContext => ({ ...ctx, signal });
