import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { compileStationFile } from '../../runtime/compile/compile.js';
import { LinegateError, LinegateErrors } from '../../runtime/errors.js';
import { builtinRegistry } from '../../runtime/registry/builtins.js';
import { Station } from '../../runtime/station.js';
import { silentLog } from '../helpers/station.js';

/** Golden cases are folders: a station file and the expected outcome. Add a case by adding a folder. */
const CASES = path.resolve(import.meta.dirname, '../cases/compile');

interface Expected {
  ok?: true;
  errors?: { code: string; step?: string; path?: string; message?: string }[];
}

const cases = readdirSync(CASES).sort();

function stationFileOf(dir: string): string {
  const f = ['station.yaml', 'station.json'].map((n) => path.join(dir, n)).find((p) => existsSync(p));
  if (f === undefined) throw new Error(`case ${dir} has no station.yaml or station.json`);
  return f;
}

async function compileErrors(file: string): Promise<LinegateError[]> {
  try {
    await compileStationFile(file, builtinRegistry());
    return [];
  } catch (e) {
    if (e instanceof LinegateErrors) return [...e.errors];
    if (e instanceof LinegateError) return [e];
    throw e;
  }
}

describe('station compile golden cases', () => {
  it.each(cases)('%s', async (name) => {
    const dir = path.join(CASES, name);
    const expected = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
    const errors = await compileErrors(stationFileOf(dir));
    if (expected.ok === true) {
      expect(errors.map((e) => `${e.code}: ${e.message}`)).toEqual([]);
      return;
    }
    expect(errors.map((e) => e.code)).toEqual(expected.errors!.map((e) => e.code));
    expected.errors!.forEach((want, i) => {
      const got = errors[i]!;
      if (want.step !== undefined) expect(got.step).toBe(want.step);
      if (want.path !== undefined) expect(got.path).toBe(want.path);
      if (want.message !== undefined) expect(got.message).toContain(want.message);
    });
  });
});

describe('compiled plans', () => {
  it('are frozen: nothing re-validates or changes them while frames flow', async () => {
    const plan = await compileStationFile(path.join(CASES, 'ok-minimal/station.yaml'), builtinRegistry());
    expect(Object.isFrozen(plan)).toBe(true);
    expect(Object.isFrozen(plan.stages[2]!.config)).toBe(true);
    expect(() => {
      (plan.settings as { cycleBudgetMs: number }).cycleBudgetMs = 1;
    }).toThrow(TypeError);
  });

  it('fill in the plugin defaults of each step config', async () => {
    const plan = await compileStationFile(path.join(CASES, 'ok-minimal/station.yaml'), builtinRegistry());
    expect(plan.stages[0]!.config).toEqual({ color: 'RGB', maxPixels: 100_000_000, autoOrient: true });
    expect(plan.settings).toMatchObject({ cycleBudgetMs: 1000, maxInFlight: 1, dropPolicy: 'block' });
  });

  it('run a third-party plugin loaded from a path in the station file', async () => {
    const station = await Station.open(path.join(CASES, 'third-party-good/station.yaml'), silentLog);
    const results: { ref: string; brightness: number }[] = [];
    station.on('result', (r) => results.push({ ref: r.source.ref, brightness: r.scores.brightness! }));
    const summary = await station.run({ maxFrames: 2 });
    await station.close();
    expect(summary.frames).toBe(2);
    // the plugin really ran between decode and quality: the measured brightness is that of the negative
    for (const r of results) {
      const original = (await sharp(r.ref).greyscale().stats()).channels[0]!.mean / 255;
      expect(r.brightness).toBeCloseTo(1 - original, 1);
    }
  });
});
