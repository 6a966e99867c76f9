// Charts drawn as inline SVG: sizes are attributes, colours come from style.css classes, and every
// bar carries its number as text or a <title>, so nothing is told by colour alone.
import { s } from './dom.js';
import { clock, ms } from './format.js';

const W = 600;

function frame(height, label, ...children) {
  return s('svg', { class: 'chart', viewBox: `0 0 ${W} ${height}`, role: 'img', 'aria-label': label, preserveAspectRatio: 'xMidYMid meet' }, ...children);
}

/** Parts per time bucket, stacked pass / fail / error, with the yield of each bucket above it. */
export function yieldChart(buckets) {
  const H = 220;
  const top = 24;
  const bottom = 26;
  const max = Math.max(1, ...buckets.map((b) => b.pass + b.fail + b.error));
  // At least 12 slots, the newest on the right: a young station's first buckets are bars, not walls.
  const slots = Math.max(12, buckets.length);
  const step = W / slots;
  const bw = Math.max(2, step * 0.8);
  const y = (n) => ((H - top - bottom) * n) / max;
  const bars = buckets.map((b, i) => {
    const x = (slots - buckets.length + i) * step + (step - bw) / 2;
    let base = H - bottom;
    const parts = [];
    for (const v of ['pass', 'fail', 'error']) {
      const hgt = y(b[v]);
      if (hgt <= 0) continue;
      base -= hgt;
      parts.push(s('rect', { class: `bar ${v}`, x, y: base, width: bw, height: hgt }, s('title', null, `${clock(b.at)}: ${b[v]} ${v}`)));
    }
    const total = b.pass + b.fail + b.error;
    const label = total > 0 && bw >= 38 ? s('text', { class: 'value', x: x + bw / 2, y: base - 5, 'text-anchor': 'middle' }, `${Math.round((100 * b.pass) / total)}%`) : null;
    const every = Math.max(Math.ceil(buckets.length / 4), Math.ceil(100 / step));
    const tick = (buckets.length - 1 - i) % every === 0 ? s('text', { class: 'tick', x: x + bw / 2, y: H - 6, 'text-anchor': 'middle' }, clock(b.at)) : null;
    return s('g', null, parts, label, tick);
  });
  return frame(H, 'parts per time bucket: pass, fail and error', s('line', { class: 'axis', x1: 0, x2: W, y1: H - bottom, y2: H - bottom }), bars);
}

/** Horizontal bars, most first, with the count and the cumulative share. */
export function paretoChart(items, labelOf, title) {
  const row = 34;
  const H = Math.max(row, items.length * row) + 4;
  const total = items.reduce((n, i) => n + i.count, 0);
  const max = Math.max(1, ...items.map((i) => i.count));
  const left = 250;
  const right = 150;
  let cum = 0;
  const rows = items.map((item, i) => {
    cum += item.count;
    const y = i * row + 4;
    const w = ((W - left - right) * item.count) / max;
    return s(
      'g',
      null,
      s('text', { class: 'label', x: left - 8, y: y + row / 2 + 1, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, labelOf(item)),
      s('rect', { class: 'bar fail', x: left, y: y + 3, width: Math.max(1, w), height: row - 8 }),
      s('text', { class: 'value', x: left + w + 6, y: y + row / 2 + 1, 'dominant-baseline': 'middle' }, `${item.count} · ${Math.round((100 * cum) / total)}% cum.`),
    );
  });
  return frame(H, title, rows);
}

/** Cycle times on the bins the summary gives, the cycle budget as a dashed line, the bin past it marked. */
export function latencyChart(latency) {
  const H = 250;
  const top = 30;
  const bottom = 48;
  const bins = latency.bins;
  const max = Math.max(1, ...bins.map((b) => b.count));
  const step = W / Math.max(1, bins.length);
  const bw = step * 0.8;
  const bars = bins.map((b, i) => {
    const x = i * step + (step - bw) / 2;
    const hgt = ((H - top - bottom) * b.count) / max;
    const over = b.toMs === null;
    const name = over ? `> ${ms(latency.budgetMs)}` : `≤ ${ms(b.toMs)}`;
    return s(
      'g',
      null,
      s('rect', { class: `bar ${over ? 'over' : 'pass'}`, x, y: H - bottom - hgt, width: bw, height: Math.max(0, hgt) }, s('title', null, `${name}: ${b.count} parts`)),
      s('text', { class: 'value', x: x + bw / 2, y: H - bottom - hgt - 4, 'text-anchor': 'middle' }, String(b.count)),
      i % 2 === (bins.length - 1) % 2 ? s('text', { class: 'tick', x: x + bw / 2, y: H - 26, 'text-anchor': 'middle' }, over ? 'over' : ms(b.toMs)) : null,
    );
  });
  const bx = (bins.length - 1) * step;
  return frame(
    H,
    `cycle time histogram against the ${ms(latency.budgetMs)} budget`,
    s('line', { class: 'axis', x1: 0, x2: W, y1: H - bottom, y2: H - bottom }),
    bars,
    s('line', { class: 'budget', x1: bx, x2: bx, y1: 4, y2: H - bottom }),
    s('text', { class: 'budget-label', x: bx - 6, y: 18, 'text-anchor': 'end' }, `budget ${ms(latency.budgetMs)}`),
    s('text', { class: 'tick', x: W / 2, y: H - 4, 'text-anchor': 'middle' }, 'cycle time, frame arrival to verdict (bin upper edge)'),
  );
}
