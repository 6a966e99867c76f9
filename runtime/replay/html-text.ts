/*
 * Text helpers shared by the HTML report's parts. Everything inserted into the
 * page goes through `esc`: file and class names come from disk.
 */

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function esc(text: string | number): string {
  return String(text).replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

/** A rate as a percentage; null (no denominator) as "n/a". */
export function pct(value: number | null, digits = 1): string {
  return value === null || !Number.isFinite(value) ? 'n/a' : `${(value * 100).toFixed(digits)} %`;
}

export function num(value: number | null, digits = 3): string {
  return value === null || !Number.isFinite(value) ? 'n/a' : value.toFixed(digits);
}

/** A range of rates, e.g. "0.0-1.6 %". */
export function pctRange(range: readonly [number, number] | null, digits = 1): string {
  return range === null ? 'n/a' : `${(range[0] * 100).toFixed(digits)}-${(range[1] * 100).toFixed(digits)} %`;
}
