import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { once } from 'node:events';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiServer, startApi } from '../../runtime/api/server.js';
import { DeployReport, ModelsStatus, ShadowStatus } from '../../runtime/deploy/types.js';
import type { InspectionResult } from '../../runtime/result.js';
import type { Station } from '../../runtime/station.js';
import { LinegateProcess } from '../helpers/child.js';
import { linegate, type CliRun } from '../helpers/cli.js';
import { scratch } from '../helpers/scratch.js';
import { ROOT, silentLog, stationFrom } from '../helpers/station.js';
import { until } from '../helpers/until.js';
import { castingStages } from '../helpers/casting.js';
import { stopServed } from '../helpers/served.js';

const TOKEN = 'cli-models-token-0123456789abcdef';
const V1 = path.join(ROOT, 'models/casting-cls/1');
const V2 = path.join(ROOT, 'models/casting-cls/2');
/** No token from the machine running the tests leaks in. */
const NO_TOKEN = { LINEGATE_API_TOKEN: '' };
const WITH_TOKEN = { LINEGATE_API_TOKEN: TOKEN };

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

const codes = (run: CliRun): string[] => run.logs().flatMap((l) => (typeof l.code === 'string' ? [l.code] : []));

/** A plain HTTP server of the test's own that answers with `handler` (or never). */
async function peer(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<string> {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  const address = server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

/** A port nothing listens on: one the system just gave out and took back. */
async function deadUrl(): Promise<string> {
  const server = http.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  await new Promise((r) => server.close(r));
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

function packageCopy(from: string, edit: (dir: string) => void = () => undefined): string {
  const dir = scratch('lg-cli-pkg-');
  for (const name of readdirSync(from)) copyFileSync(path.join(from, name), path.join(dir, name));
  edit(dir);
  return dir;
}

describe('linegate models deploy | rollback | shadow | status: misuse, found before anything is sent (exit 2)', () => {
  it('refuses to change a station without LINEGATE_API_TOKEN, saying so', async () => {
    for (const args of [
      ['deploy', 'http://127.0.0.1:9', V2],
      ['rollback', 'http://127.0.0.1:9'],
      ['shadow', 'start', 'http://127.0.0.1:9', V2],
      ['shadow', 'stop', 'http://127.0.0.1:9'],
    ]) {
      const run = await linegate(['models', ...args, '--no-pretty'], NO_TOKEN);
      expect(run.code, args.join(' ')).toBe(2);
      expect(codes(run), args.join(' ')).toEqual(['LG_ERR_CLI_TOKEN']);
      expect(run.messages().join('\n')).toContain('LINEGATE_API_TOKEN');
      expect(run.stdout).toBe('');
    }
  });

  it('refuses a package folder that is missing, has a sub-folder, has no model.json, or is larger than --max-package-mib', async () => {
    const withSub = packageCopy(V2, (dir) => mkdirSync(path.join(dir, 'extras')));
    const noManifest = scratch('lg-cli-nomanifest-');
    writeFileSync(path.join(noManifest, 'model.onnx'), 'not a model');
    const cases: [string, string[], RegExp][] = [
      ['missing', [path.join(ROOT, 'models/casting-cls/9')], /there is no such folder/],
      ['a file', [path.join(V2, 'model.json')], /it is a file, not a package folder/],
      ['a sub-folder', [withSub], /it has sub-folders \(extras\): a package is flat/],
      ['the versions folder', [path.join(ROOT, 'models/casting-cls')], /it has sub-folders \(1, 2\)/],
      ['no model.json', [noManifest], /it has no model\.json/],
      ['too large', [V2, '--max-package-mib', '1'], /it is \d+ bytes, more than --max-package-mib 1/],
    ];
    for (const [what, args, why] of cases) {
      const run = await linegate(['models', 'deploy', 'http://127.0.0.1:9', ...args, '--no-pretty'], WITH_TOKEN);
      expect(run.code, what).toBe(2);
      expect(codes(run), what).toEqual(['LG_ERR_CLI_PACKAGE']);
      expect(run.messages().join('\n'), what).toMatch(why);
    }
  });

  it('refuses a station URL that is not an http(s) API root', async () => {
    for (const url of ['127.0.0.1:8080', 'ftp://127.0.0.1/', 'http://user:pw@127.0.0.1:8080', 'http://127.0.0.1:8080/?x=1', 'not a url']) {
      const run = await linegate(['models', 'status', url, '--no-pretty'], WITH_TOKEN);
      expect(run.code, url).toBe(2);
      expect(codes(run), url).toEqual(['LG_ERR_CLI_USAGE']);
    }
  });
});

describe('linegate models: when the station refuses or cannot be reached (exit 1)', () => {
  it('says the station is unreachable when nothing listens there', async () => {
    const run = await linegate(['models', 'status', await deadUrl(), '--no-pretty'], WITH_TOKEN);
    expect(run.code).toBe(1);
    expect(codes(run)).toEqual(['LG_ERR_CLI_UNREACHABLE']);
    expect(run.messages().join('\n')).toMatch(/ECONNREFUSED/);
  });

  it('gives up after --timeout-ms when the station does not answer, and says a deploy may still finish', async () => {
    const url = await peer(() => undefined);
    const started = Date.now();
    const run = await linegate(['models', 'deploy', url, V2, '--timeout-ms', '300', '--no-pretty'], WITH_TOKEN);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(run.code).toBe(1);
    expect(codes(run)).toEqual(['LG_ERR_CLI_NO_ANSWER']);
    expect(run.messages().join('\n')).toMatch(/nothing within 300 ms \(--timeout-ms\); the station may still finish it/);
  });

  it('says when what answers is not a linegate station', async () => {
    const url = await peer((_req, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html>Bad Gateway</html>'));
    const run = await linegate(['models', 'rollback', url, '--no-pretty'], WITH_TOKEN);
    expect(run.code).toBe(1);
    expect(codes(run)).toEqual(['LG_ERR_CLI_REPLY']);
    expect(run.messages().join('\n')).toContain('HTTP 502 with text/html');
  });

  it("logs the station's own coded errors and exits 1 when it refuses (a wrong token)", async () => {
    const station = stationFrom({
      station: { id: 'cli-models-refuse' },
      source: { name: 'cam', use: 'test/source@1', config: { probe: 'cli-models-refuse', count: 0, quietAfter: 0 } },
      stages: [
        { name: 'work', use: 'test/stage@1', config: { probe: 'cli-models-refuse' } },
        { name: 'verdict', use: 'test/decide@1', config: { probe: 'cli-models-refuse' } },
      ],
      sinks: [],
    });
    const server = await startApi({ station, settings: { host: '127.0.0.1', port: 0, auth: 'writes', maxUploadMiB: 1 }, log: silentLog, env: { LINEGATE_API_TOKEN: `${TOKEN}-other` } });
    cleanup.push(async () => {
      await server.close();
      await station.close();
    });
    const run = await linegate(['models', 'rollback', server.url, '--no-pretty'], WITH_TOKEN);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    const refused = run.logs().find((l) => l.code === 'LG_ERR_API_UNAUTHORIZED');
    expect(refused).toMatchObject({ level: 50, status: 401, station: `${server.url}/` });
    expect(refused?.msg).toMatch(/^LG_ERR_API_UNAUTHORIZED: POST \/api\/models\/rollback needs a valid bearer token/);
  });

  it('abandons the request on SIGINT (a real process) and exits 1', { timeout: 60_000 }, async () => {
    let got = 0;
    const url = await peer((req) => {
      got++;
      req.resume();
    });
    const cli = new LinegateProcess(['models', 'deploy', url, V2, '--no-pretty'], { env: WITH_TOKEN, timeoutMs: 50_000 });
    await cli.waitFor(/uploading 6 files/, 40_000);
    await until(() => got > 0, { what: 'the upload reached the peer' });
    cli.signal('SIGINT');
    const { code } = await cli.exited;
    expect(code).toBe(1);
    expect(cli.stderr).toMatch(/LG_ERR_CLI_NO_ANSWER.*interrupted before it answered/);
  });
});

/* ---------------------------------------------------------------------------------------------- */

describe('linegate models against a running station (the real engine)', () => {
  it('deploys /2 (every later result names it), shows the status, runs /1 as a shadow, refuses a corrupt package while /2 serves, and rolls back to /1', { timeout: 180_000 }, async () => {
    const station: Station = stationFrom({
      station: { id: 'cli-models-live', cycleBudgetMs: 5000, maxInFlight: 1 },
      source: { name: 'cam', use: 'core/folder-source@1', config: { dir: 'fixtures/casting', loop: true, rateHz: 10 } },
      stages: castingStages(),
      sinks: [],
    });
    const tokens = path.join(scratch('lg-cli-tokens-'), 'tokens');
    writeFileSync(tokens, `ci ${TOKEN}\n`);
    await station.start();
    const server: ApiServer = await startApi({ station, settings: { host: '127.0.0.1', port: 0, auth: 'writes', maxUploadMiB: 1, tokenFile: tokens }, log: silentLog, env: {} });
    const results: InspectionResult[] = [];
    const drops: InspectionResult[] = [];
    station.on('result', (r) => void results.push(r));
    station.on('drop', (r) => void drops.push(r));
    const running = station.run();
    cleanup.push(() => stopServed({ server, station, run: running }));
    const versionsFrom = async (from: number, n: number): Promise<string[]> => {
      await until(() => results.length >= from + n, { ms: 30_000, what: `${n} results after the ${from}th` });
      return results.slice(from, from + n).map((r) => r.model?.version ?? 'none');
    };
    // The part in flight when a switch is answered (at most one: maxInFlight 1) ends with the model that took it.
    const afterSwitch = async (old: string, n: number): Promise<string[]> => {
      const v = await versionsFrom(results.length, n + 1);
      return v[0] === old ? v.slice(1) : v.slice(0, n);
    };
    await versionsFrom(0, 2);

    const deploy = await linegate(['models', 'deploy', server.url, V2, '--no-pretty'], WITH_TOKEN);
    expect(deploy.code, deploy.stderr).toBe(0);
    expect(DeployReport.parse(deploy.lastJson()).deployment).toMatchObject({ name: 'casting-cls', version: '2', by: 'ci', action: 'deploy' });
    expect(deploy.messages()).toContain('casting-cls/2 is active (was casting-cls/1)');
    expect(await afterSwitch('1', 4)).toEqual(['2', '2', '2', '2']);

    const status = await linegate(['models', 'status', server.url, '--no-pretty'], NO_TOKEN);
    expect(status.code, status.stderr).toBe(0);
    const s = ModelsStatus.parse(status.lastJson());
    expect(s.active).toMatchObject({ version: '2', by: 'ci' });
    expect(s.canRollback).toBe(true);

    const shadow = await linegate(['models', 'shadow', 'start', server.url, V1, '--no-pretty'], WITH_TOKEN);
    expect(shadow.code, shadow.stderr).toBe(0);
    expect(ShadowStatus.parse(shadow.lastJson())).toMatchObject({ state: 'running', model: { name: 'casting-cls', version: '1' } });
    let seen: ModelsStatus['shadow'] = { state: 'off' };
    await until(
      async () => {
        seen = ModelsStatus.parse(await (await fetch(`${server.url}/api/models`)).json()).shadow;
        return seen.state === 'running' && seen.agreement.total >= 3;
      },
      { ms: 30_000, what: 'the shadow compared 3 frames' },
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}; the shadow: ${JSON.stringify(seen)}`);
    });
    const stopped = await linegate(['models', 'shadow', 'stop', server.url, '--no-pretty'], WITH_TOKEN);
    expect(stopped.code, stopped.stderr).toBe(0);
    const off = ShadowStatus.parse(stopped.lastJson());
    expect(off).toMatchObject({ state: 'off', last: { model: { version: '1' }, by: 'ci' } });
    expect(off.state === 'off' ? off.last?.agreement.total : 0).toBeGreaterThanOrEqual(3);

    const corrupt = packageCopy(V2, (dir) => {
      const onnx = readFileSync(path.join(dir, 'model.onnx'));
      onnx.writeUInt8(onnx.readUInt8(100) ^ 0xff, 100);
      writeFileSync(path.join(dir, 'model.onnx'), onnx);
    });
    const refused = await linegate(['models', 'deploy', server.url, corrupt, '--no-pretty'], WITH_TOKEN);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(codes(refused)).toContain('LG_ERR_MODEL_HASH');
    expect(await versionsFrom(results.length, 3)).toEqual(['2', '2', '2']);

    const rollback = await linegate(['models', 'rollback', server.url, '--no-pretty'], WITH_TOKEN);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(DeployReport.parse(rollback.lastJson()).deployment).toMatchObject({ version: '1', action: 'rollback', by: 'ci' });
    expect(await afterSwitch('2', 3)).toEqual(['1', '1', '1']);
    const all = [...results].sort((a, b) => a.sequence - b.sequence).map((r) => r.model?.version ?? 'none').join('');
    expect(all).toMatch(/^1+2+1+$/);
    expect(drops).toEqual([]);
    expect(results.filter((r) => r.verdict === 'error').map((r) => r.reasons)).toEqual([]);
  });
});
