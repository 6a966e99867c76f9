import { goodBy, type IsGood } from './metrics.js';
import { esc, num } from './html-text.js';
import type { ReplayReport, ReplayRow } from './report.js';

/*
 * The report's charts as inline SVG strings (no script, no external request).
 * The ROC curve takes the rows metrics.auroc takes (every inspected part at
 * its score), so the area under the drawn curve is the AUROC in its title.
 * Both leave error rows out, as the histogram does: their score is not a model
 * output, and the PLC rejects them whatever the threshold is.
 */

export const GOOD_COLOUR = '#1c7ed6';
export const DEFECT_COLOUR = '#e8590c';

export interface RocPoint {
  readonly fpr: number;
  readonly tpr: number;
}

/** The ROC curve of score vs "is defective", one point per distinct score (ties move diagonally). */
export function rocPoints(rows: readonly ReplayRow[], isGoodTruth: IsGood): RocPoint[] | null {
  const scored = rows.filter((r) => r.verdict !== 'error' && Number.isFinite(r.score));
  const positives = scored.filter((r) => !isGoodTruth(r.truth)).length;
  const negatives = scored.length - positives;
  if (positives === 0 || negatives === 0) return null;
  const sorted = [...scored].sort((a, b) => b.score - a.score);
  const points: RocPoint[] = [{ fpr: 0, tpr: 0 }];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < sorted.length; i++) {
    const row = sorted[i]!;
    if (isGoodTruth(row.truth)) fp++;
    else tp++;
    if (i === sorted.length - 1 || sorted[i + 1]!.score !== row.score) points.push({ fpr: fp / negatives, tpr: tp / positives });
  }
  return points;
}

/** Where the station's threshold lies, if the verdicts are a clean cut on the score: (highest pass, lowest fail]. */
export function inferThreshold(rows: readonly ReplayRow[]): { readonly above: number; readonly atMost: number } | null {
  let maxPass = -Infinity;
  let minFail = Infinity;
  for (const r of rows) {
    if (!Number.isFinite(r.score)) continue;
    if (r.verdict === 'pass') maxPass = Math.max(maxPass, r.score);
    else if (r.verdict === 'fail') minFail = Math.min(minFail, r.score);
  }
  if (!Number.isFinite(maxPass) || !Number.isFinite(minFail) || maxPass >= minFail) return null;
  return { above: maxPass, atMost: minFail };
}

/**
 * The station's thresholds on the score axis, as the decision used them (one line per distinct
 * value, its labels and source in the tooltip). A report without them (an older one, or a decision
 * that does not say) gets the range the verdicts imply, marked as inferred.
 */
function thresholdMarks(report: ReplayReport, x: (v: number) => number, top: number, height: number, right: number): string[] {
  const parts: string[] = [];
  const byValue = new Map<number, { labels: string[]; from: Set<string> }>();
  for (const [label, t] of Object.entries(report.thresholds ?? {})) {
    const entry = byValue.get(t.value) ?? { labels: [], from: new Set<string>() };
    entry.labels.push(label);
    entry.from.add(t.from);
    byValue.set(t.value, entry);
  }
  if (byValue.size === 0) {
    const cut = inferThreshold(report.results);
    if (cut === null) return parts;
    const x1 = x(Math.max(0, cut.above));
    const x2 = Math.max(x1 + 1.5, x(Math.min(1, cut.atMost)));
    parts.push(`<rect class="cut" x="${f(x1)}" y="${top}" width="${f(x2 - x1)}" height="${height}"><title>threshold inferred from the verdicts: in (${num(cut.above)}, ${num(cut.atMost)}]</title></rect>`);
    const labelLeft = x2 > right - 180;
    parts.push(`<text class="tick cutlabel" x="${f(labelLeft ? x1 - 6 : x2 + 6)}" y="${top + 14}" text-anchor="${labelLeft ? 'end' : 'start'}">inferred threshold in (${num(cut.above, 2)}, ${num(cut.atMost, 2)}]</text>`);
    return parts;
  }
  [...byValue].sort(([a], [b]) => a - b).forEach(([value, { labels, from }], k) => {
    const at = x(Math.min(1, Math.max(0, value)));
    const which = labels.length === 1 ? labels[0]! : `${labels.length} labels`;
    const text = `threshold ${num(value, 4)} (${[...from].join(', ')})${byValue.size > 1 || labels.length > 1 ? `: ${which}` : ''}`;
    parts.push(`<line class="thr" x1="${f(at)}" y1="${top}" x2="${f(at)}" y2="${top + height}"><title>${esc(`threshold ${num(value, 4)} (${[...from].join(', ')}): ${labels.join(', ')}`)}</title></line>`);
    const labelLeft = at > right - 200;
    parts.push(`<text class="tick cutlabel" x="${f(labelLeft ? at - 6 : at + 6)}" y="${top + 14 + 14 * k}" text-anchor="${labelLeft ? 'end' : 'start'}">${esc(text)}</text>`);
  });
  return parts;
}

/** Drops points closer than ~half a pixel to the last one kept: a 50 000-image replay must not make a megabyte polyline. */
function visible(points: readonly RocPoint[], step = 0.002): RocPoint[] {
  const out: RocPoint[] = [];
  points.forEach((p, i) => {
    const last = out.at(-1);
    if (last === undefined || i === points.length - 1 || Math.abs(p.fpr - last.fpr) >= step || Math.abs(p.tpr - last.tpr) >= step) out.push(p);
  });
  return out;
}

const f = (v: number): string => (Math.round(v * 100) / 100).toString();

export function rocSvg(report: ReplayReport): string {
  const points = rocPoints(report.results, goodBy(report.good));
  if (points === null) return '<p class="note">No ROC curve: it needs both good and defective images.</p>';
  const left = 52;
  const top = 34;
  const side = 280;
  const x = (v: number): number => left + v * side;
  const y = (v: number): number => top + (1 - v) * side;
  const grid: string[] = [];
  for (let i = 0; i <= 5; i++) {
    const v = i / 5;
    grid.push(`<line class="grid" x1="${f(x(v))}" y1="${top}" x2="${f(x(v))}" y2="${top + side}"/>`);
    grid.push(`<line class="grid" x1="${left}" y1="${f(y(v))}" x2="${left + side}" y2="${f(y(v))}"/>`);
    grid.push(`<text class="tick" x="${f(x(v))}" y="${top + side + 16}" text-anchor="middle">${v.toFixed(1)}</text>`);
    grid.push(`<text class="tick" x="${left - 8}" y="${f(y(v) + 4)}" text-anchor="end">${v.toFixed(1)}</text>`);
  }
  const curve = visible(points).map((p) => `${f(x(p.fpr))},${f(y(p.tpr))}`).join(' ');
  const { tp, fp, tn, fn } = report.confusion;
  // The station's own operating point, errors included (they are rejects on the line).
  const op = tp + fn > 0 && fp + tn > 0 ? { fpr: fp / (fp + tn), tpr: tp / (tp + fn) } : null;
  const opMark =
    op === null
      ? ''
      : `<circle cx="${f(x(op.fpr))}" cy="${f(y(op.tpr))}" r="5" class="op"><title>station: overkill ${num(op.fpr)}, recall ${num(op.tpr)}</title></circle>` +
        `<text class="tick" x="${f(x(op.fpr) + 8)}" y="${f(y(op.tpr) + 14)}">station</text>`;
  const title = `ROC (AUROC ${num(report.auroc)})`;
  return `<svg id="roc" class="chart" viewBox="0 0 ${left + side + 16} ${top + side + 44}" role="img" aria-label="${esc(title)}">
<title>${esc(title)}</title>
<text class="ctitle" x="${left + side / 2}" y="20" text-anchor="middle">${esc(title)}</text>
${grid.join('\n')}
<rect class="frame" x="${left}" y="${top}" width="${side}" height="${side}"/>
<line class="diag" x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}"/>
<polyline class="roc" points="${curve}"/>
${opMark}
<text class="axis" x="${left + side / 2}" y="${top + side + 36}" text-anchor="middle">false positive rate (overkill)</text>
<text class="axis" transform="translate(14 ${top + side / 2}) rotate(-90)" text-anchor="middle">true positive rate (recall)</text>
</svg>`;
}

const BINS = 20;

function binShares(scores: readonly number[]): number[] {
  const counts = new Array<number>(BINS).fill(0);
  for (const s of scores) {
    const bin = Math.min(BINS - 1, Math.max(0, Math.floor(s * BINS)));
    counts[bin] = (counts[bin] ?? 0) + 1;
  }
  return counts;
}

/**
 * Good and defective score histograms, side by side per bin. Bars are shares
 * of their own class (a line has far more good parts than bad ones: on counts
 * the defective bars would vanish); the counts are in each bar's tooltip.
 */
export function histogramSvg(report: ReplayReport): string {
  const isGoodTruth = goodBy(report.good);
  const scored = report.results.filter((r) => r.verdict !== 'error' && Number.isFinite(r.score));
  const good = scored.filter((r) => isGoodTruth(r.truth)).map((r) => r.score);
  const bad = scored.filter((r) => !isGoodTruth(r.truth)).map((r) => r.score);
  if (scored.length === 0) return '<p class="note">No score histogram: no image has a score.</p>';
  const series = [
    { name: 'good', colour: GOOD_COLOUR, counts: binShares(good), total: good.length },
    { name: 'defective', colour: DEFECT_COLOUR, counts: binShares(bad), total: bad.length },
  ];
  const maxShare = Math.max(...series.flatMap((s) => s.counts.map((c) => (s.total ? c / s.total : 0))));
  const yMax = Math.max(0.1, Math.ceil(maxShare * 10) / 10);
  const left = 66; // room for "30 %" beside the rotated axis title
  const top = 34;
  const width = 560;
  const height = 220;
  const x = (v: number): number => left + v * width;
  const y = (v: number): number => top + (1 - v / yMax) * height;
  const parts: string[] = [];
  for (let i = 0; i <= 10; i++) {
    const v = i / 10;
    parts.push(`<text class="tick" x="${f(x(v))}" y="${top + height + 16}" text-anchor="middle">${v.toFixed(1)}</text>`);
  }
  const ySteps = Math.round(yMax * 10);
  const yEvery = ySteps > 5 ? 2 : 1;
  for (let i = 0; i <= ySteps; i += yEvery) {
    const v = i / 10;
    parts.push(`<line class="grid" x1="${left}" y1="${f(y(v))}" x2="${left + width}" y2="${f(y(v))}"/>`);
    parts.push(`<text class="tick" x="${left - 8}" y="${f(y(v) + 4)}" text-anchor="end">${Math.round(v * 100)} %</text>`);
  }
  const binWidth = width / BINS;
  series.forEach((s, k) => {
    s.counts.forEach((count, bin) => {
      if (count === 0 || s.total === 0) return;
      const share = count / s.total;
      const bx = left + bin * binWidth + 1 + k * (binWidth / 2 - 1);
      const range = `${(bin / BINS).toFixed(2)}-${((bin + 1) / BINS).toFixed(2)}`;
      parts.push(
        `<rect x="${f(bx)}" y="${f(y(share))}" width="${f(binWidth / 2 - 1)}" height="${f(top + height - y(share))}" fill="${s.colour}">` +
          `<title>${esc(s.name)} ${range}: ${count} of ${s.total}</title></rect>`,
      );
    });
  });
  parts.push(...thresholdMarks(report, x, top, height, left + width));
  // The legend sits on the title line, so neither the bars nor the threshold label can run into it.
  const legend = series
    .map((s, k) => {
      const lx = left + width - 260 + k * 130;
      return `<rect x="${lx}" y="11" width="12" height="12" fill="${s.colour}"/><text class="tick legend" x="${lx + 17}" y="21">${esc(s.name)} (n=${s.total})</text>`;
    })
    .join('\n');
  const title = 'Defect score by truth';
  return `<svg id="histogram" class="chart wide" viewBox="0 0 ${left + width + 16} ${top + height + 44}" role="img" aria-label="${esc(title)}">
<title>${esc(title)}</title>
<text class="ctitle" x="${left}" y="21">${esc(title)}</text>
${parts.join('\n')}
<line class="axisline" x1="${left}" y1="${top + height}" x2="${left + width}" y2="${top + height}"/>
${legend}
<text class="axis" x="${left + width / 2}" y="${top + height + 36}" text-anchor="middle">defect score (20 bins)</text>
<text class="axis" transform="translate(14 ${top + height / 2}) rotate(-90)" text-anchor="middle">share of class</text>
</svg>`;
}
