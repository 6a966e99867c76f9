import type { InspectionResult } from '../../../runtime/result.js';

/*
 * The statistics layout in Redis, shared by the stats worker (writer) and
 * readStats (reader), and by any dashboard that reads Redis directly:
 *
 *   <prefix>:stats:stations                    SET   every station id ever counted
 *   <prefix>:stats:<station>:<epochMinute>      HASH  counters of that minute (fields below)
 *   <prefix>:stats:<station>:<epochMinute>:seen SET   resultIds already counted in that minute
 *
 * epochMinute = floor(decidedAt in ms / 60000). Both per-minute keys expire
 * `retention` after the end of their minute.
 *
 * Hash fields, each a count of parts:
 *   verdict:<pass|fail|error>
 *   reject:<rejectCode>           parts that were not passed, by the code the PLC got
 *   label:<defect label>          parts with at least one fired defect (`rule` set) of that label
 *   latencyLe:<bound>             parts whose timings.totalMs was <= bound (and > the bound below it)
 */

export const stationsKey = (prefix: string): string => `${prefix}:stats:stations`;
export const bucketKey = (prefix: string, station: string, minute: number): string => `${prefix}:stats:${station}:${minute}`;
export const seenKey = (prefix: string, station: string, minute: number): string => `${bucketKey(prefix, station, minute)}:seen`;

export const MINUTE_MS = 60_000;
export const minuteOf = (isoOrMs: string | number): number => Math.floor((typeof isoOrMs === 'number' ? isoOrMs : Date.parse(isoOrMs)) / MINUTE_MS);

/**
 * Latency bucket upper bounds: 20 per decade from 0.1 ms to 100 s, so a
 * percentile read from them is at most 12 % above the true value. Fixed, so
 * buckets written by any worker version add up. Printed with 4 significant
 * digits, which is also how they appear in field names.
 */
export const LATENCY_BOUNDS: readonly number[] = Array.from({ length: 121 }, (_, i) => Number((10 ** ((i - 20) / 20)).toPrecision(4)));

/** The bound of the bucket that holds `ms`; beyond 100 s counts as 100 s. */
export function latencyBound(ms: number): number {
  let lo = 0;
  let hi = LATENCY_BOUNDS.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((LATENCY_BOUNDS[mid] ?? Infinity) >= ms) hi = mid;
    else lo = mid + 1;
  }
  return LATENCY_BOUNDS[lo] ?? LATENCY_BOUNDS[LATENCY_BOUNDS.length - 1]!;
}

export const FIELD = {
  verdict: 'verdict:',
  reject: 'reject:',
  label: 'label:',
  latency: 'latencyLe:',
} as const;

/** The hash fields one result adds 1 to. */
export function fieldsOf(r: InspectionResult): string[] {
  const fields = [`${FIELD.verdict}${r.verdict}`, `${FIELD.latency}${latencyBound(r.timings.totalMs)}`];
  if (r.verdict !== 'pass') fields.push(`${FIELD.reject}${r.rejectCode}`);
  // A part with three fired cracks is one cracked part: the Pareto counts parts, like the yield.
  for (const label of new Set(r.defects.filter((d) => d.rule !== undefined).map((d) => d.label))) fields.push(`${FIELD.label}${label}`);
  return fields;
}
