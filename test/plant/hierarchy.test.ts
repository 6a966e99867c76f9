import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileStation, compileStationFile } from '../../runtime/compile/compile.js';
import { LinegateError, LinegateErrors } from '../../runtime/errors.js';
import { buildResult, stationOf } from '../../runtime/execute/outcome.js';
import { builtinRegistry } from '../../runtime/registry/builtins.js';
import { InspectionResult, resultJsonSchema } from '../../runtime/result.js';
import { linegate } from '../helpers/cli.js';
import { testRegistry } from '../helpers/probe-plugins.js';
import { frameOf, sampleResult } from '../helpers/samples.js';
import { ROOT } from '../helpers/station.js';

/*
 * The station file names the station's place in its plant (ISA-95: site, area, line, cell), and
 * every result the station builds carries it; records written before it existed still parse.
 */

const PLACE = { site: 'plant-1', area: 'casting', line: 'L2', cell: 'C3' };

function stationData(station: Record<string, unknown>): Record<string, unknown> {
  return {
    station: { id: 'placed-01', ...station },
    source: { name: 'cam', use: 'test/source@1', config: { count: 1 } },
    stages: [
      { name: 'work', use: 'test/stage@1' },
      { name: 'verdict', use: 'test/decide@1' },
    ],
    history: false,
  };
}

function errorsOf(station: Record<string, unknown>): LinegateError[] {
  try {
    compileStation(stationData(station), path.join(ROOT, 'stations', 'test.yaml'), testRegistry());
    return [];
  } catch (e) {
    if (e instanceof LinegateErrors) return [...e.errors];
    throw e;
  }
}

const compiled = (station: Record<string, unknown>) => compileStation(stationData(station), path.join(ROOT, 'stations', 'test.yaml'), testRegistry());

describe('station.hierarchy in the station file', () => {
  it('takes all four levels, freezes them with the plan, and every result carries them with the line', () => {
    const plan = compiled({ hierarchy: PLACE });
    expect(plan.settings.hierarchy).toEqual(PLACE);
    expect(Object.isFrozen(plan.settings.hierarchy)).toBe(true);
    const r = buildResult(plan, frameOf(), { stageMs: {} }, 1);
    expect(r.station).toEqual({ id: 'placed-01', line: 'L2', hierarchy: PLACE });
    // A copy: a reader that changes its record does not change the station's plan.
    expect(r.station.hierarchy).not.toBe(plan.settings.hierarchy);
    expect(Object.isFrozen(r.station.hierarchy)).toBe(false);
    expect(InspectionResult.parse(r).station.hierarchy).toEqual(PLACE);
  });

  it('refuses a hierarchy with a level missing, naming the level', () => {
    const errors = errorsOf({ hierarchy: { site: 'plant-1', area: 'casting', line: 'L2' } });
    expect(errors.map((e) => [e.code, e.path])).toEqual([['LG_ERR_STATION_INVALID', 'station.hierarchy.cell']]);
  });

  it('refuses a hierarchy whose line is not station.line, with both names in the message', () => {
    const errors = errorsOf({ line: 'L1', hierarchy: PLACE });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'LG_ERR_STATION_INVALID', path: 'station.hierarchy.line' });
    expect(errors[0]!.message).toBe('station field station.hierarchy.line: "L2" is not station.line "L1": give the line once (in hierarchy), or the same in both');
    // The same line twice is fine.
    expect(compiled({ line: 'L2', hierarchy: PLACE }).settings.hierarchy).toEqual(PLACE);
  });

  it('refuses unsafe names and unknown levels', () => {
    for (const [hierarchy, where] of [
      [{ ...PLACE, site: '<script>' }, 'station.hierarchy.site'],
      [{ ...PLACE, area: '' }, 'station.hierarchy.area'],
      [{ ...PLACE, cell: 'C1 ' }, 'station.hierarchy.cell'],
      [{ ...PLACE, line: 'x'.repeat(65) }, 'station.hierarchy.line'],
      [{ ...PLACE, enterprise: 'acme' }, 'station.hierarchy'],
    ] as const) {
      expect(errorsOf({ hierarchy }).map((e) => [e.code, e.path]), JSON.stringify(hierarchy)).toEqual([['LG_ERR_STATION_INVALID', where]]);
    }
    // Spaces inside, dots, dashes and underscores are names people use.
    expect(compiled({ hierarchy: { site: 'Plant 1', area: 'Hall_2', line: 'L-2.a', cell: '07' } }).settings.hierarchy?.site).toBe('Plant 1');
  });

  it('keeps a station with a line alone, or with neither, as before', () => {
    expect(buildResult(compiled({ line: 'L1' }), frameOf(), { stageMs: {} }, 1).station).toEqual({ id: 'placed-01', line: 'L1' });
    expect(buildResult(compiled({}), frameOf(), { stageMs: {} }, 1).station).toEqual({ id: 'placed-01' });
    expect(stationOf({ id: 's', line: undefined, hierarchy: undefined })).toEqual({ id: 's' });
  });

  it('still parses a record written before the hierarchy existed, and refuses a broken one', () => {
    const old = sampleResult({ station: { id: 'old-01', line: 'L1' } });
    expect(InspectionResult.parse(JSON.parse(JSON.stringify(old))).station).toEqual({ id: 'old-01', line: 'L1' });
    expect(InspectionResult.safeParse({ ...old, station: { id: 'x', hierarchy: { site: 'a', area: 'b', line: 'c' } } }).success).toBe(false);
  });

  it('is in the JSON Schema `linegate schema result` prints', async () => {
    const r = await linegate(['schema', 'result']);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout) as { properties: { station: { properties: Record<string, { required?: string[]; properties?: Record<string, unknown> }> } } };
    expect(schema).toEqual(resultJsonSchema());
    const h = schema.properties.station.properties.hierarchy!;
    expect(h.required).toEqual(['site', 'area', 'line', 'cell']);
    expect(Object.keys(h.properties!)).toEqual(['site', 'area', 'line', 'cell']);
  });

  it('places both demo stations in the same line, in different cells, on one Redis prefix', async () => {
    const one = await compileStationFile(path.join(ROOT, 'stations/demo.yaml'), builtinRegistry());
    const two = await compileStationFile(path.join(ROOT, 'stations/demo-02.yaml'), builtinRegistry());
    expect(one.settings.id).not.toBe(two.settings.id);
    expect(one.settings.hierarchy).toEqual({ site: 'demo-plant', area: 'casting', line: 'L1', cell: 'C1' });
    expect(two.settings.hierarchy).toEqual({ site: 'demo-plant', area: 'casting', line: 'L1', cell: 'C2' });
    const prefixOf = (p: typeof one): unknown => (p.sinks.find((s) => s.plugin.manifest.id === 'core/bullmq@1')?.config as { prefix?: string }).prefix;
    expect(prefixOf(one)).toBe('linegate-demo');
    expect(prefixOf(two)).toBe('linegate-demo');
  });
});
