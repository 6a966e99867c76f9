import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileStation } from '../../runtime/compile/compile.js';
import { LinegateErrors } from '../../runtime/errors.js';
import { historyFileOf } from '../../runtime/history-file.js';
import { Registry } from '../../runtime/registry/registry.js';
import { testRegistry } from '../helpers/probe-plugins.js';

const FILE = path.resolve('/plant/stations/line.yaml');

const station = (extra: Record<string, unknown> = {}, sinks: unknown[] = []): Record<string, unknown> => ({
  station: { id: 'cell-7' },
  source: { name: 'cam', use: 'test/source@1', config: {} },
  stages: [
    { name: 'work', use: 'test/stage@1', config: {} },
    { name: 'verdict', use: 'test/decide@1', config: {} },
  ],
  sinks,
  ...extra,
});

function errorsOf(data: unknown): { code: string; path?: string | undefined }[] {
  try {
    compileStation(data, FILE, testRegistry());
  } catch (e) {
    if (e instanceof LinegateErrors) return e.errors.map((x) => ({ code: x.code, path: x.path }));
    throw e;
  }
  return [];
}

describe('the history step the compiler adds', () => {
  it('gives every station a background core/history@1 sink named history, its file <root>/var/history/<id>.sqlite', () => {
    const plan = compileStation(station(), FILE, testRegistry());
    const h = plan.sinks.find((s) => s.name === 'history');
    expect(h).toMatchObject({ path: 'history', kind: 'sink', critical: false, config: { dir: 'var/history', maxAgeDays: 90, maxMiB: 1024 } });
    expect(h?.plugin.manifest.id).toBe('core/history@1');
    expect(historyFileOf(plan)).toBe(path.resolve('/plant/var/history/cell-7.sqlite'));
  });

  it('passes the station file\'s history settings to it', () => {
    const plan = compileStation(station({ history: { dir: '/data/hist', maxAgeDays: 30, maxMiB: 64 } }), FILE, testRegistry());
    expect(plan.sinks.find((s) => s.name === 'history')?.config).toMatchObject({ dir: '/data/hist', maxAgeDays: 30, maxMiB: 64 });
    expect(historyFileOf(plan)).toBe(path.resolve('/data/hist/cell-7.sqlite'));
  });

  it('adds none with history: false', () => {
    const plan = compileStation(station({ history: false }), FILE, testRegistry());
    expect(plan.sinks.map((s) => s.name)).toEqual([]);
    expect(historyFileOf(plan)).toBeUndefined();
  });

  it('adds none when the station lists a core/history@1 sink itself, and uses that one', () => {
    const plan = compileStation(station({}, [{ name: 'trace', use: 'core/history@1', config: { dir: 'var/trace' } }]), FILE, testRegistry());
    expect(plan.sinks.map((s) => s.name)).toEqual(['trace']);
    expect(historyFileOf(plan)).toBe(path.resolve('/plant/var/trace/cell-7.sqlite'));
  });

  it('adds none with a registry that does not have the plugin', () => {
    const r = new Registry();
    for (const { plugin } of testRegistry().list().filter((p) => p.plugin.manifest.id !== 'core/history@1')) r.register(plugin, 'test');
    expect(compileStation(station(), FILE, r).sinks).toEqual([]);
  });

  it('refuses bad history settings at their path, and a step that already has the name history', () => {
    expect(errorsOf(station({ history: { maxAgeDays: 0 } }))).toEqual([{ code: 'LG_ERR_STATION_INVALID', path: 'history.maxAgeDays' }]);
    expect(errorsOf(station({ history: { keep: 'forever' } }))).toEqual([{ code: 'LG_ERR_STATION_INVALID', path: 'history' }]);
    expect(errorsOf(station({ history: true }))[0]).toMatchObject({ code: 'LG_ERR_STATION_INVALID', path: 'history' });
    expect(errorsOf(station({}, [{ name: 'history', use: 'test/sink@1', config: {} }]))).toEqual([{ code: 'LG_ERR_STATION_INVALID', path: 'history' }]);
  });
});
