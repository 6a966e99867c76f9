import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileStationFile } from '../../runtime/compile/compile.js';
import { builtinRegistry } from '../../runtime/registry/builtins.js';
import type { Comparison } from '../../runtime/replay/compare.js';
import type { ReplayReport } from '../../runtime/replay/report.js';
import { InspectionResult, resultJsonSchema } from '../../runtime/result.js';
import { Station } from '../../runtime/station.js';
import { linegate, type LogLine } from '../helpers/cli.js';
import { scratch } from '../helpers/scratch.js';
import { ROOT, silentLog } from '../helpers/station.js';

const CASTING = path.join(ROOT, 'fixtures/casting');
const sha = (dir: string): string => (JSON.parse(readFileSync(path.join(ROOT, dir, 'model.json'), 'utf8')) as { sha256: string }).sha256;
const CLS1 = { name: 'casting-cls', version: '1', sha256: sha('models/casting-cls/1') };
const CLS2 = { name: 'casting-cls', version: '2', sha256: sha('models/casting-cls/2') };
/** A model nobody has: what a calibration made on another line's model names. */
const OTHER = { name: 'casting-cls', version: '9', sha256: 'f'.repeat(64) };

/** The casting station in a scratch folder, with its calibration file beside it and the given `calibration` setting. */
function station(o: { model?: typeof CLS1 | null; setting?: (file: string) => unknown; thresholds?: Record<string, number> } = {}): { file: string; calibration: string; dir: string } {
  const dir = scratch('lg-cal-bind-');
  const calibration = path.join(dir, 'casting.json');
  const provenance = { date: '2026-11-30', method: 'test', ...(o.model === undefined ? {} : { model: o.model }) };
  writeFileSync(calibration, JSON.stringify({ station: 'casting-01', thresholds: o.thresholds ?? { defect: 0.5 }, provenance }));
  const setting = JSON.stringify(o.setting?.(calibration) ?? calibration);
  // Rooted in the repository (for its model and fixtures), so nothing may write there: no sinks, no history.
  const yaml = readFileSync(path.join(ROOT, 'stations/casting.yaml'), 'utf8')
    .replace('station:\n', `station:\n  root: ${ROOT}\n  calibration: ${setting}\n`)
    .replace(/sinks:[\s\S]*$/, 'history: false\n');
  const file = path.join(dir, 'casting.yaml');
  writeFileSync(file, yaml);
  return { file, calibration, dir };
}

async function results(file: string, maxFrames = 4): Promise<{ results: InspectionResult[]; warnings: string[] }> {
  const plan = await compileStationFile(file, builtinRegistry());
  const warnings: string[] = [];
  const log = { ...silentLog, warn: (_o: object | string, msg?: string) => void warnings.push(msg ?? String(_o)), child: () => log };
  const s = new Station({ ...plan, sinks: [] }, log);
  const out: InspectionResult[] = [];
  s.on('result', (r) => out.push(r));
  await s.run({ maxFrames });
  await s.close();
  return { results: out, warnings };
}

describe('a calibration is bound to the model it was made for', () => {
  it('fails check with LG_ERR_CALIBRATION_MODEL (exit 2), naming both models and both sha256, when it was made for another model', async () => {
    const { file, calibration } = station({ model: OTHER });
    const r = await linegate(['check', file]);
    expect(r.code).toBe(2);
    const line = r.logs().find((l) => l.code === 'LG_ERR_CALIBRATION_MODEL') as LogLine & { retryable: boolean; step: string };
    expect(line).toBeDefined();
    expect(line).toMatchObject({ retryable: false, step: 'model', path: 'station.calibration' });
    for (const words of [calibration, 'casting-cls@9', OTHER.sha256, 'casting-cls@1', CLS1.sha256, 'allowModelMismatch']) expect(line.msg).toContain(words);
    expect(r.stdout).toBe('');
  });

  it('refuses it when the station starts too, before any frame', async () => {
    await expect(compileStationFile(station({ model: OTHER }).file, builtinRegistry())).rejects.toMatchObject({ code: 'LG_ERR_CALIBRATION_MODEL' });
  });

  it('checks OK when it was made for the model the station runs, and every result names it', async () => {
    const { file } = station({ model: CLS1 });
    const r = await linegate(['check', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/calibration .*casting\.json for casting-cls@1 .*: made for the model the station runs/);
    const { results: out, warnings } = await results(file);
    expect(warnings).toEqual([]);
    expect(out).toHaveLength(4);
    for (const x of out) {
      expect(x.calibration).toEqual({ file: expect.stringMatching(/casting\.json$/), model: CLS1, mismatch: false });
      expect(x.thresholds).toEqual({ defect: 0.5 });
      expect(InspectionResult.safeParse(x).success).toBe(true);
    }
  });

  it('with allowModelMismatch, runs, warns once at start, and marks every result', async () => {
    const { file } = station({ model: OTHER, setting: (f) => ({ file: f, allowModelMismatch: true }) });
    const check = await linegate(['check', file]);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toContain('MADE FOR ANOTHER MODEL');
    expect(check.messages().some((m) => m.includes('made for another model'))).toBe(true);
    const { results: out, warnings } = await results(file, 6);
    expect(warnings.filter((w) => w.includes('made for another model'))).toHaveLength(1);
    expect(out).toHaveLength(6);
    for (const x of out) {
      expect(x.calibration).toMatchObject({ model: OTHER, mismatch: true });
      expect(x.thresholds).toEqual({ defect: 0.5 }); // applied, as the station file asked
      expect(InspectionResult.safeParse(x).success).toBe(true);
    }
  });

  it('leaves a calibration that names no model applied and unchecked, as before', async () => {
    const { file } = station({ model: undefined });
    const { results: out } = await results(file, 1);
    expect(out[0]!.calibration).toEqual({ file: expect.any(String), model: null, mismatch: false });
  });

  it('describes the calibration field in `linegate schema result`', async () => {
    const props = (resultJsonSchema() as { properties: Record<string, { properties?: Record<string, unknown> }> }).properties;
    expect(Object.keys(props.calibration!.properties!).sort()).toEqual(['file', 'mismatch', 'model']);
    const r = await linegate(['schema', 'result']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('allowModelMismatch');
  });
});

describe('calibrate binds what it writes; replay says what it judged with', () => {
  it('writes provenance.model, then replays with those thresholds and reports file, provenance, sources and preprocessing', async () => {
    const { file, calibration, dir } = station({ model: OTHER }); // made for another model: calibrate replaces it
    const out = await linegate(['calibrate', file, CASTING, '--good', 'ok_front', '--target', 'escape=0']);
    expect(out.code, out.stderr).toBe(0);
    const printed = JSON.parse(out.stdout) as { escapeRate: number; exact95: { escapeRate: { k: number; n: number; interval: [number, number] } }; ci95: { escapeRate: [number, number] } };
    expect(printed.escapeRate).toBe(0);
    expect(printed.ci95.escapeRate).toEqual([0, 0]); // the bootstrap collapses at zero escapes...
    expect(printed.exact95.escapeRate.k).toBe(0);
    expect(printed.exact95.escapeRate.n).toBe(10);
    expect(printed.exact95.escapeRate.interval[1]).toBeCloseTo(1 - 0.025 ** (1 / 10), 9); // ...the exact interval does not
    const written = JSON.parse(readFileSync(calibration, 'utf8')) as { thresholds: { defect: number }; provenance: { model: unknown; before: unknown } };
    expect(written.provenance.model).toEqual(CLS1);
    expect(written.provenance.before).toMatchObject({ defect: { from: 'model' } }); // the calibration for another model was not used to judge
    const json = path.join(dir, 'r.json');
    const r = await linegate(['replay', file, CASTING, '--good', 'ok_front', '--json', json]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(json, 'utf8')) as ReplayReport;
    expect(report.thresholds).toEqual({ defect: { value: written.thresholds.defect, from: 'calibration' } });
    expect(report.calibration).toMatchObject({ file: calibration, status: 'bound', madeFor: CLS1, provenance: { method: 'linegate calibrate --target escape=0', model: CLS1 } });
    expect(report.model).toMatchObject({ ...CLS1, task: 'classification', preprocessing: { width: 300, height: 300, color: 'GRAY', resize: { mode: 'stretch' }, kernel: expect.any(String), scale: expect.any(Number), mean: [0.5], std: [0.5] } });
    expect(report.intervals.escapeRate).toMatchObject({ k: 0, n: 10, rate: 0, bootstrap95: [0, 0] });
    expect(report.intervals.escapeRate.exact95![1]).toBeCloseTo(0.30849710781876083, 9);
  }, 60_000);

  it('reports the model package thresholds as the source when nothing overrides them', async () => {
    const dir = scratch('lg-judged-');
    const r = await linegate(['replay', 'stations/casting.yaml', CASTING, '--good', 'ok_front', '--json', path.join(dir, 'r.json')]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(path.join(dir, 'r.json'), 'utf8')) as ReplayReport;
    expect(report.thresholds).toEqual({ defect: { value: 0.4411, from: 'model' } });
    expect(report.calibration).toBeNull();
  }, 60_000);
});

describe('compare judges each model at its own thresholds, and says which', () => {
  it('uses the calibration for the model it was made for, and the model\'s own thresholds for the other', async () => {
    const { file, calibration } = station({ model: CLS1, thresholds: { defect: 0.9 } });
    const r = await linegate(['compare', file, CASTING, '--good', 'ok_front', '--model', 'models/casting-cls/1', '--model', 'models/casting-cls/2'], { LINEGATE_LOG_LEVEL: 'info' });
    expect(r.code, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout) as Comparison;
    expect(c.a.judgedAt).toMatchObject({ kind: 'calibration', calibration });
    expect(c.a.thresholds).toEqual({ defect: { value: 0.9, from: 'calibration' } });
    expect(c.b.judgedAt).toMatchObject({ kind: 'own-thresholds', calibration });
    expect(c.b.judgedAt.text).toContain('was made for casting-cls@1');
    expect(c.b.thresholds.defect!.from).toBe('model');
    expect(c.b.model).toMatchObject(CLS2);
    // The text output (the log) says it too, as a warning: the sides were not judged alike.
    const lines = r.logs().filter((l) => typeof l.msg === 'string' && /^[AB]: /.test(l.msg));
    expect(lines.map((l) => l.msg)).toEqual([expect.stringContaining('A: casting-cls@1 judged at its calibration'), expect.stringContaining('B: casting-cls@2 judged at its own thresholds')]);
    expect(lines.every((l) => l.level === 40)).toBe(true);
  }, 60_000);
});
