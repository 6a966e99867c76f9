// How numbers, times and verdicts read on the page.

export const VERDICT_TEXT = { pass: 'PASS', fail: 'FAIL', error: 'ERROR' };
// A symbol beside the word: the verdict never rests on colour alone.
export const VERDICT_MARK = { pass: '✓', fail: '✗', error: '⚠' };

export function verdictLabel(v) {
  return `${VERDICT_MARK[v] ?? '?'} ${VERDICT_TEXT[v] ?? String(v).toUpperCase()}`;
}

export function pct(x, digits = 1) {
  return x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : `${(x * 100).toFixed(digits)} %`;
}

export function ms(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  return x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`;
}

export function bytes(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = x;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) (v /= 1024), u++;
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** "4 s ago", "3 min ago" from an ISO instant or epoch ms. */
export function ago(at, now = Date.now()) {
  const t = typeof at === 'number' ? at : Date.parse(at);
  if (!Number.isFinite(t)) return 'never';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
}

export function clock(at) {
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour12: false });
}

export function modelName(m) {
  return m ? `${m.name}@${m.version}` : 'no model';
}

/** site / area / line / cell, the levels present. */
export function hierarchyText(hr) {
  if (!hr || typeof hr !== 'object') return '';
  return ['site', 'area', 'line', 'cell'].map((k) => hr[k]).filter((v) => typeof v === 'string' && v !== '').join(' / ');
}
