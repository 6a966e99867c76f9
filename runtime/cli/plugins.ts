import { z } from 'zod';
import type { Caps, PluginManifest, StepDependency } from '../contract.js';
import { formatCaps } from '../compile/caps.js';
import { messageOf } from '../errors.js';
import { builtinRegistry } from '../registry/builtins.js';
import type { CommandContext, LogOptions } from './context.js';
import { EXIT } from './io.js';

/** A plugin as `linegate plugins --json` prints it: what a station file may say about it, and what it plugs into. */
export interface PluginDescription {
  readonly id: string;
  readonly kind: string;
  readonly description: string;
  /** Sinks: awaited inside the part's cycle. */
  readonly critical?: boolean;
  readonly accepts?: readonly Caps[];
  readonly produces?: readonly Caps[];
  readonly provides?: readonly string[];
  readonly requires?: readonly StepDependency[];
  /** The config as JSON Schema (what a station file may write: optional fields carry their default). */
  readonly config: Record<string, unknown>;
}

/** JSON Schema of what a station file may write; a schema zod cannot express says so instead of failing the listing. */
function configSchema(m: PluginManifest): Record<string, unknown> {
  try {
    return z.toJSONSchema(m.config, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  } catch (e) {
    return { description: `no JSON Schema: ${messageOf(e)}` };
  }
}

export function describePlugin(m: PluginManifest): PluginDescription {
  return {
    id: m.id,
    kind: m.kind,
    description: m.description,
    ...(m.kind === 'sink' ? { critical: m.critical === true } : {}),
    ...(m.accepts === undefined ? {} : { accepts: m.accepts }),
    ...(m.produces === undefined ? {} : { produces: m.produces }),
    ...(m.provides === undefined ? {} : { provides: m.provides }),
    ...(m.requires === undefined ? {} : { requires: m.requires }),
    config: configSchema(m),
  };
}

/** One line per plugin, then its caps and links indented under it. */
function text(d: PluginDescription): string {
  const links = [
    d.accepts === undefined ? '' : `in: ${formatCaps(d.accepts)}`,
    d.produces === undefined ? '' : `out: ${formatCaps(d.produces)}`,
    d.critical === undefined ? '' : d.critical ? 'critical' : 'background',
    d.provides === undefined ? '' : `provides: ${d.provides.join(', ')}`,
    d.requires === undefined ? '' : `requires: ${d.requires.map((r) => `${r.service} (config.${r.field})`).join(', ')}`,
  ].filter(Boolean);
  return `${d.id.padEnd(28)} ${d.kind.padEnd(12)} ${d.description}\n${' '.repeat(29)}${links.join('; ')}\n`;
}

/** `plugins`: every built-in plugin with its caps, links and config schema (--json), or a readable list. */
export function pluginsCommand(opts: LogOptions & { readonly json?: boolean }, ctx: CommandContext): number {
  ctx.logger(opts);
  const list = builtinRegistry()
    .list()
    .map(({ plugin }) => describePlugin(plugin.manifest));
  ctx.io.stdout.write(opts.json === true ? `${JSON.stringify(list, null, 2)}\n` : list.map(text).join(''));
  return EXIT.ok;
}
