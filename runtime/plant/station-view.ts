import type { PlantHierarchy, Verdict } from '../result.js';
import type { StationCounts, VerdictCounts } from './types.js';

/*
 * One station as the plant page shows it, from its counts: yield, throughput,
 * top reject codes and labels, last seen, and a health that says why. Pure:
 * the same counts and clock give the same view.
 */

export type HealthState = 'ok' | 'stale' | 'errors';

export interface HealthSettings {
  /** No result for this long: stale. */
  readonly staleMinutes: number;
  /** Share of `error` verdicts over the recent minutes above which the station is unhealthy. */
  readonly maxErrorRate: number;
}

/** Throughput and the error rate look at this many latest minutes (the current one as far as it has gone): what a shift lead calls "now". */
export const RECENT_MINUTES = 5;
/** Reject codes and labels a station card lists. */
export const TOP = 5;

export interface StationView {
  readonly station: string;
  readonly line?: string;
  readonly hierarchy?: PlantHierarchy;
  /** Over the window. */
  readonly parts: number;
  readonly verdicts: VerdictCounts;
  /** pass / parts over the window; null without parts. */
  readonly yield: number | null;
  /** Parts per minute over the recent minutes. */
  readonly throughputPerMin: number;
  /** Parts per minute of the window, oldest first (the last one is the current, partial minute). */
  readonly partsPerMinute: readonly number[];
  /** Not-passed parts by reject code, most first; share of the not-passed parts. */
  readonly topRejectCodes: readonly { readonly code: number; readonly name?: string; readonly count: number; readonly share: number }[];
  /** Parts with a fired defect by label, most first; share of the parts with one. */
  readonly topLabels: readonly { readonly label: string; readonly count: number; readonly share: number }[];
  readonly lastAt: string | null;
  readonly lastVerdict?: Verdict;
  /** Seconds since the newest result; null when unknown. */
  readonly lastAgeS: number | null;
  readonly health: {
    readonly state: HealthState;
    readonly why: string;
    /** error / parts over the recent minutes; null without parts. */
    readonly errorRate: number | null;
  };
}

const sum = (ms: readonly VerdictCounts[]): VerdictCounts => ms.reduce((a, m) => ({ pass: a.pass + m.pass, fail: a.fail + m.fail, error: a.error + m.error }), { pass: 0, fail: 0, error: 0 });
const partsOf = (v: VerdictCounts): number => v.pass + v.fail + v.error;
const pct = (x: number): string => `${(100 * x).toFixed(x < 0.1 ? 1 : 0)} %`;

/** Minutes since `then`, said for a person. */
function ago(ms: number): string {
  const min = Math.floor(ms / 60_000);
  return min < 120 ? `${min} min` : `${Math.floor(min / 60)} h`;
}

export function stationView(c: StationCounts, now: number, settings: HealthSettings): StationView {
  const verdicts = sum(c.perMinute);
  const parts = partsOf(verdicts);
  const recentN = Math.min(RECENT_MINUTES, c.perMinute.length);
  const recentMinutes = c.perMinute.slice(c.perMinute.length - recentN);
  const recent = sum(recentMinutes);
  const recentParts = partsOf(recent);
  // The rate from the station's first minute with a part (one that started 2 minutes ago runs at its
  // rate, not at 2/5 of it) to now, the current minute counting for the part of it that has gone. A
  // station that started within the window did so partway through its first minute: that minute is
  // left out, parts and time, when at least a whole minute follows it.
  const frac = (now % 60_000) / 60_000;
  let from = Math.max(0, recentMinutes.findIndex((m) => partsOf(m) > 0));
  if (from > 0 && recentN - 2 - from + frac >= 1) from += 1;
  const rateParts = partsOf(sum(recentMinutes.slice(from)));
  const elapsedMin = Math.max(recentN - 1 - from + frac, 1 / 60);
  const notPassed = c.rejectCodes.reduce((t, r) => t + r.count, 0);
  const labelled = c.labels.reduce((t, r) => t + r.count, 0);
  const lastMs = c.lastAt === null ? undefined : Date.parse(c.lastAt);
  const lastAge = lastMs === undefined ? undefined : Math.max(0, now - lastMs);
  const errorRate = recentParts === 0 ? null : recent.error / recentParts;

  let health: StationView['health'];
  if (lastAge === undefined || lastAge > settings.staleMinutes * 60_000) {
    health = { state: 'stale', why: lastAge === undefined ? 'no result counted' : `no result for ${ago(lastAge)} (stale after ${settings.staleMinutes} min)`, errorRate };
  } else if (errorRate !== null && errorRate > settings.maxErrorRate) {
    health = { state: 'errors', why: `${pct(errorRate)} of the last ${recentParts} parts were errors (limit ${pct(settings.maxErrorRate)})`, errorRate };
  } else {
    health = { state: 'ok', why: recentParts === 0 ? 'results arriving' : `${recentParts} parts in the last ${recentN} min`, errorRate };
  }

  return {
    station: c.station,
    ...(c.line === undefined ? {} : { line: c.line }),
    ...(c.hierarchy === undefined ? {} : { hierarchy: c.hierarchy }),
    parts,
    verdicts,
    yield: parts === 0 ? null : verdicts.pass / parts,
    throughputPerMin: rateParts / elapsedMin,
    partsPerMinute: c.perMinute.map(partsOf),
    topRejectCodes: [...c.rejectCodes]
      .sort((a, b) => b.count - a.count || a.code - b.code)
      .slice(0, TOP)
      .map((r) => ({ ...r, share: notPassed === 0 ? 0 : r.count / notPassed })),
    topLabels: [...c.labels]
      .sort((a, b) => b.count - a.count || a.label.localeCompare(b.label))
      .slice(0, TOP)
      .map((r) => ({ ...r, share: labelled === 0 ? 0 : r.count / labelled })),
    lastAt: c.lastAt,
    ...(c.lastVerdict === undefined ? {} : { lastVerdict: c.lastVerdict }),
    lastAgeS: lastAge === undefined ? null : Math.round(lastAge / 1000),
    health,
  };
}
