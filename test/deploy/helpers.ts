import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../runtime/contract.js';
import type { InspectionResult } from '../../runtime/result.js';
import { compileStationData } from '../../runtime/compile/compile.js';
import { Station } from '../../runtime/station.js';
import { testRegistry } from '../helpers/probe-plugins.js';
import { ROOT, silentLog } from '../helpers/station.js';
import { until } from '../helpers/until.js';
import { castingStages } from '../helpers/casting.js';

/** A package folder as the API receives it: file name to bytes. */
export function packageFiles(dir: string): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const name of readdirSync(dir)) files.set(name, readFileSync(path.join(dir, name)));
  return files;
}

export const CASTING_1 = path.join(ROOT, 'models/casting-cls/1');
export const CASTING_2 = path.join(ROOT, 'models/casting-cls/2');

/** The casting station on the fixture folder, looped and paced, judging with `model`; results to a probe sink. */
export async function castingStation(id: string, root: string, o: { model?: string; rateHz?: number; sinks?: unknown[]; log?: Logger; maxInFlight?: number; history?: boolean } = {}): Promise<Station> {
  const data = {
    station: { id, cycleBudgetMs: 5000, maxInFlight: o.maxInFlight ?? 2, queueSize: 2, initTimeoutMs: 60_000 },
    history: o.history === true ? {} : false,
    source: { name: 'cam', use: 'core/folder-source@1', config: { dir: 'fixtures/casting', loop: true, ...(o.rateHz === undefined ? {} : { rateHz: o.rateHz }) } },
    stages: castingStages(o.model ?? 'models/casting-cls/1'),
    sinks: o.sinks ?? [{ name: 'plc', use: 'test/sink@1', config: { probe: `${id}-plc` } }],
  };
  // Written too (JSON is YAML), for the CLI commands that take the station file; compiled as `run` compiles it: packages read, calibration bound.
  const file = path.join(root, 'stations', `${id}.yaml`);
  writeFileSync(file, JSON.stringify(data, null, 2));
  return new Station(await compileStationData(data, file, testRegistry()), o.log ?? silentLog);
}

/** Runs the station in the background, collecting its results in order. */
export function running(station: Station): { readonly results: InspectionResult[]; readonly done: ReturnType<Station['run']> } {
  const results: InspectionResult[] = [];
  station.on('result', (r) => void results.push(r));
  const done = station.run();
  return { results, done };
}

/** Waits until `n` more results than now have arrived. */
export async function more(results: readonly InspectionResult[], n: number, ms = 60_000): Promise<void> {
  const target = results.length + n;
  await until(() => results.length >= target, { ms, what: `${n} more results` });
}

/** A copy of a package in `root/models/<name>`, its model.json changed by `edit` (the weights, and so their sha256, unchanged). */
export function editedPackage(root: string, from: string, name: string, edit: (manifest: Record<string, unknown>) => void): string {
  const dir = path.join(root, 'models', name);
  cpSync(from, dir, { recursive: true });
  const file = path.join(dir, 'model.json');
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(manifest);
  writeFileSync(file, JSON.stringify(manifest, null, 2));
  return dir;
}
