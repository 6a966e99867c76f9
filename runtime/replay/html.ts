import { histogramSvg, rocSvg } from './html-charts.js';
import { missesSection, type ThumbnailFn } from './html-misses.js';
import { REPLAY_CSS } from './html-style.js';
import { esc, num, pct, pctRange } from './html-text.js';
import type { RateInterval } from './intervals.js';
import { goodBy } from './metrics.js';
import type { ReplayMedia, ReplayReport, SweepRow } from './report.js';

export type { ThumbnailFn } from './html-misses.js';

export interface ReplayHtmlOptions {
  /** At most this many escape thumbnails, and as many overkill ones, are embedded (default 500: it bounds the file's size). */
  readonly maxMissesPerKind?: number;
  /** Image downscaler; default the sharp-backed one in plugins/preprocess-image-decode. */
  readonly thumbnail?: ThumbnailFn;
}

/**
 * The replay report as ONE self-contained HTML file: inline CSS and SVG,
 * images as data: URIs, no script and no external request, so it can be
 * mailed or archived and still open on an offline line PC. It says what it
 * judged with (model and preprocessing, calibration, thresholds) next to
 * what it found.
 */
export async function renderReplayHtml(report: ReplayReport, media: ReplayMedia, options: ReplayHtmlOptions = {}): Promise<string> {
  const loadThumbnail = async (): Promise<ThumbnailFn> =>
    // Loaded only when there is an image to show: sharp is a plugin's dependency, not runtime/'s.
    options.thumbnail ?? (await import('../../plugins/preprocess-image-decode/thumbnail.js')).thumbnail;
  const misses = await missesSection(report, media, options.maxMissesPerKind ?? 500, loadThumbnail);
  const title = `linegate replay: ${report.station}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${REPLAY_CSS}${misses.css}</style>
</head>
<body>
<main>
<h1>${esc(title)}</h1>
${summary(report)}
${judgedWith(report)}
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
${misses.html}
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
  // Colours follow the goal: no escape (or no overkill) is good news, whatever the other numbers say.
  const goal = (rate: number | null, worse: 'bad' | 'warn'): string => (rate === null ? '' : rate === 0 ? 'ok' : worse);
  const metrics: Array<[string, string, string, string]> = [
    ['Accuracy', pct(report.accuracy), '', ''],
    ['Precision', pct(report.precision), '', ''],
    ['Recall', pct(report.recall), '', ''],
    ['Escape rate', pct(report.escapeRate), goal(report.escapeRate, 'bad'), interval(report.intervals?.escapeRate, 'defective')],
    ['Overkill rate', pct(report.overkillRate), goal(report.overkillRate, 'warn'), interval(report.intervals?.overkillRate, 'good')],
    ['AUROC', num(report.auroc), '', ''],
  ];
  return `<section id="summary">
<dl class="facts">${facts.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl>
<div class="metrics">${metrics.map(([k, v, cls, ci]) => `<div class="metric ${cls}"><div class="k">${k}</div><div class="v">${v}</div>${ci}</div>`).join('')}</div>
<p class="note">95 % intervals: exact (Clopper-Pearson) first, the one to quote: it stays honest at 0 misses, where the bootstrap collapses to [0, 0].</p>
</section>`;
}

function interval(r: RateInterval | undefined, of: string): string {
  if (r === undefined || r.rate === null) return '';
  return `<div class="ci">${r.k} of ${r.n} ${of} · 95 % ${pctRange(r.exact95, 2)} exact · ${pctRange(r.bootstrap95, 2)} bootstrap</div>`;
}

/** What the numbers were judged with: model package and its preprocessing, calibration and its provenance, each label's threshold and its source. */
function judgedWith(report: ReplayReport): string {
  const m = report.model;
  const pre = m?.preprocessing;
  const preText =
    pre === undefined
      ? 'not stated by the model step'
      : Object.entries(pre)
          .map(([k, v]) => `${esc(k)} <b>${esc(typeof v === 'object' ? JSON.stringify(v) : String(v))}</b>`)
          .join(' · ');
  const decode = m?.decode === undefined ? '' : `<dt>Decoding</dt><dd class="mono">${esc(JSON.stringify(m.decode))}</dd>`;
  const cal = report.calibration;
  const STATUS = {
    bound: 'made for this model',
    unbound: 'names no model: not checked against the model',
    unchecked: 'the model step cannot say which model it runs: not checked',
    mismatch: 'MADE FOR ANOTHER MODEL: applied only because the station sets calibration.allowModelMismatch',
    skipped: 'made for another model: left out, the model judged at its own thresholds',
  } as const;
  const calText =
    cal === null
      ? 'none'
      : `<span class="mono">${esc(cal.file)}</span> <span class="${cal.status === 'mismatch' ? 'badtext' : ''}">${esc(STATUS[cal.status])}</span>${
          cal.madeFor === null ? '' : ` (for ${esc(cal.madeFor.name)}@${esc(cal.madeFor.version)}, sha256 <span class="mono" title="${esc(cal.madeFor.sha256)}">${esc(cal.madeFor.sha256.slice(0, 12))}</span>)`
        }`;
  const prov = cal === null ? '' : provenanceText(cal.provenance);
  const rows = Object.entries(report.thresholds ?? {}).map(([l, t]) => `<tr><th>${esc(l)}</th><td>${num(t.value, 4)}</td><td>${esc(t.from)}</td></tr>`);
  const table =
    rows.length === 0
      ? '<p class="note">The decision step reported no per-label thresholds.</p>'
      : `<table id="thresholds"><thead><tr><th>label</th><th>threshold</th><th>from</th></tr></thead><tbody>${rows.join('')}</tbody></table>
<p class="note">A defect counts at or above its label's threshold. Sources, most specific first: calibration, the rule's minScore, the model package, 0.5.</p>`;
  return `<h2>Judged with</h2>
<section id="judged" class="row">
<div><dl class="facts">
<dt>Model</dt><dd>${m === null ? 'none' : `${esc(m.name)}@${esc(m.version)}${m.task === undefined ? '' : ` (${esc(m.task)})`} <span class="mono">sha256 ${esc(m.sha256)}</span>`}</dd>
<dt>Preprocessing</dt><dd>${preText}</dd>
${decode}
<dt>Calibration</dt><dd>${calText}</dd>
${prov === '' ? '' : `<dt>Its provenance</dt><dd>${prov}</dd>`}
</dl></div>
<div>${table}</div>
</section>`;
}

/** The calibration's provenance, scalars only: its `result` (the whole calibrate output) would drown the page. */
function provenanceText(p: Readonly<Record<string, unknown>>): string {
  return Object.entries(p)
    .filter(([k, v]) => k !== 'result' && k !== 'before' && (typeof v !== 'object' || v === null))
    .map(([k, v]) => `${esc(k)} <b>${esc(String(v))}</b>`)
    .join(' · ');
}

function confusion(report: ReplayReport): string {
  const { tp, fp, tn, fn } = report.confusion;
  return `<h2>Confusion</h2>
<table id="confusion" class="confusion">
<thead><tr><th>truth \\ verdict</th><th>rejected</th><th>passed</th></tr></thead>
<tbody>
<tr><th>defective</th><td class="ok">${tp}<small>caught</small></td><td class="${fn === 0 ? 'ok' : 'bad'}">${fn}<small>escapes</small></td></tr>
<tr><th>good</th><td class="${fp === 0 ? 'ok' : 'warn'}">${fp}<small>overkill</small></td><td class="ok">${tn}<small>passed</small></td></tr>
</tbody>
</table>
<p class="note">Error verdicts count as rejected: the PLC rejects them.</p>`;
}

function perClass(report: ReplayReport): string {
  const isGoodTruth = goodBy(report.good);
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
  const all = d.allDetections;
  const op = d.operatingThreshold;
  const labels = [...new Set([...Object.keys(op.perClass), ...Object.keys(all?.perClass ?? {})])].sort();
  const rows = labels.map((name) => {
    const a = all?.perClass[name];
    const o = op.perClass[name];
    const c = op.perClassCounts[name];
    return `<tr><th>${esc(name)}</th><td>${a === undefined ? 'n/a' : num(a.ap50)}</td><td>${a === undefined ? 'n/a' : num(a.ap50_95)}</td><td>${a === undefined ? 'n/a' : a.predictions}</td><td>${
      o === undefined ? 'n/a' : num(o.ap50)
    }</td><td>${pct(c?.precision ?? null)}</td><td>${pct(c?.recall ?? null)}</td><td>${o?.predictions ?? 0}</td><td>${o?.truths ?? a?.truths ?? 0}</td></tr>`;
  });
  const standard =
    all === null
      ? '<b>n/a</b> (the station\'s decoder cannot be asked for its low-confidence detections)'
      : `mAP50 <b>${num(all.mAP50)}</b>, mAP50-95 <b>${num(all.mAP50_95)}</b> over all detections (decoder score floor ${num(all.scoreFloor)}, as COCO and VOC evaluate)`;
  return `<h2>Detection</h2>
<p class="note">Standard: ${standard}.<br>
At the operating threshold (the boxes the decision counted): mAP50 <b>${num(op.mAP50)}</b>, precision <b>${pct(op.precision)}</b>, recall <b>${pct(op.recall)}</b> (${op.tp} boxes found, ${op.fp} false, ${op.fn} missed, at IoU 0.5). Not comparable with published mAP: it leaves out every detection below the threshold.<br>
AP: Pascal VOC all-point interpolation (area under the precision envelope); AP50-95: the mean of AP at IoU 0.50, 0.55, ..., 0.95.${
    d.classAgnostic ? ' Class-agnostic: the model\'s labels are not the truth classes, so boxes were matched whatever their label, under <b>any</b>.' : ''
  }</p>
<table id="detection">
<thead><tr><th rowspan="2">class</th><th colspan="3">all detections</th><th colspan="4">at the operating threshold</th><th rowspan="2">truths</th></tr>
<tr><th>AP50</th><th>AP50-95</th><th>boxes</th><th>AP50</th><th>precision</th><th>recall</th><th>boxes</th></tr></thead>
<tbody>${rows.join('\n')}</tbody>
</table>`;
}
