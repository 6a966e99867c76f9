import path from 'node:path';
import type { Plan } from './compile/compile.js';

/*
 * Where a station's history lives, decided in one place: the sink that writes it, `linegate
 * history` and the HTTP API all ask here, so they can never disagree about the file.
 */

export const HISTORY_PLUGIN_ID = 'core/history@1';
/** The step the compiler adds to every station whose file does not say `history: false`. */
export const HISTORY_STEP = 'history';

export const HISTORY_DEFAULTS = Object.freeze({ dir: 'var/history', maxAgeDays: 90, maxMiB: 1024 });

/** `<dir>/<station id>.sqlite`; `dir` absolute, or relative to the station root. */
export function historyFileName(root: string, dir: string, stationId: string): string {
  return path.resolve(root, dir, `${stationId}.sqlite`);
}

/** The history file of a compiled station: its `core/history@1` sink's; undefined when the station keeps none. */
export function historyFileOf(plan: Plan): string | undefined {
  const step = plan.sinks.find((s) => s.plugin.manifest.id === HISTORY_PLUGIN_ID);
  if (step === undefined) return undefined;
  const dir = (step.config as { readonly dir?: unknown }).dir;
  return historyFileName(plan.root, typeof dir === 'string' ? dir : HISTORY_DEFAULTS.dir, plan.settings.id);
}
