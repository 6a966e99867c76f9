// Operator lens: the last part's verdict, big; the PLC link and "ready"; the last parts with thumbnails.
import { hasImage, imageUrl, stored } from './api.js';
import { card, fill, h } from './dom.js';
import { ago, ms, modelName, verdictLabel } from './format.js';

export const THUMBS = 12;

/** Thumbnails kept by result id: a re-render moves them, it does not load their images again. */
const thumbs = new Map();

export function renderOperator(root, state, actions) {
  const last = state.results[0];
  const ready = state.summary?.ready;
  fill(
    root,
    h('h2', { class: 'lens-title' }, 'Operator'),
    h('div', { class: 'operator-top' }, verdictPanel(last), statusPanel(ready, state)),
    card(`Last ${THUMBS} parts`, thumbStrip(state.results.slice(0, THUMBS), state, actions)),
  );
}

function verdictPanel(r) {
  if (r === undefined) return h('div', { id: 'verdict', class: 'verdict none', dataset: { verdict: 'none' } }, h('div', { class: 'word' }, 'waiting for a part'));
  const reason = r.reasons[0];
  return h(
    'div',
    { id: 'verdict', class: `verdict ${r.verdict}`, dataset: { verdict: r.verdict, result: r.resultId } },
    h('div', { class: 'word' }, verdictLabel(r.verdict)),
    h('div', { class: 'part' }, 'part ', h('strong', { class: 'part-id' }, r.partId)),
    r.verdict === 'pass' ? null : h('div', { class: 'reason' }, `reject code ${r.rejectCode}`, reason ? ` · ${reason.code}: ${reason.message}` : ''),
    h('div', { class: 'meta' }, h('span', { class: 'part-model' }, modelName(r.model)), ` · ${ms(r.timings.totalMs)} · `, h('span', { class: 'ago', dataset: { at: r.time.decidedAt } }, ago(r.time.decidedAt))),
  );
}

/** The PLC steps: those whose health says `link`. */
export function plcLinks(ready) {
  return Object.entries(ready?.steps ?? {}).filter(([, hl]) => hl.data?.link === 'up' || hl.data?.link === 'down');
}

function statusPanel(ready, state) {
  const plcs = plcLinks(ready);
  const items = [];
  if (ready === undefined) items.push(h('li', { class: 'status unknown' }, '? station state unknown'));
  else {
    items.push(h('li', { id: 'ready', class: `status ${ready.ready ? 'ok' : 'bad'}`, dataset: { ready: String(ready.ready) } }, ready.ready ? '✓ READY' : '✗ NOT READY', h('small', null, ` ${ready.state} · health ${ready.status}`)));
    if (plcs.length === 0) items.push(h('li', { id: 'plc', class: 'status unknown' }, '– no PLC link on this station'));
    for (const [step, hl] of plcs) {
      const up = hl.data.link === 'up';
      items.push(h('li', { id: 'plc', class: `status ${up ? 'ok' : 'bad'}`, dataset: { link: hl.data.link } }, up ? '✓ PLC link up' : '✗ PLC link DOWN', h('small', null, ` ${step} · ${hl.detail}`)));
    }
  }
  const total = state.summary?.yield;
  if (total) items.push(h('li', { class: 'status plain' }, `yield ${total.rate === null ? 'n/a' : `${(total.rate * 100).toFixed(1)} %`}`, h('small', null, ` ${total.pass + total.fail + total.error} parts this hour`)));
  return h('ul', { class: 'status-list' }, items);
}

function thumbStrip(results, state, actions) {
  const keep = new Set(results.map((r) => key(r, state)));
  for (const k of thumbs.keys()) if (!keep.has(k)) thumbs.delete(k);
  if (results.length === 0) return h('p', { class: 'empty' }, 'no parts yet');
  return h(
    'div',
    { class: 'thumbs' },
    results.map((r) => {
      const k = key(r, state);
      if (!thumbs.has(k)) thumbs.set(k, thumb(r, state, actions));
      return thumbs.get(k);
    }),
  );
}

/** A thumbnail is made again once its part is stored: then its image can be asked for. */
const key = (r, state) => `${r.resultId}${stored(r, state) ? '' : ':pending'}`;

function thumb(r, state, actions) {
  const pic = !hasImage(r)
    ? h('div', { class: 'noimg' }, 'no image')
    : !stored(r, state)
      ? h('div', { class: 'noimg' }, 'image…')
      : h('img', { src: imageUrl(r), alt: `part ${r.partId}, ${r.verdict}`, loading: 'lazy', width: 120, height: 120, onerror: (e) => e.target.replaceWith(h('div', { class: 'noimg' }, 'image not kept')) });
  return h(
    'figure',
    { class: `thumb ${r.verdict}`, dataset: { result: r.resultId, verdict: r.verdict }, title: `${r.partId} · ${modelName(r.model)} · open in the quality lens`, tabindex: 0, onclick: () => actions.inspect(r.resultId), onkeydown: (e) => e.key === 'Enter' && actions.inspect(r.resultId) },
    pic,
    h('figcaption', null, h('span', { class: 'tag' }, verdictLabel(r.verdict)), h('span', { class: 'pid' }, r.partId)),
  );
}
