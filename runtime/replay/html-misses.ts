import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { messageOf } from '../errors.js';
import { goodBy } from './metrics.js';
import { esc, num } from './html-text.js';
import type { ReplayMedia, ReplayReport, ReplayRow, TruthBox } from './report.js';

/** Downscales an encoded image; plain types so runtime/ never sees the image library behind it. */
export type ThumbnailFn = (
  data: Uint8Array,
  maxSide: number,
) => Promise<{ data: Uint8Array; mime: string; width: number; height: number; sourceWidth: number; sourceHeight: number }>;

export const PREDICTED_COLOUR = '#ff8c00';
export const TRUTH_COLOUR = '#00c8ff';
const THUMB_SIDE = 360;

export interface Miss {
  readonly row: ReplayRow;
  readonly kind: 'escape' | 'overkill';
}

/**
 * The misses worth looking at first: escapes (a defective part passed) from
 * the lowest score up, the ones the model is most sure are good; then
 * overkills (a good part rejected) from the highest score down.
 */
export function worstMisses(report: ReplayReport): { escapes: Miss[]; overkills: Miss[] } {
  const isGoodTruth = goodBy(report.good);
  const byName = (a: ReplayRow, b: ReplayRow): number => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0);
  const escapes = report.results
    .filter((r) => !isGoodTruth(r.truth) && r.verdict === 'pass')
    .sort((a, b) => a.score - b.score || byName(a, b))
    .map((row): Miss => ({ row, kind: 'escape' }));
  const overkills = report.results
    .filter((r) => isGoodTruth(r.truth) && r.verdict !== 'pass')
    .sort((a, b) => b.score - a.score || byName(a, b))
    .map((row): Miss => ({ row, kind: 'overkill' }));
  return { escapes, overkills };
}

/** Tiles per page of a gallery: a screenful of thumbnails. */
export const PAGE_SIZE = 24;

/**
 * Every escape, then every overkill, each gallery paged by PAGE_SIZE with
 * radio buttons and CSS (no script: the file must open in a mail client's
 * viewer too). Each gallery embeds at most `maxPerKind` thumbnails, which
 * bounds the file (a 360 px JPEG is 10-40 kB); the note says when more were
 * left to the JSON report. Returns the page-switching CSS with the section.
 */
export async function missesSection(
  report: ReplayReport,
  media: ReplayMedia,
  maxPerKind: number,
  thumbnail: () => Promise<ThumbnailFn>,
): Promise<{ html: string; css: string }> {
  const { escapes, overkills } = worstMisses(report);
  const cap = Math.max(0, maxPerKind);
  const shownEscapes = escapes.slice(0, cap);
  const shownOverkills = overkills.slice(0, cap);
  const left = (shown: number, all: number, what: string): string => (shown < all ? ` ${all - shown} more ${what} are in the JSON report's results, not here.` : '');
  const heading = `<h2>Misses</h2>
<p class="note">Showing ${shownEscapes.length} of ${escapes.length} escapes (lowest score first) and ${shownOverkills.length} of ${overkills.length} overkills (highest score first), ${PAGE_SIZE} to a page.${left(shownEscapes.length, escapes.length, 'escapes')}${left(shownOverkills.length, overkills.length, 'overkills')}
Boxes: <span class="key" style="border-color:${PREDICTED_COLOUR}"></span> predicted, <span class="key dashed" style="border-color:${TRUTH_COLOUR}"></span> truth.</p>`;
  if (escapes.length + overkills.length === 0) return { html: `${heading}\n<p>No escapes and no overkills.</p>`, css: '' };
  if (shownEscapes.length + shownOverkills.length === 0) return { html: heading, css: '' };
  const make = await thumbnail();
  const css: string[] = [];
  const galleries: string[] = [];
  for (const [id, title, shown] of [
    ['esc', 'Escapes', shownEscapes],
    ['ovk', 'Overkills', shownOverkills],
  ] as const) {
    if (shown.length === 0) continue;
    const tiles: string[] = [];
    // One at a time: a 5 MP decode is memory-hungry and the line machine has other work.
    for (const [i, miss] of shown.entries()) tiles.push(await tile(miss, media, make, Math.floor(i / PAGE_SIZE)));
    const pages = Math.ceil(shown.length / PAGE_SIZE);
    galleries.push(gallery(id, `${title} (${shown.length})`, tiles, pages));
    if (pages > 1) css.push(pageCss(id, pages));
  }
  return { html: `${heading}\n${galleries.join('\n')}`, css: css.join('\n') };
}

/** A gallery; with more than one page, a radio button per page (before the tiles, so CSS can select them) and their labels. */
function gallery(id: string, title: string, tiles: readonly string[], pages: number): string {
  const head = `<h3 id="${id}">${esc(title)}</h3>`;
  if (pages <= 1) return `${head}\n<div class="tiles">\n${tiles.join('\n')}\n</div>`;
  const radios = Array.from({ length: pages }, (_, p) => `<input type="radio" class="pg" name="${id}-page" id="${id}-p${p}"${p === 0 ? ' checked' : ''}>`).join('');
  const labels = Array.from({ length: pages }, (_, p) => `<label for="${id}-p${p}">${p + 1}</label>`).join('');
  return `${head}\n<div class="pager">${radios}\n<nav class="pages">page ${labels}</nav>\n<div class="tiles">\n${tiles.join('\n')}\n</div>\n</div>`;
}

function pageCss(id: string, pages: number): string {
  const rules: string[] = [];
  for (let p = 0; p < pages; p++) {
    rules.push(`#${id}-p${p}:checked ~ .tiles > .p${p} { display: block; }`);
    rules.push(`#${id}-p${p}:checked ~ .pages label[for="${id}-p${p}"] { background: var(--ink); color: #fff; }`);
  }
  return rules.join('\n');
}

async function tile(miss: Miss, media: ReplayMedia, make: ThumbnailFn, page: number): Promise<string> {
  const { row } = miss;
  const caption = `<figcaption><div class="file" title="${esc(row.file)}">${esc(row.file)}</div>
<div><span class="tag ${miss.kind}">${miss.kind}</span> truth <b>${esc(row.truth)}</b>, verdict <b>${esc(row.verdict)}</b>, score <b>${num(row.score)}</b></div></figcaption>`;
  let picture: string;
  try {
    const thumb = await make(await readFile(path.resolve(media.dir, row.file)), THUMB_SIDE);
    const size = media.sizes.get(row.file) ?? { width: thumb.sourceWidth, height: thumb.sourceHeight };
    const src = `data:${thumb.mime};base64,${Buffer.from(thumb.data).toString('base64')}`;
    picture = `<div class="pic" style="aspect-ratio:${thumb.width}/${thumb.height}">
<img src="${src}" width="${thumb.width}" height="${thumb.height}" alt="${esc(row.file)}">
${overlay(row, media.truths.get(row.file) ?? [], size)}
</div>`;
  } catch (e) {
    // A corrupt or vanished image is itself a finding; the report goes on without it, the reason in a tooltip.
    picture = `<div class="pic broken"><span title="${esc(messageOf(e))}">cannot show image</span></div>`;
  }
  return `<figure class="tile p${page}">\n${picture}\n${caption}\n</figure>`;
}

function overlay(row: ReplayRow, truths: readonly TruthBox[], size: { readonly width: number; readonly height: number }): string {
  // Label sizes are in source pixels (the viewBox), so scale them with the image.
  const font = Math.max(size.width, size.height) * 0.045;
  // Text is outlined in black (paint-order) so it stays readable on bright and dark parts alike.
  const text = (x: number, y: number, body: string, colour: string): string =>
    `<text x="${r(x)}" y="${r(y)}" font-size="${r(font)}" stroke-width="${r(font * 0.16)}" fill="${colour}">${esc(body)}</text>`;
  const shapes: string[] = [];
  for (const t of truths) {
    shapes.push(`<rect class="truth" x="${r(t.x)}" y="${r(t.y)}" width="${r(t.w)}" height="${r(t.h)}" stroke="${TRUTH_COLOUR}"/>`);
    // Inside the bottom edge: the predicted label sits at the top, so the two rarely collide.
    shapes.push(text(t.x + font * 0.25, t.y + t.h - font * 0.35, t.label, TRUTH_COLOUR));
  }
  for (const d of row.defects) {
    // A segmentation defect has its box on the region.
    const b = d.box ?? d.region?.box;
    if (b === undefined) continue;
    shapes.push(`<rect class="pred" x="${r(b.x)}" y="${r(b.y)}" width="${r(b.w)}" height="${r(b.h)}" stroke="${PREDICTED_COLOUR}"/>`);
    // Above the box, or just inside it when the box touches the top of the image.
    const y = b.y - font * 0.3 < font ? b.y + font * 1.05 : b.y - font * 0.3;
    shapes.push(text(b.x + font * 0.25, y, `${d.label} ${num(d.score, 2)}`, PREDICTED_COLOUR));
  }
  if (shapes.length === 0) return '';
  return `<svg class="overlay" viewBox="0 0 ${size.width} ${size.height}" preserveAspectRatio="none">${shapes.join('')}</svg>`;
}

const r = (v: number): string => (Math.round(v * 10) / 10).toString();
