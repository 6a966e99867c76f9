import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openHistoryReader } from '../../plugins/history-sqlite/reader.js';
import type { DeploymentRecord } from '../../runtime/contract.js';
import type { Station } from '../../runtime/station.js';
import { linegate } from '../helpers/cli.js';
import { testRoot } from '../helpers/roots.js';
import { until } from '../helpers/until.js';
import { CASTING_2, castingStation, packageFiles } from './helpers.js';

const open: Station[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

async function activations(root: string, id: string): Promise<DeploymentRecord[]> {
  const reader = await openHistoryReader(path.join(root, 'var/history', `${id}.sqlite`));
  try {
    return (await reader.deployments?.(100)) ?? [];
  } finally {
    await reader.close();
  }
}

describe('model activations in the traceability history', () => {
  it('keeps every start, deploy and rollback with who and when, across a restart, and `history --deployments` prints them', async () => {
    const root = testRoot();
    const id = 'deploy-hist';
    const first = await castingStation(id, root, { history: true, sinks: [] });
    open.push(first);
    await first.start();
    await first.deployModel(packageFiles(CASTING_2), { by: 'anna' });
    await first.rollbackModel({ by: 'ben' });
    await first.deployModel(packageFiles(CASTING_2), { by: 'carl' });
    await first.close();

    const again = await castingStation(id, root, { history: true, sinks: [] });
    open.push(again);
    await again.start();
    await until(async () => (await activations(root, id)).length >= 5, { what: 'the restart kept in the history' });
    await again.close();

    const rows = await activations(root, id);
    expect(rows.map((r) => [r.action, r.version, r.by.replace(/ at .*\)$/, ')')])).toEqual([
      ['start', '2', 'restart (deploy by carl)'],
      ['deploy', '2', 'carl'],
      ['rollback', '1', 'ben'],
      ['deploy', '2', 'anna'],
      ['start', '1', 'station file'],
    ]);
    for (const r of rows) expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);

    const cli = await linegate(['history', path.join(root, 'stations', `${id}.yaml`), '--deployments']);
    expect(cli.code, cli.stderr).toBe(0);
    const lines = cli.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^time\s+action\s+model\s+sha256\s+by\s+step$/);
    expect(lines[2]).toMatch(/\bdeploy\s+casting-cls@2\s+[0-9a-f]{12}\s+carl\s+model$/);
    const json = await linegate(['history', path.join(root, 'stations', `${id}.yaml`), '--deployments', '--json', '--limit', '2']);
    expect(json.stdout.trim().split('\n').map((l) => (JSON.parse(l) as DeploymentRecord).action)).toEqual(['start', 'deploy']);
  });
});
