// Numbers and times as the plant page shows them. Plain functions, no DOM.

/** 0.9823 -> "98.2 %"; null -> "–". */
export function percent(x) {
  if (x === null || x === undefined) return '–';
  const p = 100 * x;
  return `${p >= 99.95 || p === 0 ? p.toFixed(0) : p.toFixed(1)} %`;
}

/** Parts per minute, with one decimal below 10. */
export function rate(x) {
  return x < 10 ? x.toFixed(1) : Math.round(x).toString();
}

/** Seconds -> "4 s ago", "3 min ago", "2 h ago"; null -> "never". */
export function ago(s) {
  if (s === null || s === undefined) return 'never';
  if (s < 60) return `${s} s ago`;
  if (s < 7200) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

/** An ISO instant as local wall-clock time. */
export function clock(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export const HEALTH_TEXT = { ok: 'ok', stale: 'stale', errors: 'errors' };
