import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { thumbnail } from '../../plugins/preprocess-image-decode/thumbnail.js';
import { inferThreshold, rocPoints } from '../../runtime/replay/html-charts.js';
import { pickSweepRows, renderReplayHtml, type ThumbnailFn } from '../../runtime/replay/html.js';
import { auroc } from '../../runtime/replay/metrics.js';
import type { ReplayMedia, ReplayReport, ReplayRow, SweepRow } from '../../runtime/replay/report.js';
import { ODD_NAME, sampleReplay } from '../helpers/replay-sample.js';
import { scratch } from '../helpers/scratch.js';

/** The file names of the worst-miss tiles, in page order. */
function tileFiles(html: string): string[] {
  return [...html.matchAll(/<figure class="tile[^"]*">[\s\S]*?<div class="file" title="([^"]*)"/g)].map((m) => m[1]!);
}

/** The HTML of the tile whose file name (escaped) is `file`. */
function tileOf(html: string, file: string): string {
  const tile = html.split(/<figure class="tile[^"]*">/).find((t) => t.includes(`title="${file}"`));
  if (tile === undefined) throw new Error(`no tile for ${file}`);
  return tile.slice(0, tile.indexOf('</figure>'));
}

const row = (truth: string, verdict: ReplayRow['verdict'], score: number): ReplayRow => ({ file: `${truth}/${score}.png`, truth, verdict, score, defects: [] });

describe('renderReplayHtml', () => {
  let report: ReplayReport;
  let media: ReplayMedia;
  let html: string;

  beforeAll(async () => {
    ({ report, media } = sampleReplay(scratch('lg-replay-html-')));
    html = await renderReplayHtml(report, media);
  });

  it('shows the summary: station, folder, model, creation time, counts, rates and latency', () => {
    expect(html).toContain('<title>linegate replay: casting-01</title>');
    expect(html).toContain(report.dir);
    expect(html).toContain('casting-cls@3');
    expect(html).toContain('sha256 abcdef012345<');
    expect(html).toContain('2025-05-04T10:20:30.000Z');
    expect(html).toMatch(/<dt>Images<\/dt><dd>11<\/dd>/);
    expect(html).toMatch(/<dt>Errors<\/dt><dd>1<\/dd>/);
    for (const [name, value] of [['Accuracy', '45.5 %'], ['Precision', '50.0 %'], ['Recall', '50.0 %'], ['Escape rate', '50.0 %'], ['Overkill rate', '60.0 %'], ['AUROC', auroc(report.results)!.toFixed(3)]]) {
      expect(html).toContain(`<div class="k">${name}</div><div class="v">${value}</div>`);
    }
    expect(html).toContain('p50 12.3 ms · p95 23.4 ms · p99 34.6 ms');
  });

  it('shows a rate without a denominator, and a missing model, as n/a and none', async () => {
    const bare: ReplayReport = { ...report, precision: null, auroc: null, model: null, detection: undefined };
    const page = await renderReplayHtml(bare, media, { maxMissesPerKind: 0 });
    expect(page).toContain('<div class="k">Precision</div><div class="v">n/a</div>');
    expect(page).toContain('<div class="k">AUROC</div><div class="v">n/a</div>');
    expect(page).toContain('ROC (AUROC n/a)');
    expect(page).toContain('<dt>Model</dt><dd>none');
    expect(page).not.toContain('<h2>Detection</h2>');
    expect(page).toContain('Showing 0 of 3 escapes');
    expect(page).not.toContain('No escapes and no overkills');
  });

  it('renders a replay of only good parts, and an empty one, with notes in place of the charts', async () => {
    const goodOnly = report.results.filter((r) => r.truth === 'good' && r.verdict === 'pass');
    const page = await renderReplayHtml({ ...report, results: goodOnly, sweep: [], auroc: null }, media);
    expect(page).toContain('No ROC curve: it needs both good and defective images.');
    expect(page).toContain('defective (n=0)');
    expect(page).toContain('No sweep: no image has a score.');
    expect(page).toContain('No escapes and no overkills.');
    const empty = await renderReplayHtml({ ...report, results: [], sweep: [], perClass: {}, detection: undefined }, media);
    expect(empty).toContain('No score histogram: no image has a score.');
  });

  it('lays out the confusion matrix as truth rows against rejected/passed columns, and the per-class table', () => {
    expect(html).toMatch(/<tr><th>defective<\/th><td class="ok">3<small>caught<\/small><\/td><td class="bad">3<small>escapes<\/small><\/td><\/tr>/);
    expect(html).toMatch(/<tr><th>good<\/th><td class="warn">3<small>overkill<\/small><\/td><td class="ok">2<small>passed<\/small><\/td><\/tr>/);
    expect(html).toContain('<tr><th>good <small>good part</small></th><td>5</td><td>2</td><td>2</td><td>1</td><td>2</td><td>40.0 %</td></tr>');
    expect(html).toContain('<tr><th>porosity <small>defect</small></th><td>2</td><td>1</td><td>1</td><td>0</td><td>1</td><td>50.0 %</td></tr>');
  });

  it('draws the ROC curve with its diagonal, titled with the AUROC, and its area is that AUROC', () => {
    const svg = /<svg id="roc"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    expect(svg).toContain(`ROC (AUROC ${report.auroc!.toFixed(3)})`);
    expect(svg).toMatch(/<line class="diag"/);
    expect(svg).toMatch(/<polyline class="roc" points="[\d., ]+"/);
    const points = rocPoints(report.results, (t) => t === 'good')!;
    const area = points.slice(1).reduce((s, p, i) => s + (p.fpr - points[i]!.fpr) * (p.tpr + points[i]!.tpr) / 2, 0);
    expect(area).toBeCloseTo(auroc(report.results)!, 10);
    expect(points.at(-1)).toEqual({ fpr: 1, tpr: 1 });
  });

  it('draws good and defective score histograms with a legend and the threshold the decision used, with its source', () => {
    const svg = /<svg id="histogram"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    // The error image is not in the histogram: 4 good, 6 defective.
    expect(svg).toContain('good (n=4)');
    expect(svg).toContain('defective (n=6)');
    expect(svg).toMatch(/<line class="thr" x1="(\d+(\.\d+)?)" y1="34" x2="\1"/);
    const x = Number(/<line class="thr" x1="([\d.]+)"/.exec(svg)![1]);
    expect(x).toBeCloseTo(66 + 0.5 * 560, 1); // the real 0.5, not a range guessed from the verdicts
    expect(svg).toContain('>threshold 0.5000 (calibration)</text>');
    expect(svg).not.toContain('inferred');
    expect(svg.match(/fill="#[0-9a-f]{6}"><title>/g)?.length).toBe(4 + 6);
  });

  it('draws one line per distinct threshold, and falls back to the range the verdicts imply only when the report has none', async () => {
    const two = await renderReplayHtml({ ...report, thresholds: { crack: { value: 0.3, from: 'rule' }, dent: { value: 0.7, from: 'model' }, pit: { value: 0.7, from: 'model' } } }, media, { maxMissesPerKind: 0 });
    const svg = /<svg id="histogram"[\s\S]*?<\/svg>/.exec(two)?.[0] ?? '';
    expect(svg.match(/<line class="thr"/g)).toHaveLength(2);
    expect(svg).toContain('threshold 0.7000 (model): dent, pit');
    const none = await renderReplayHtml({ ...report, thresholds: {} }, media, { maxMissesPerKind: 0 });
    expect(none).toContain('inferred threshold in (0.45, 0.55]');
  });

  it('says what it judged with: model and preprocessing, calibration with its provenance, thresholds with their source', () => {
    const judged = /<section id="judged"[\s\S]*?<\/section>/.exec(html)?.[0] ?? '';
    expect(judged).toContain('casting-cls@3 (classification)');
    expect(judged).toContain('kernel <b>linear</b>');
    expect(judged).toContain('resize <b>{&quot;mode&quot;:&quot;stretch&quot;}</b>');
    expect(judged).toContain('/line/calibration/casting-01.json');
    expect(judged).toContain('made for this model');
    expect(judged).toContain('method <b>linegate calibrate --target escape=0</b>');
    expect(judged).toContain('<tr><th>porosity</th><td>0.5000</td><td>calibration</td></tr>');
  });

  it('colours rates by the goal: no escape is green, escapes red', async () => {
    expect(html).toContain('<div class="metric bad"><div class="k">Escape rate</div><div class="v">50.0 %</div>');
    const clean = await renderReplayHtml({ ...report, escapeRate: 0, overkillRate: 0, confusion: { tp: 6, fp: 0, tn: 5, fn: 0 } }, media, { maxMissesPerKind: 0 });
    expect(clean).toContain('<div class="metric ok"><div class="k">Escape rate</div><div class="v">0.0 %</div>');
    expect(clean).toContain('<div class="metric ok"><div class="k">Overkill rate</div><div class="v">0.0 %</div>');
    expect(clean).toMatch(/<td class="ok">0<small>escapes<\/small>/);
  });

  it('shows the exact and the bootstrap interval beside each rate', () => {
    expect(html).toContain('3 of 6 defective · 95 % 11.81-88.19 % exact');
  });

  it('infers no threshold when passes and fails overlap in score', () => {
    expect(inferThreshold([row('good', 'pass', 0.6), row('x', 'fail', 0.5)])).toBeNull();
    expect(inferThreshold([row('good', 'pass', 0.2), row('x', 'fail', 0.5), row('x', 'error', 0)])).toEqual({ above: 0.2, atMost: 0.5 });
  });

  it('lists the threshold sweep and highlights zero escapes at the lowest overkill', () => {
    const table = /<table id="sweep">[\s\S]*?<\/table>/.exec(html)?.[0] ?? '';
    expect(table.match(/<tr(?: class="best")?><td>/g)?.length).toBe(report.sweep.length);
    // The lowest defective score is 0.10: there, every defect is caught and 4 good parts (one an error) are rejected.
    expect(table).toContain('<tr class="best"><td>0.1000</td><td>6</td><td>4</td><td>1</td><td>0</td><td>0.0 %</td><td>80.0 %</td></tr>');
    expect(table.match(/class="best"/g)).toHaveLength(1);
    // The top row sits just above the highest score (0.9): printed with the digits that tell them apart.
    expect(table).toContain('<td>0.9000</td>');
    expect(table).toContain('<td>0.900001</td>');
  });

  it('shows at most 25 evenly spread rows of a long sweep, plus the best rows', () => {
    const long: SweepRow[] = Array.from({ length: 300 }, (_, i) => {
      const fn = i <= 137 ? 0 : 1;
      return { threshold: i / 300, tp: 10 - fn, fp: 300 - i, tn: i, fn, escapeRate: fn / 10, overkillRate: (300 - i) / 300 };
    });
    const picked = pickSweepRows(long);
    expect(picked.length).toBeLessThanOrEqual(26);
    expect(picked[0]!.row).toBe(long[0]);
    expect(picked.at(-1)!.row).toBe(long[299]);
    expect(picked.filter((p) => p.best).map((p) => p.row)).toEqual([long[137]]);
    const thresholds = picked.map((p) => p.row.threshold);
    expect(thresholds).toEqual([...thresholds].sort((a, b) => a - b));
    expect(pickSweepRows(long.slice(0, 10)).map((p) => p.row)).toEqual(long.slice(0, 10));
  });

  it('keeps the sparse high-score end of a skewed sweep in view', () => {
    // 290 thresholds under 0.1 (the good parts), 10 spread from 0.19 to 1.
    const skewed: SweepRow[] = Array.from({ length: 300 }, (_, i) => ({
      threshold: i < 290 ? i / 2900 : 0.1 + (i - 289) * 0.09,
      tp: 10, fp: 300 - i, tn: i, fn: 0, escapeRate: 0, overkillRate: (300 - i) / 300,
    }));
    const picked = pickSweepRows(skewed);
    expect(picked.length).toBeLessThanOrEqual(26);
    expect(picked.filter((p) => p.row.threshold >= 0.5).length).toBeGreaterThanOrEqual(5);
    expect(picked.filter((p) => p.row.threshold < 0.1).length).toBeGreaterThanOrEqual(10);
  });

  it('stays small for a large replay: the ROC polyline is thinned and the sweep table capped', async () => {
    let seed = 11;
    const rnd = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const results = Array.from({ length: 20_000 }, (_, i) => row(i % 10 === 0 ? 'scratch' : 'good', 'pass', Math.round(rnd() * 1e6) / 1e6));
    // A stand-in sweep with one row per image: the table must show ~25 of them.
    const rows: SweepRow[] = results.map((r, i) => ({ threshold: i / results.length, tp: 0, fp: 0, tn: 0, fn: 1, escapeRate: 1, overkillRate: 0 }));
    const big: ReplayReport = { ...report, results, sweep: rows, images: results.length };
    const started = performance.now();
    const page = await renderReplayHtml(big, media, { maxMissesPerKind: 0 });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(page.match(/<tr><td>/g)?.length).toBeLessThanOrEqual(25);
    const points = /<polyline class="roc" points="([^"]*)"/.exec(page)?.[1]?.split(' ') ?? [];
    expect(points.length).toBeGreaterThan(100);
    expect(points.length).toBeLessThan(1500);
    expect(page.length).toBeLessThan(120_000);
  });

  it('shows mAP50 and mAP50-95 over all detections apart from the figures at the operating threshold, each labelled, and says when matching was class-agnostic', async () => {
    expect(html).toContain('mAP50 <b>0.375</b>, mAP50-95 <b>0.200</b> over all detections (decoder score floor 0.001');
    expect(html).toContain('At the operating threshold (the boxes the decision counted): mAP50 <b>0.300</b>, precision <b>50.0 %</b>, recall <b>20.0 %</b>');
    expect(html).toContain('<tr><th>crazing</th><td>0.250</td><td>0.100</td><td>1</td><td>0.200</td><td>0.0 %</td><td>0.0 %</td><td>1</td><td>2</td></tr>');
    expect(html).toContain('Pascal VOC all-point');
    const noAll = await renderReplayHtml({ ...report, detection: { ...report.detection!, allDetections: null } }, media, { maxMissesPerKind: 0 });
    expect(noAll).toContain('Standard: <b>n/a</b>');
    expect(html).not.toContain('Class-agnostic');
    const agnostic = await renderReplayHtml({ ...report, detection: { ...report.detection!, classAgnostic: true } }, media, { maxMissesPerKind: 0 });
    expect(agnostic).toContain('Class-agnostic');
  });

  it('shows escapes by lowest score first, then overkills by highest score', () => {
    expect(tileFiles(html)).toEqual([
      'scratches/scratches_7.jpg',
      'crazing/crazing_7.jpg',
      'porosity/broken.jpg',
      'good/cast_ok_0_2985.jpeg',
      'good/a&lt;b&gt;&amp;&quot;q&#39;.jpeg',
      'good/cast_ok_0_4672.jpeg',
    ]);
    expect(html).toContain('Showing 3 of 3 escapes (lowest score first) and 3 of 3 overkills (highest score first)');
    expect(tileOf(html, 'scratches/scratches_7.jpg')).toContain('<span class="tag escape">escape</span> truth <b>scratches</b>, verdict <b>pass</b>, score <b>0.100</b>');
  });

  it('overlays predicted and truth boxes in source pixels over a downscaled data: image', () => {
    const crazing = tileOf(html, 'crazing/crazing_7.jpg');
    expect(crazing).toMatch(/<img src="data:image\/jpeg;base64,[A-Za-z0-9+/=]+" width="200" height="200"/);
    expect(crazing).toContain('viewBox="0 0 200 200"');
    expect(crazing.match(/<rect class="truth" /g)).toHaveLength(2);
    expect(crazing).toContain('<rect class="pred" x="10" y="80" width="150" height="60"');
    expect(crazing).toContain('>crazing 0.30</text>');
    // No size in media for the casting images: the viewBox comes from the image itself.
    const casting = tileOf(html, 'good/cast_ok_0_2985.jpeg');
    expect(media.sizes.has('good/cast_ok_0_2985.jpeg')).toBe(false);
    expect(casting).toContain('viewBox="0 0 300 300"');
    expect(casting).toContain('<rect class="pred" x="120" y="40" width="90" height="70"');
  });

  it('escapes every name that came from disk', async () => {
    expect(html).not.toContain(ODD_NAME);
    expect(html).toContain('alt="good/a&lt;b&gt;&amp;&quot;q&#39;.jpeg"');
    const hostile = await renderReplayHtml({ ...report, station: '<script>alert(1)</script>' }, media, { maxMissesPerKind: 0 });
    expect(hostile).not.toContain('<script>');
    expect(hostile).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  it('is self-contained: no script, no stylesheet link, no http(s) reference, every image a data: URI', () => {
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script|<link|@import|url\(/i);
    const sources = [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
    expect(sources.length).toBe(5);
    for (const src of sources) expect(src.startsWith('data:image/jpeg;base64,')).toBe(true);
  });

  it('shows a note instead of a corrupt image, and keeps going when no image can be read', async () => {
    expect(tileOf(html, 'porosity/broken.jpg')).toContain('cannot show image');
    expect(tileOf(html, 'porosity/broken.jpg')).not.toContain('<img');
    expect(tileOf(html, 'porosity/broken.jpg')).toMatch(/<span title="[^"]+">cannot show image</);
    const failing: ThumbnailFn = () => Promise.reject(new Error('no decoder'));
    const page = await renderReplayHtml({ ...report, results: [...report.results, { ...report.results[6]!, file: 'scratches/vanished.jpg', score: 0 }] }, media, { thumbnail: failing });
    expect(page.match(/cannot show image/g)).toHaveLength(7);
    expect(tileFiles(page)[0]).toBe('scratches/vanished.jpg');
  });

  it('makes only as many thumbnails as maxMissesPerKind allows, and says where the rest are', async () => {
    let calls = 0;
    const counting: ThumbnailFn = (data, maxSide) => {
      calls++;
      return thumbnail(data, maxSide);
    };
    const page = await renderReplayHtml(report, media, { maxMissesPerKind: 2, thumbnail: counting });
    expect(calls).toBe(4);
    expect(tileFiles(page)).toEqual(['scratches/scratches_7.jpg', 'crazing/crazing_7.jpg', 'good/cast_ok_0_2985.jpeg', 'good/a&lt;b&gt;&amp;&quot;q&#39;.jpeg']);
    expect(page).toContain('Showing 2 of 3 escapes (lowest score first) and 2 of 3 overkills');
    expect(page).toContain("1 more escapes are in the JSON report's results");
  });

  it('shows every escape and pages through every overkill, without a script', async () => {
    // 30 escapes and 70 overkills of the same few images: no cap of 12 any more.
    const escapes = Array.from({ length: 30 }, (_, i) => ({ ...report.results[6]!, file: 'scratches/scratches_7.jpg', score: i / 100 }));
    const overkills = Array.from({ length: 70 }, (_, i) => ({ ...report.results[2]!, score: 0.3 + i / 200 }));
    const tiny: ThumbnailFn = (data) => thumbnail(data, 16);
    const page = await renderReplayHtml({ ...report, results: [...escapes, ...overkills] }, media, { thumbnail: tiny });
    expect(page.match(/<span class="tag escape">/g)).toHaveLength(30);
    expect(page.match(/<span class="tag overkill">/g)).toHaveLength(70);
    expect(page).toContain('Showing 30 of 30 escapes (lowest score first) and 70 of 70 overkills');
    // 24 to a page: radio buttons and a CSS rule per page, the first checked.
    expect(page.match(/<input type="radio" class="pg" name="ovk-page"/g)).toHaveLength(3);
    expect(page).toContain('<input type="radio" class="pg" name="ovk-page" id="ovk-p0" checked>');
    expect(page).toContain('#ovk-p2:checked ~ .tiles > .p2 { display: block; }');
    expect(page.match(/<figure class="tile p2">/g)).toHaveLength(70 - 48); // the escapes fill two pages only
    expect(page).not.toMatch(/<script/i);
  });
});

describe('thumbnail (plugins/preprocess-image-decode)', () => {
  const casting = path.resolve(import.meta.dirname, '../../fixtures/casting/def_front/cast_def_0_103.jpeg');

  it('downscales to the longer side, as a JPEG, and reports the source size', async () => {
    const t = await thumbnail(readFileSync(casting), 120);
    expect([t.width, t.height, t.sourceWidth, t.sourceHeight, t.mime]).toEqual([120, 120, 300, 300, 'image/jpeg']);
    expect((await sharp(t.data).metadata()).format).toBe('jpeg');
  });

  it('never enlarges a small image', async () => {
    const t = await thumbnail(readFileSync(casting), 1000);
    expect([t.width, t.height]).toEqual([300, 300]);
  });

  it('applies the EXIF orientation, like core/image-decode@1 by default', async () => {
    const rotated = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#808080' } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const t = await thumbnail(rotated, 150);
    expect([t.sourceWidth, t.sourceHeight, t.width, t.height]).toEqual([200, 300, 100, 150]);
  });

  it('reads a BMP through the pipeline\'s own decoder, in the right colours', async () => {
    const dir = path.resolve(import.meta.dirname, '../cases/bmp');
    const t = await thumbnail(readFileSync(path.join(dir, 'rgb24.bmp')), 64);
    expect([t.width, t.height]).toEqual([23, 17]);
    const got = (await sharp(t.data).stats()).channels.map((c) => c.mean);
    const want = (await sharp(path.join(dir, 'expected-rgb.png')).stats()).channels.map((c) => c.mean);
    for (let i = 0; i < 3; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(8);
  });

  it('refuses a truncated image', async () => {
    await expect(thumbnail(readFileSync(casting).subarray(0, 600), 100)).rejects.toThrow();
  });
});
