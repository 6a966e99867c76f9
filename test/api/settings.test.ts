import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { apiSettingsFor } from '../../runtime/api/settings.js';
import { compileStationData } from '../../runtime/compile/compile.js';
import { builtinRegistry } from '../../runtime/registry/builtins.js';
import { ROOT } from '../helpers/station.js';

const data = (api?: unknown): Record<string, unknown> => ({
  station: { id: 'api-settings' },
  source: { name: 'cam', use: 'core/folder-source@1', config: { dir: 'fixtures/casting' } },
  stages: [
    { name: 'decode', use: 'core/image-decode@1' },
    { name: 'quality', use: 'core/image-quality@1' },
    { name: 'verdict', use: 'core/threshold-rules@1', config: { rules: [{ label: 'blurred', minScore: 0.99, rejectCode: 11 }] } },
  ],
  sinks: [],
  history: false,
  ...(api === undefined ? {} : { api }),
});

async function settings(api: unknown, apiPort?: number, env: Record<string, string> = {}) {
  const d = data(api);
  const plan = await compileStationData(d, path.join(ROOT, 'stations', 'api-settings.yaml'), builtinRegistry());
  return apiSettingsFor(plan, d, apiPort, env);
}

describe('where a station serves its API', () => {
  it('serves it on 127.0.0.1:8080 when the station file says nothing, as the issue and README promise', async () => {
    expect(await settings(undefined)).toMatchObject({ host: '127.0.0.1', port: 8080, auth: 'writes' });
  });

  it('moves the port with LINEGATE_API_PORT and --api-port (the flag over the environment, both over the file)', async () => {
    expect((await settings({ port: 9000 }, undefined, { LINEGATE_API_PORT: '9100' }))?.port).toBe(9100);
    expect((await settings({ port: 9000 }, 9200, { LINEGATE_API_PORT: '9100' }))?.port).toBe(9200);
    expect((await settings(undefined, undefined, { LINEGATE_API_PORT: '0' }))?.port).toBe(0);
  });

  it('keeps an api: false station closed whatever the environment says; only --api-port opens it', async () => {
    expect(await settings(false, undefined, { LINEGATE_API_PORT: '9100' })).toBeUndefined();
    expect((await settings(false, 0))?.port).toBe(0);
  });

  it('refuses a LINEGATE_API_PORT that is not a port, with a usage code', async () => {
    for (const bad of ['abc', '-1', '70000', '80.5']) {
      await expect(settings(undefined, undefined, { LINEGATE_API_PORT: bad })).rejects.toMatchObject({ code: 'LG_ERR_CLI_USAGE' });
    }
  });
});
