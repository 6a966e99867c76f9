import { z } from 'zod';
import { HierarchyName, type PlantHierarchy } from '../result.js';
import { RECENT_MINUTES, stationView, type HealthSettings, type HealthState, type StationView } from './station-view.js';
import type { StationCounts } from './types.js';

/*
 * The plant as GET /api/plant answers it: stations grouped site > area > line
 * > cell (ISA-95), narrowed by the query's levels, with plant totals and the
 * names each filter can take. Pure, like station-view.ts.
 */

export const LEVELS = ['site', 'area', 'line', 'cell'] as const satisfies readonly (keyof PlantHierarchy)[];
export type Level = (typeof LEVELS)[number];

/** An empty value (`?site=`) is no filter: what a form sends for "all". */
const level = z.preprocess((v) => (v === '' ? undefined : v), HierarchyName.optional());

export const PlantQuery = z
  .object({
    site: level.describe('only this ISA-95 site'),
    area: level.describe('only this area'),
    line: level.describe('only this line (a station without a hierarchy matches by its station.line)'),
    cell: level.describe('only this cell'),
    minutes: z.coerce.number().int().min(1).max(1440).optional().describe('window in whole minutes, the current one included (default: the plant command\'s --minutes)'),
  })
  .strict();
export type PlantQuery = z.infer<typeof PlantQuery>;

export type PlantFilter = Partial<Record<Level, string>>;

export interface Totals {
  readonly stations: number;
  readonly parts: number;
  readonly verdicts: { readonly pass: number; readonly fail: number; readonly error: number };
  readonly yield: number | null;
  readonly throughputPerMin: number;
  readonly health: Readonly<Record<HealthState, number>>;
}

export interface CellGroup {
  readonly cell: string;
  readonly stations: readonly StationView[];
}
export interface LineGroup {
  readonly line: string;
  readonly cells: readonly CellGroup[];
}
export interface AreaGroup {
  readonly area: string;
  readonly lines: readonly LineGroup[];
}
export interface SiteGroup {
  readonly site: string;
  readonly areas: readonly AreaGroup[];
}

export interface PlantView {
  readonly generatedAt: string;
  readonly window: { readonly minutes: number; readonly from: string; readonly to: string; readonly recentMinutes: number };
  readonly health: HealthSettings;
  readonly filter: PlantFilter;
  /** The names each level's filter can take, given the levels above it. */
  readonly levels: Readonly<Record<Level, readonly string[]>>;
  readonly totals: Totals;
  readonly sites: readonly SiteGroup[];
  /** Stations whose results carry no hierarchy (an older station file, or one not placed in a plant). */
  readonly unplaced: readonly StationView[];
}

/** Whether a station passes the filter's levels (only those before `upTo`, when given). */
function matches(c: Pick<StationCounts, 'hierarchy' | 'line'>, filter: PlantFilter, upTo: number = LEVELS.length): boolean {
  return LEVELS.slice(0, upTo).every((l) => {
    const want = filter[l];
    if (want === undefined) return true;
    if (c.hierarchy !== undefined) return c.hierarchy[l] === want;
    return l === 'line' && c.line === want;
  });
}

/** Groups by `key` in name order. */
function groupBy<T>(items: readonly T[], key: (t: T) => string): [string, T[]][] {
  const m = new Map<string, T[]>();
  for (const t of items) {
    const k = key(t);
    const list = m.get(k);
    if (list === undefined) m.set(k, [t]);
    else list.push(t);
  }
  return [...m].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
}

function totalsOf(views: readonly StationView[]): Totals {
  const verdicts = { pass: 0, fail: 0, error: 0 };
  const health: Record<HealthState, number> = { ok: 0, stale: 0, errors: 0 };
  let rate = 0;
  for (const v of views) {
    verdicts.pass += v.verdicts.pass;
    verdicts.fail += v.verdicts.fail;
    verdicts.error += v.verdicts.error;
    rate += v.throughputPerMin;
    health[v.health.state]++;
  }
  const parts = verdicts.pass + verdicts.fail + verdicts.error;
  return { stations: views.length, parts, verdicts, yield: parts === 0 ? null : verdicts.pass / parts, throughputPerMin: rate, health };
}

export interface ViewInput {
  readonly counts: readonly StationCounts[];
  readonly filter: PlantFilter;
  readonly minutes: number;
  readonly now: number;
  readonly health: HealthSettings;
}

export function plantView(i: ViewInput): PlantView {
  const levels = Object.fromEntries(
    LEVELS.map((l, at) => [l, [...new Set(i.counts.filter((c) => matches(c, i.filter, at)).flatMap((c) => (c.hierarchy === undefined ? [] : [c.hierarchy[l]])))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))]),
  ) as Record<Level, string[]>;
  const shown = i.counts.filter((c) => matches(c, i.filter));
  const views = shown.map((c) => stationView(c, i.now, i.health));
  const placed = views.filter((v): v is StationView & { hierarchy: PlantHierarchy } => v.hierarchy !== undefined);
  const sites = groupBy(placed, (v) => v.hierarchy.site).map(([site, inSite]) => ({
    site,
    areas: groupBy(inSite, (v) => v.hierarchy.area).map(([area, inArea]) => ({
      area,
      lines: groupBy(inArea, (v) => v.hierarchy.line).map(([line, inLine]) => ({
        line,
        cells: groupBy(inLine, (v) => v.hierarchy.cell).map(([cell, inCell]) => ({ cell, stations: [...inCell].sort((a, b) => a.station.localeCompare(b.station)) })),
      })),
    })),
  }));
  const lastMinute = Math.floor(i.now / 60_000);
  const filter = Object.fromEntries(LEVELS.flatMap((l) => (i.filter[l] === undefined ? [] : [[l, i.filter[l]]]))) as PlantFilter;
  return {
    generatedAt: new Date(i.now).toISOString(),
    window: {
      minutes: i.minutes,
      from: new Date((lastMinute - i.minutes + 1) * 60_000).toISOString(),
      to: new Date((lastMinute + 1) * 60_000).toISOString(),
      recentMinutes: Math.min(RECENT_MINUTES, i.minutes),
    },
    health: i.health,
    filter,
    levels,
    totals: totalsOf(views),
    sites,
    unplaced: views.filter((v) => v.hierarchy === undefined).sort((a, b) => a.station.localeCompare(b.station)),
  };
}
