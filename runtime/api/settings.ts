import { ApiSettings, StationFile } from '../config/station-schema.js';
import { LinegateError } from '../errors.js';
import type { Plan } from '../compile/compile.js';
import type { EffectiveApiSettings } from './context.js';
import { HTTP_ROUTES_SERVICE } from './plugin-routes.js';

/**
 * The API settings for `linegate run`: on unless the station file says `api: false`, with the
 * file's `api:` block (defaults applied: 127.0.0.1:8080), the port from LINEGATE_API_PORT over the
 * file's, and `--api-port` over both. `--api-port` turns an `api: false` station's API on; the
 * environment, set for every station of a machine, does not. A station whose source takes frames over HTTP cannot run without it (LG_ERR_API_OFF).
 */
export function apiSettingsFor(plan: Plan, data: unknown, apiPort?: number, env: Readonly<Record<string, string | undefined>> = {}): EffectiveApiSettings | undefined {
  // The file was validated by the compile; this only reads the block back with its defaults.
  const parsed = StationFile.shape.api.safeParse((data as { api?: unknown } | null)?.api);
  const block = parsed.success ? (parsed.data ?? ApiSettings.parse({})) : undefined;
  const settings: EffectiveApiSettings | undefined =
    block === undefined || block === false
      ? apiPort === undefined
        ? undefined
        : { ...ApiSettings.parse({}), port: apiPort }
      : { ...block, ...((apiPort ?? envPort(env)) === undefined ? {} : { port: apiPort ?? envPort(env)! }) };
  if (settings === undefined) {
    const http = [plan.source, ...plan.stages, ...plan.sinks].find((s) => (s.plugin.manifest.provides ?? []).includes(HTTP_ROUTES_SERVICE));
    if (http !== undefined) throw new LinegateError('LG_ERR_API_OFF', [http.name, http.plugin.manifest.id], { step: http.name, path: 'api' });
  }
  return settings;
}

/** LINEGATE_API_PORT: a service unit or a test run moves every station's API without editing station files. */
function envPort(env: Readonly<Record<string, string | undefined>>): number | undefined {
  const raw = env.LINEGATE_API_PORT;
  if (raw === undefined || raw === '') return undefined;
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65_535) throw new LinegateError('LG_ERR_CLI_USAGE', [`LINEGATE_API_PORT must be a port number (0-65535, 0: a free port), not "${raw}"`]);
  return port;
}
