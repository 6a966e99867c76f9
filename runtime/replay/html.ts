import { histogramSvg, rocSvg } from './html-charts.js';
import { missesSection, type ThumbnailFn } from './html-misses.js';
import { REPLAY_CSS } from './html-style.js';
import { esc, isGoodTruth, num, pct } from './html-text.js';
import type { ReplayMedia, ReplayReport, SweepRow } from './report.js';

export type { ThumbnailFn } from './html-misses.js';

export interface ReplayHtmlOptions {
  /** How many escape/overkill thumbnails to show (default 12). */
  readonly worstMisses?: number;
  /** Image downscaler; default the sharp-backed one in plugins/preprocess-image-decode. */
  readonly thumbnail?: ThumbnailFn;
}

/**
 * The replay report as ONE self-contained HTML file: inline CSS and SVG,
 * images as data: URIs, no script and no external request, so it can be
 * mailed or archived and still open on an offline line PC.
 */
export async function renderReplayHtml(report: ReplayReport, media: ReplayMedia, options: ReplayHtmlOptions = {}): Promise<string> {
  const loadThumbnail = async (): Promise<ThumbnailFn> =>
    // Loaded only when there is an image to show: sharp is a plugin's dependency, not runtime/'s.
    options.thumbnail ?? (await import('../../plugins/preprocess-image-decode/thumbnail.js')).thumbnail;
  const misses = await missesSection(report, media, options.worstMisses ?? 12, loadThumbnail);
  const title = `linegate replay: ${report.station}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${REPLAY_CSS}</style>
</head>
<body>
<main>
<h1>${esc(title)}</h1>
${summary(report)}
<section class="row">
<div>${confusion(report)}</div>
<div>${perClass(report)}</div>
</section>
<h2>Scores</h2>
<section class="row charts">
${rocSvg(report)}
${histogramSvg(report)}
</section>
<p class="note">${
    report.errors === 0
      ? 'Both charts take every image at its score.'
      : `The ROC curve takes every image at its score, as the AUROC does; the histogram leaves out the ${report.errors} error image(s), which the PLC rejects whatever the threshold.`
  }</p>
${sweepSection(report.sweep)}
${detection(report)}
${misses}
</main>
</body>
</html>
`;
}

function summary(report: ReplayReport): string {
  const model = report.model === null ? 'none' : `${esc(report.model.name)}@${esc(report.model.version)}`;
  const sha = report.model === null ? '' : `<span class="mono" title="${esc(report.model.sha256)}">sha256 ${esc(report.model.sha256.slice(0, 12))}</span>`;
  const facts: Array<[string, string]> = [
    ['Station', esc(report.station)],
    ['Folder', `<span class="mono">${esc(report.dir)}</span>`],
    ['Good classes', esc(report.good.join(', ') || 'none')],
    ['Model', `${model} ${sha}`],
    ['Created', esc(report.createdAt)],
    ['Images', `${report.images}`],
    ['Errors', `${report.errors}`],
    ['Latency', `p50 ${num(report.latencyMs.p50, 1)} ms · p95 ${num(report.latencyMs.p95, 1)} ms · p99 ${num(report.latencyMs.p99, 1)} ms`],
  ];
  const metrics: Array<[string, string, string]> = [
    ['Accuracy', pct(report.accuracy), ''],
    ['Precision', pct(report.precision), ''],
    ['Recall', pct(report.recall), ''],
    ['Escape rate', pct(report.escapeRate), 'bad'],
    ['Overkill rate', pct(report.overkillRate), 'warn'],
    ['AUROC', num(report.auroc), ''],
  ];
  return `<section id="summary">
<dl class="facts">${facts.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl>
<div class="metrics">${metrics.map(([k, v, cls]) => `<div class="metric ${cls}"><div class="k">${k}</div><div class="v">${v}</div></div>`).join('')}</div>
</section>`;
}

function confusion(report: ReplayReport): string {
  const { tp, fp, tn, fn } = report.confusion;
  return `<h2>Confusion</h2>
<table id="confusion" class="confusion">
<thead><tr><th>truth \\ verdict</th><th>rejected</th><th>passed</th></tr></thead>
<tbody>
<tr><th>defective</th><td class="ok">${tp}<small>caught</small></td><td class="bad">${fn}<small>escapes</small></td></tr>
<tr><th>good</th><td class="warn">${fp}<small>overkill</small></td><td class="ok">${tn}<small>passed</small></td></tr>
</tbody>
</table>
<p class="note">Error verdicts count as rejected: the PLC rejects them.</p>`;
}

function perClass(report: ReplayReport): string {
  const rows = Object.entries(report.perClass)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, s]) => {
      const kind = isGoodTruth(name) ? 'good part' : 'defect';
      return `<tr><th>${esc(name)} <small>${kind}</small></th><td>${s.images}</td><td>${s.pass}</td><td>${s.fail}</td><td>${s.error}</td><td>${s.correct}</td><td>${pct(s.accuracy)}</td></tr>`;
    });
  return `<h2>Per class</h2>
<table id="per-class">
<thead><tr><th>class</th><th>images</th><th>pass</th><th>fail</th><th>error</th><th>correct</th><th>accuracy</th></tr></thead>
<tbody>${rows.join('\n')}</tbody>
</table>`;
}

/**
 * At most `max` rows of a long sweep (which metrics.sweep gives in rising
 * threshold order), plus the operating points a quality engineer looks for
 * first: zero escapes at the lowest overkill.
 */
export function pickSweepRows(sweep: readonly SweepRow[], max = 25): Array<{ row: SweepRow; best: boolean }> {
  const zeroEscape = sweep.filter((r) => r.fn === 0);
  // Same good-part denominator on every row, so the fewest fp is the lowest overkill.
  const leastFp = Math.min(...zeroEscape.map((r) => r.fp));
  const best = new Set(zeroEscape.filter((r) => r.fp === leastFp));
  const keep = new Set<number>();
  const n = sweep.length;
  if (n <= max) sweep.forEach((_, i) => keep.add(i));
  else {
    // Half evenly over the rows (where the parts' scores are), half evenly over the
    // threshold range: most good parts crowd the low scores, and the sparse high end
    // is where a threshold is usually chosen.
    const byRow = Math.ceil(max / 2);
    for (let i = 0; i < byRow; i++) keep.add(Math.round((i * (n - 1)) / (byRow - 1)));
    const lo = sweep[0]!.threshold;
    const hi = sweep[n - 1]!.threshold;
    const byValue = max - byRow;
    for (let k = 1; k <= byValue; k++) {
      const target = lo + ((hi - lo) * k) / (byValue + 1);
      const at = sweep.findIndex((r) => r.threshold >= target);
      if (at >= 0) keep.add(at);
    }
  }
  sweep.forEach((r, i) => {
    if (best.has(r)) keep.add(i);
  });
  return [...keep].sort((a, b) => a - b).map((i) => ({ row: sweep[i]!, best: best.has(sweep[i]!) }));
}

function sweepSection(sweep: readonly SweepRow[]): string {
  if (sweep.length === 0) return '<h2>Threshold sweep</h2>\n<p class="note">No sweep: no image has a score.</p>';
  const picked = pickSweepRows(sweep);
  let previous = NaN;
  const rows = picked.map(({ row: r, best }) => {
    // More digits only where four would print two rows alike (the sweep's top row sits 1e-6 above the highest score).
    let digits = 4;
    while (digits < 8 && num(r.threshold, digits) === num(previous, digits)) digits++;
    const shown = num(r.threshold, digits);
    previous = r.threshold;
    return `<tr${best ? ' class="best"' : ''}><td>${shown}</td><td>${r.tp}</td><td>${r.fp}</td><td>${r.tn}</td><td>${r.fn}</td><td>${pct(r.escapeRate)}</td><td>${pct(r.overkillRate)}</td></tr>`;
  });
  const shown = picked.length < sweep.length ? `${picked.length} of ${sweep.length} thresholds, spread over the images and over the score range; ` : '';
  return `<h2>Threshold sweep</h2>
<p class="note">${shown}highlighted: zero escapes at the lowest overkill. Each row rejects a part whose score is at or above the threshold; error images stay rejected.</p>
<table id="sweep">
<thead><tr><th>threshold</th><th>tp</th><th>fp</th><th>tn</th><th>fn</th><th>escape rate</th><th>overkill rate</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table>`;
}

function detection(report: ReplayReport): string {
  const d = report.detection;
  if (d === undefined) return '';
  const rows = Object.entries(d.perClass)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, c]) => `<tr><th>${esc(name)}</th><td>${num(c.ap)}</td><td>${c.truths}</td><td>${c.predictions}</td></tr>`);
  return `<h2>Detection</h2>
<p class="note">mAP50 <b>${num(d.mAP50)}</b>: average precision at IoU ${num(d.iou, 2)} per class (VOC all-point).${
    d.classAgnostic ? ' Class-agnostic: the model\'s labels are not the truth classes, so boxes were matched whatever their label, under <b>any</b>.' : ''
  }</p>
<table id="detection">
<thead><tr><th>class</th><th>AP</th><th>truths</th><th>predictions</th></tr></thead>
<tbody>${rows.join('\n')}</tbody>
</table>`;
}
