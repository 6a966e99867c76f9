import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LinegateErrors, isLinegateError } from '../../runtime/errors.js';
import type { InspectionResult } from '../../runtime/result.js';
import type { Station } from '../../runtime/station.js';
import { testRoot } from '../helpers/roots.js';
import { CASTING_1, CASTING_2, castingStation, editedPackage, more, packageFiles, running } from './helpers.js';

const open: Station[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) {
    s.stop();
    await s.close();
  }
});
const track = (s: Station): Station => (open.push(s), s);

const versionOf = (r: InspectionResult): string | undefined => r.model?.version;

/** Every result in order, every one judged, and the model changes only at `switches` (a list of versions in the order seen). */
function expectClean(results: readonly InspectionResult[], versions: readonly string[]): void {
  // Two parts in flight may finish out of order: by sequence, every frame is there once.
  const bySequence = [...results].sort((a, b) => a.sequence - b.sequence);
  expect(bySequence.map((r) => r.sequence)).toEqual(results.map((_, i) => i));
  expect(results.filter((r) => r.verdict === 'error').map((r) => r.reasons[0]?.code)).toEqual([]);
  const seen: string[] = [];
  for (const r of bySequence) if (seen.at(-1) !== versionOf(r)) seen.push(versionOf(r) ?? 'none');
  expect(seen).toEqual(versions);
}

async function refusal(p: Promise<unknown>): Promise<string[]> {
  const e: unknown = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (e instanceof LinegateErrors) return e.errors.map((x) => x.code);
  if (isLinegateError(e)) return [e.code];
  throw new Error(`expected a coded refusal, got ${String(e)}`);
}

describe('live model deployment: the switch happens between two parts', () => {
  it('deploys casting-cls/2 into a running station with no frame dropped; every later result names /2; rollback returns to /1', async () => {
    const root = testRoot();
    const station = track(await castingStation('deploy-01', root, { rateHz: 40 }));
    await station.start();
    const run = running(station);
    await more(run.results, 5);

    const report = await station.deployModel(packageFiles(CASTING_2), { by: 'quality-anna' });
    expect(report.deployment).toMatchObject({ name: 'casting-cls', version: '2', action: 'deploy', by: 'quality-anna' });
    expect(report.previous).toMatchObject({ version: '1', action: 'start', by: 'station file' });
    expect(Object.keys(report.thresholds)).toContain('defect');
    expect(report.warmupMs).toBeGreaterThan(0);
    // The package is kept under the deploy folder, the plan points there, and the API's status says so.
    expect(report.deployment.dir).toMatch(/^var\/deploy\/deploy-01\/packages\/casting-cls@2-[0-9a-f]{12}$/);
    expect(station.models().active).toMatchObject({ version: '2', by: 'quality-anna' });
    expect(station.plan.models?.[0]?.model.version).toBe('2');

    const switchedAt = run.results.length;
    await more(run.results, 10);
    // Parts in flight when the switch came finish on /1 (at most maxInFlight + queued); every part after them is /2.
    expect(run.results.slice(switchedAt + 4).every((r) => versionOf(r) === '2')).toBe(true);

    const back = await station.rollbackModel({ by: 'quality-ben' });
    expect(back.deployment).toMatchObject({ version: '1', action: 'rollback', by: 'quality-ben' });
    expect(back.previous).toMatchObject({ version: '2' });
    await more(run.results, 10);
    expect(station.models().canRollback).toBe(false);
    await expect(station.rollbackModel({ by: 'x' })).rejects.toMatchObject({ code: 'LG_ERR_DEPLOY_NO_PREVIOUS' });
    station.stop();
    const summary = await run.done;
    expect(summary.dropped).toBe(0);
    expectClean(run.results, ['1', '2', '1']);
    // The journal holds both activations, durable, in order.
    const journal = readFileSync(path.join(root, 'var/deploy/deploy-01/journal.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { action: string; version: string; by: string });
    expect(journal.map((j) => [j.action, j.version, j.by])).toEqual([
      ['deploy', '2', 'quality-anna'],
      ['rollback', '1', 'quality-ben'],
    ]);
  });

  it('refuses a broken package with its codes, and the serving model goes on judging every part', async () => {
    const root = testRoot();
    const station = track(await castingStation('deploy-02', root, { rateHz: 40 }));
    await station.start();
    const run = running(station);
    await more(run.results, 3);

    // Weights that are not the ones model.json names (a truncated copy): the sha256 check.
    const corrupt = packageFiles(CASTING_2);
    corrupt.set('model.onnx', corrupt.get('model.onnx')!.subarray(0, 1000));
    expect(await refusal(station.deployModel(corrupt, { by: 't' }))).toContain('LG_ERR_MODEL_HASH');

    // A manifest that disagrees with its graph: 128x128 declared, 300x300 in the file.
    const lying = editedPackage(root, CASTING_2, 'lying', (m) => {
      (m.input as { width: number; height: number }).width = 128;
      (m.input as { width: number; height: number }).height = 128;
    });
    const codes = await refusal(station.deployModel(packageFiles(lying), { by: 't' }));
    expect(codes.some((c) => c.startsWith('LG_ERR_MODEL_'))).toBe(true);

    // Not a package at all, and file names that try to leave the folder.
    expect(await refusal(station.deployModel(new Map([['README.md', Buffer.from('hi')]]), { by: 't' }))).toEqual(['LG_ERR_DEPLOY_PACKAGE']);
    expect(await refusal(station.deployModel(new Map([['model.json', Buffer.from('{}')], ['../x', Buffer.from('')]]), { by: 't' }))).toEqual(['LG_ERR_DEPLOY_PACKAGE']);
    expect(await refusal(station.deployModel(new Map([['model.json', Buffer.from('{not json')]]), { by: 't' }))).not.toEqual([]);

    await more(run.results, 5);
    station.stop();
    await run.done;
    expectClean(run.results, ['1']);
    // Nothing refused was kept, and no activation was journaled.
    expect(existsSync(path.join(root, 'var/deploy/deploy-02/journal.jsonl'))).toBe(false);
    const packages = path.join(root, 'var/deploy/deploy-02/packages');
    expect(existsSync(packages) ? readdirNames(packages) : []).toEqual([]);
  });

  it('comes back after a restart on the version last activated; an edited station file starts anew; a lost package refuses the start', async () => {
    const root = testRoot();
    const first = track(await castingStation('deploy-03', root));
    await first.start();
    await first.deployModel(packageFiles(CASTING_2), { by: 'anna' });
    await first.close();

    const again = track(await castingStation('deploy-03', root));
    await again.start();
    expect(again.plan.models?.[0]?.model.version).toBe('2');
    expect(again.models().active).toMatchObject({ version: '2', action: 'deploy', by: 'anna' });
    const r = await again.inspectOnce({ kind: 'encoded', data: readFileSync(path.join(root, 'fixtures/casting/ok_front', firstFile(path.join(root, 'fixtures/casting/ok_front')))) });
    expect(r.model?.version).toBe('2');
    // A rollback after the restart still knows what came before.
    await again.rollbackModel({ by: 'ben' });
    await again.close();
    const third = track(await castingStation('deploy-03', root));
    await third.start();
    expect(third.plan.models?.[0]?.model.version).toBe('1');
    await third.deployModel(packageFiles(CASTING_2), { by: 'anna' });
    await third.close();

    // The station file now names another model: the file is the newer word.
    const edited = editedPackage(root, CASTING_1, 'casting-1-copy', (m) => (m.version = '1-site'));
    const fileWins = track(await castingStation('deploy-03', root, { model: path.relative(root, edited) }));
    await fileWins.start();
    expect(fileWins.plan.models?.[0]?.model.version).toBe('1-site');
    await fileWins.close();

    // Back to the file that the journal's chain began from, with the deployed package gone: refused, not silently /1.
    const dir = JSON.parse(readFileSync(path.join(root, 'var/deploy/deploy-03/journal.jsonl'), 'utf8').trim().split('\n').at(-1)!) as { dir: string };
    rmSync(path.join(root, dir.dir), { recursive: true });
    const lost = track(await castingStation('deploy-03', root));
    await expect(lost.start()).rejects.toMatchObject({ code: 'LG_ERR_DEPLOY_RESTORE' });
  });

  it('says which thresholds the new model runs with when the calibration was made for the old one', async () => {
    const root = testRoot();
    const m1 = JSON.parse(readFileSync(path.join(CASTING_1, 'model.json'), 'utf8')) as { name: string; version: string; sha256: string };
    writeFileSync(
      path.join(root, 'calibration/deploy-04.json'),
      JSON.stringify({ station: 'deploy-04', thresholds: { defect: 0.2 }, provenance: { date: '2026-11-30', method: 'test', model: { name: m1.name, version: m1.version, sha256: m1.sha256 } } }),
    );
    const station = track(await castingStation('deploy-04', root));
    await station.start();
    const left = await station.deployModel(packageFiles(CASTING_2), { by: 'anna' });
    expect(left.calibration).toMatchObject({ status: 'not-applied', file: 'calibration/deploy-04.json', madeFor: { version: '1' } });
    expect(left.warnings.join(' ')).toMatch(/made for casting-cls@1.*not applied/);
    const m2 = JSON.parse(readFileSync(path.join(CASTING_2, 'model.json'), 'utf8')) as { thresholds: { default: number } };
    expect(left.thresholds.defect).toBe(m2.thresholds.default);

    await station.rollbackModel({ by: 'anna' });
    expect(station.models().calibration.status).toBe('applied');
    const kept = await station.deployModel(packageFiles(CASTING_2), { by: 'anna', calibration: 'keep' });
    expect(kept.calibration.status).toBe('applied');
    expect(kept.thresholds.defect).toBe(0.2);
    expect(kept.warnings.join(' ')).toMatch(/applied to casting-cls@2 anyway/);
  });

  it('refuses a second change while one runs, and any change before the start', async () => {
    const root = testRoot();
    const station = track(await castingStation('deploy-05', root));
    await expect(station.deployModel(packageFiles(CASTING_2), { by: 'a' })).rejects.toMatchObject({ code: 'LG_ERR_DEPLOY_STATE' });
    await station.start();
    const first = station.deployModel(packageFiles(CASTING_2), { by: 'a' });
    await expect(station.rollbackModel({ by: 'b' })).rejects.toMatchObject({ code: 'LG_ERR_DEPLOY_BUSY' });
    await first;
  });
});

const readdirNames = (dir: string): string[] => readdirSync(dir);
const firstFile = (dir: string): string => readdirSync(dir).sort()[0]!;
