import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { compileStationFile } from '../../runtime/compile/compile.js';
import { builtinRegistry } from '../../runtime/registry/builtins.js';
import type { InspectionResult } from '../../runtime/result.js';
import { Station, type RunSummary } from '../../runtime/station.js';
import { scratch } from './scratch.js';
import { ROOT, silentLog } from './station.js';

/**
 * A copy of a shipped station file (`stations/<name>`) for a test that judges verdicts: rooted in the
 * repository (its models and calibration), its source reading `images` instead of its fixtures when given,
 * no sinks and no history (nothing is written into the repository), and a cycle budget no loaded CI machine
 * can spend (verdicts, not speed, are under test). Returns the copy's path, in a scratch folder.
 */
export function judgingCopy(name: string, o: { readonly images?: string } = {}): string {
  let text = readFileSync(path.join(ROOT, 'stations', name), 'utf8');
  const edit = (what: string, from: RegExp | string, to: string): void => {
    const next = text.replace(from, to);
    // A station file that changed shape must fail here, not be judged with its fixtures or its sinks on.
    if (next === text) throw new Error(`stations/${name}: no ${what} to rewrite`);
    text = next;
  };
  edit('station section', 'station:\n', `station:\n  root: ${ROOT}\n`);
  edit('cycle budget', /cycleBudgetMs: \d+/, 'cycleBudgetMs: 60000');
  if (o.images !== undefined) edit('source folder', /dir: fixtures\/[\w./-]+/, `dir: ${o.images}`);
  edit('sinks', /sinks:[\s\S]*$/, 'history: false\n');
  const file = path.join(scratch('lg-judge-'), name);
  writeFileSync(file, text);
  return file;
}

/** Compiles a station file with the built-in plugins and runs it until its source ends; every result, in order. */
export async function runToEnd(file: string): Promise<{ readonly results: InspectionResult[]; readonly summary: RunSummary }> {
  const station = new Station(await compileStationFile(file, builtinRegistry()), silentLog);
  const results: InspectionResult[] = [];
  station.on('result', (r) => results.push(r));
  try {
    return { results, summary: await station.run() };
  } finally {
    await station.close();
  }
}
