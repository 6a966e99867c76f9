import type { PluginModule } from '../contract.js';
import { LinegateError } from '../errors.js';
import { assertPlugin } from './validate.js';

export interface RegisteredPlugin {
  readonly plugin: PluginModule;
  /** `builtin`, a package name or a file path: where the plugin came from, for error messages. */
  readonly origin: string;
}

/** Plugins by id. Built-ins first; a station's own plugins are added to a copy. */
export class Registry {
  readonly #plugins = new Map<string, RegisteredPlugin>();

  register(candidate: unknown, origin: string): PluginModule {
    const plugin = assertPlugin(candidate, origin);
    const existing = this.#plugins.get(plugin.manifest.id);
    if (existing !== undefined) {
      throw new LinegateError('LG_ERR_PLUGIN_DUPLICATE', [plugin.manifest.id, `${existing.origin} and ${origin}`]);
    }
    this.#plugins.set(plugin.manifest.id, { plugin, origin });
    return plugin;
  }

  get(id: string): PluginModule | undefined {
    return this.#plugins.get(id)?.plugin;
  }

  list(): readonly RegisteredPlugin[] {
    return [...this.#plugins.values()].sort((a, b) => a.plugin.manifest.id.localeCompare(b.plugin.manifest.id));
  }

  /** Ids that look like a misspelt one: same name other major, or a small edit distance. */
  suggest(id: string): string[] {
    const base = id.replace(/@.*$/, '');
    return [...this.#plugins.keys()].filter((k) => k.replace(/@.*$/, '') === base || editDistance(k, id) <= 3).slice(0, 3);
  }

  clone(): Registry {
    const copy = new Registry();
    for (const [id, entry] of this.#plugins) copy.#plugins.set(id, entry);
    return copy;
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}
