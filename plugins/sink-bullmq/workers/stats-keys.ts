import type { InspectionResult } from '../../../runtime/result.js';

/*
 * The statistics layout in Redis, shared by the stats worker (writer) and
 * readStats (reader), and by any dashboard that reads Redis directly:
 *
 *   <prefix>:stats:stations                    SET   every station id ever counted
 *   <prefix>:stats:<station>:<epochMinute>      HASH  counters of that minute (fields below)
 *   <prefix>:stats:<station>:<epochMinute>:seen SET   resultIds already counted, by the minute of their id
 *   <prefix>:stats:<station>:info               HASH  the station as its newest counted result says (fields below)
 *
 * epochMinute = floor(decidedAt in ms / 60000) for the counters. The seen
 * sets go by the minute in the result id (a UUIDv7 carries its time), which
 * a part inspected again after a crash keeps while its decidedAt moves on: the
 * id alone says "counted". Every key expires `retention` after the end of the
 * newest minute it holds; the stations set once no station was counted for
 * that long.
 *
 * Hash fields, each a count of parts:
 *   verdict:<pass|fail|error>
 *   reject:<rejectCode>           parts that were not passed, by the code the PLC got
 *   label:<defect label>          parts with at least one fired defect (`rule` set) of that label
 *   latencyLe:<bound>             parts whose timings.totalMs was <= bound (and > the bound below it)
 *
 * Info fields (the plant page reads them, `linegate plant`):
 *   lastAt                        decidedAt (ms) of the newest result counted
 *   lastResultId, lastVerdict     that result's id and verdict
 *   line                          its station.line, when it has one
 *   hierarchy                     its station.hierarchy as JSON ({site, area, line, cell}), when it has one
 *   name:<rejectCode>             the reason code (rule id or LG_ERR_ code) behind a reject code, as last seen
 */

export const stationsKey = (prefix: string): string => `${prefix}:stats:stations`;
export const bucketKey = (prefix: string, station: string, minute: number): string => `${prefix}:stats:${station}:${minute}`;
export const seenKey = (prefix: string, station: string, minute: number): string => `${bucketKey(prefix, station, minute)}:seen`;
export const infoKey = (prefix: string, station: string): string => `${prefix}:stats:${station}:info`;

export const INFO = { lastAt: 'lastAt', lastResultId: 'lastResultId', lastVerdict: 'lastVerdict', line: 'line', hierarchy: 'hierarchy', name: 'name:' } as const;

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

/** The minute a result id was made in (UUIDv7 time: the capture time for a source with stable ids); undefined for another UUID version. */
export function idMinute(resultId: string): number | undefined {
  if (resultId[14] !== '7') return undefined;
  const ms = Number.parseInt(resultId.slice(0, 8) + resultId.slice(9, 13), 16);
  return Number.isFinite(ms) ? minuteOf(ms) : undefined;
}

/** The reason code behind a result's reject code (the rule that fired, or the LG_ERR_ code); undefined for a pass. */
export function rejectNameOf(r: Pick<InspectionResult, 'verdict' | 'rejectCode' | 'reasons'>): string | undefined {
  if (r.verdict === 'pass') return undefined;
  return (r.reasons.find((x) => x.rejectCode === r.rejectCode) ?? r.reasons[0])?.code;
}

/** The hash fields one result adds 1 to. */
export function fieldsOf(r: InspectionResult): string[] {
  const fields = [`${FIELD.verdict}${r.verdict}`, `${FIELD.latency}${latencyBound(r.timings.totalMs)}`];
  if (r.verdict !== 'pass') fields.push(`${FIELD.reject}${r.rejectCode}`);
  // A part with three fired cracks is one cracked part: the Pareto counts parts, like the yield.
  for (const label of new Set(r.defects.filter((d) => d.rule !== undefined).map((d) => d.label))) fields.push(`${FIELD.label}${label}`);
  return fields;
}
