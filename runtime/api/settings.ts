import { ApiSettings, StationFile } from '../config/station-schema.js';
import { LinegateError } from '../errors.js';
import type { Plan } from '../compile/compile.js';
import type { EffectiveApiSettings } from './context.js';
import { HTTP_ROUTES_SERVICE } from './plugin-routes.js';

/**
 * The API settings for `linegate run`: the station file's `api:` block (defaults applied), with
 * `--api-port` over its port. Off (undefined) when the file has no block or `api: false` and no
 * port is given: a station file written before the API opens no port it did not ask for.
 * A station whose source takes frames over HTTP cannot run without it (LG_ERR_API_OFF).
 */
export function apiSettingsFor(plan: Plan, data: unknown, apiPort?: number): EffectiveApiSettings | undefined {
  // The file was validated by the compile; this only reads the block back with its defaults.
  const parsed = StationFile.shape.api.safeParse((data as { api?: unknown } | null)?.api);
  const block = parsed.success ? parsed.data : undefined;
  const settings: EffectiveApiSettings | undefined =
    block === undefined || block === false ? (apiPort === undefined ? undefined : { ...ApiSettings.parse({}), port: apiPort }) : { ...block, ...(apiPort === undefined ? {} : { port: apiPort }) };
  if (settings === undefined) {
    const http = [plan.source, ...plan.stages, ...plan.sinks].find((s) => (s.plugin.manifest.provides ?? []).includes(HTTP_ROUTES_SERVICE));
    if (http !== undefined) throw new LinegateError('LG_ERR_API_OFF', [http.name, http.plugin.manifest.id], { step: http.name, path: 'api' });
  }
  return settings;
}
