import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { linegate } from '../helpers/cli.js';
import { testRoot } from '../helpers/roots.js';

const station = (api: string): string => `
station: { id: cli-api, cycleBudgetMs: 2000 }
source: { name: cam, use: core/folder-source@1, config: { dir: fixtures/casting, rateHz: 20 } }
stages:
  - { name: decode, use: core/image-decode@1, config: { color: GRAY } }
  - { name: quality, use: core/image-quality@1 }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ label: blurred, minScore: 0.99, rejectCode: 11 }] } }
${api}
`;

describe('linegate run with the API', () => {
  it('serves the API on the port --api-port 0 picked, logs where, and closes it before the steps', async () => {
    const root = testRoot();
    const file = path.join(root, 'stations', 'api.yaml');
    writeFileSync(file, station('api: { port: 8080 }'));
    let ready: Promise<Response> | undefined;
    const run = await linegate(['run', file, '--max-frames', '6', '--api-port', '0', '--no-pretty'], {}, (text) => {
      const m = /HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(text);
      if (m !== null && ready === undefined) ready = fetch(`${m[1]}/ready`);
    });
    expect(run.code).toBe(0);
    const logs = run.logs();
    const listening = logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('HTTP API listening on'));
    expect(listening?.api).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(listening?.api).not.toBe('http://127.0.0.1:8080');
    expect(ready).toBeDefined();
    expect([200, 503]).toContain((await ready!).status);
  });

  it('refuses a station whose source takes frames over HTTP while the API is off', async () => {
    const root = testRoot();
    const file = path.join(root, 'stations', 'http.yaml');
    writeFileSync(file, station('api: false').replace('{ name: cam, use: core/folder-source@1, config: { dir: fixtures/casting, rateHz: 20 } }', '{ name: cam, use: core/http-source@1 }'));
    const run = await linegate(['run', file, '--no-pretty'], {});
    expect(run.code).toBe(2);
    expect(run.stdout + run.stderr).toContain('LG_ERR_API_OFF');
  });

  it('finds, through the API of a restarted station, a part the station inspected before the restart (the history survives)', async () => {
    const root = testRoot();
    const before = path.join(root, 'stations', 'before.yaml');
    const after = path.join(root, 'stations', 'after.yaml');
    // Same station id (so the same history file), different images: what the second run finds of the first is the history's.
    writeFileSync(before, station('').replace('dir: fixtures/casting,', 'dir: fixtures/casting/def_front,'));
    // 2 frames a second for 6 frames: the API stays up at least 2.5 s after it says it listens, for one local request.
    writeFileSync(after, station('').replace('dir: fixtures/casting, rateHz: 20', 'dir: fixtures/casting/ok_front, rateHz: 2'));
    const first = await linegate(['run', before, '--max-frames', '3', '--no-pretty'], {});
    expect(first.code).toBe(0);
    const part = 'cast_def_0_103';
    let found: Promise<{ status: number; body: { items: { partId: string; resultId: string; verdict: string }[] } }> | undefined;
    const second = await linegate(['run', after, '--max-frames', '6', '--no-pretty'], {}, (text) => {
      const m = /HTTP API listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(text);
      if (m !== null && found === undefined) {
        found = fetch(`${m[1]}/api/results?partId=${part}`).then(async (r) => ({ status: r.status, body: (await r.json()) as never }));
      }
    });
    expect(second.code).toBe(0);
    expect(found).toBeDefined();
    const { status, body } = await found!;
    expect(status).toBe(200);
    expect(body.items).toHaveLength(1);
    expect(body.items[0]).toMatchObject({ partId: part });
    expect(['pass', 'fail']).toContain(body.items[0]!.verdict);
  });
});
