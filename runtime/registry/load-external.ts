import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LinegateError, messageOf } from '../errors.js';
import type { Registry } from './registry.js';
import { resolvePackage } from './resolve-package.js';

/**
 * Loads third-party plugins named in a station file into `registry`. A module
 * exports `plugin` (one) or `plugins` (several), named exports only. Paths
 * resolve against the station file's folder, package names against the
 * station root's node_modules.
 */
export async function loadExternalPlugins(specs: readonly string[], stationFile: string, root: string, registry: Registry): Promise<void> {
  for (const spec of specs) {
    const url = resolveSpec(spec, stationFile, root);
    let mod: Record<string, unknown>;
    try {
      mod = (await import(url)) as Record<string, unknown>;
    } catch (e) {
      throw new LinegateError('LG_ERR_PLUGIN_LOAD', [spec, messageOf(e)], { cause: e });
    }
    const exported = mod.plugins ?? (mod.plugin === undefined ? undefined : [mod.plugin]);
    if (!Array.isArray(exported) || exported.length === 0) {
      throw new LinegateError('LG_ERR_PLUGIN_INVALID', [spec, 'the module has no named export `plugin` or `plugins`']);
    }
    for (const candidate of exported) registry.register(candidate, spec);
  }
}

function resolveSpec(spec: string, stationFile: string, root: string): string {
  if (spec.startsWith('.') || path.isAbsolute(spec)) return pathToFileURL(path.resolve(path.dirname(stationFile), spec)).href;
  const file = resolvePackage(spec, root);
  // Not installed under the station root: let import() look beside linegate itself.
  return file === undefined ? spec : pathToFileURL(file).href;
}
