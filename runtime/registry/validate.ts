import { PLUGIN_ID_PATTERN, PLUGIN_KINDS, STAGE_KINDS, type PluginKind, type PluginModule } from '../contract.js';
import { LinegateError } from '../errors.js';

const CAPS_TYPES = new Set(['image/encoded', 'image/raw', 'tensor', 'model/output', 'findings', 'decision']);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** What is wrong with a candidate plugin, or an empty list when it honours the contract. */
export function contractProblems(candidate: unknown): string[] {
  if (!isObject(candidate)) return ['a plugin must be an object with `manifest` and `init`'];
  const problems: string[] = [];
  if (typeof candidate.init !== 'function') problems.push('`init` must be a function returning a promise of the instance');
  const m = candidate.manifest;
  if (!isObject(m)) return [...problems, '`manifest` is missing'];
  if (typeof m.id !== 'string' || !PLUGIN_ID_PATTERN.test(m.id)) {
    problems.push(`manifest.id ${JSON.stringify(m.id)} is not of the form "namespace/name@major" (e.g. "acme/blob-filter@1")`);
  }
  if (typeof m.kind !== 'string' || !PLUGIN_KINDS.includes(m.kind as PluginKind)) {
    problems.push(`manifest.kind ${JSON.stringify(m.kind)} is not one of ${PLUGIN_KINDS.join(', ')}`);
  }
  if (typeof m.description !== 'string' || m.description.length === 0) problems.push('manifest.description must be a non-empty string');
  if (!isObject(m.config) || typeof m.config.safeParse !== 'function') problems.push('manifest.config must be a zod schema');
  const kind = m.kind as PluginKind;
  const isStage = STAGE_KINDS.includes(kind as never);
  for (const side of ['accepts', 'produces'] as const) {
    const caps = m[side];
    const needed = side === 'accepts' ? isStage : kind !== 'sink';
    if (caps === undefined) {
      if (needed) problems.push(`manifest.${side} is required for a ${kind} plugin`);
      continue;
    }
    if (!Array.isArray(caps) || caps.length === 0) {
      problems.push(`manifest.${side} must be a non-empty array of caps`);
      continue;
    }
    caps.forEach((c, i) => {
      if (!isObject(c) || typeof c.type !== 'string' || !CAPS_TYPES.has(c.type)) {
        problems.push(`manifest.${side}[${i}].type must be one of ${[...CAPS_TYPES].join(', ')}`);
      }
    });
  }
  if (kind === 'decision' && Array.isArray(m.produces) && !m.produces.some((c) => isObject(c) && c.type === 'decision')) {
    problems.push('a decision plugin must produce caps type "decision"');
  }
  if (m.critical !== undefined && typeof m.critical !== 'boolean') problems.push('manifest.critical must be a boolean');
  if (m.durable !== undefined) {
    if (typeof m.durable !== 'boolean' && typeof m.durable !== 'function') problems.push('manifest.durable must be a boolean or a function of the config');
    else if (kind !== 'sink') problems.push('manifest.durable is for sink plugins only');
  }
  if (m.provides !== undefined && !(Array.isArray(m.provides) && m.provides.every((p) => typeof p === 'string' && p.length > 0))) {
    problems.push('manifest.provides must be an array of service names');
  }
  if (m.requires !== undefined && !(Array.isArray(m.requires) && m.requires.every((r) => isObject(r) && typeof r.field === 'string' && typeof r.service === 'string'))) {
    problems.push('manifest.requires must be an array of { field, service }');
  }
  if (m.checkTiming !== undefined && typeof m.checkTiming !== 'function') problems.push('manifest.checkTiming must be a function');
  if (m.verify !== undefined && typeof m.verify !== 'function') problems.push('manifest.verify must be a function returning a promise of the problems found');
  return problems;
}

/** Refuses, with a coded error, anything that does not match the plugin contract. */
export function assertPlugin(candidate: unknown, origin: string): PluginModule {
  const problems = contractProblems(candidate);
  if (problems.length > 0) throw new LinegateError('LG_ERR_PLUGIN_INVALID', [origin, problems.join('; ')]);
  return candidate as PluginModule;
}
