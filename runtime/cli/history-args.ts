import { InvalidArgumentError } from 'commander';
import type { Verdict } from '../result.js';

/* `history`'s option parsers, apart from the command so that the CLI loads them without the store. */

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/** `--since`: an ISO 8601 instant, or a duration back from now (`90s`, `15m`, `2h`, `7d`, `1w`). */
export function since(v: string, now: () => number = Date.now): string {
  const d = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(v.trim());
  if (d !== null) return new Date(now() - Number(d[1]) * UNIT_MS[d[2]!]!).toISOString();
  return until(v);
}

/** `--until`: an ISO 8601 instant (a date alone is its midnight UTC). */
export function until(v: string): string {
  const t = Date.parse(v.trim());
  if (!ISO.test(v.trim()) || Number.isNaN(t)) throw new InvalidArgumentError('must be an ISO 8601 instant (2025-05-01T06:00:00Z) or, for --since, a duration (90s, 15m, 2h, 7d, 1w)');
  return new Date(t).toISOString();
}

export const verdict = (v: string): Verdict => {
  if (v !== 'pass' && v !== 'fail' && v !== 'error') throw new InvalidArgumentError('must be pass, fail or error');
  return v;
};

export const limit = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError('must be an integer from 1 to 1000');
  return n;
};
