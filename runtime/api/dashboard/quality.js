// Quality lens: yield over time, the reject Pareto, a defect overlay, thresholds, model and shadow,
// and the history search by part id.
import { hasImage, imageUrl, stored } from './api.js';
import { paretoChart, yieldChart } from './charts.js';
import { card, facts, fill, h } from './dom.js';
import { ago, clock, modelName, pct, verdictLabel } from './format.js';

let slots = null;
/** The overlay image kept while the same part is shown: a re-render does not draw it again. */
let overlay = { id: null, el: null, at: 0 };

/** The lens's cards, made once: the search form keeps its text and focus across re-renders. */
function layout(root, actions) {
  const input = h('input', { id: 'part-search', type: 'search', name: 'partId', placeholder: 'part id', required: true, maxlength: 200, autocomplete: 'off', 'aria-label': 'part id' });
  const form = h('form', { class: 'search', role: 'search', onsubmit: (e) => (e.preventDefault(), actions.search(input.value.trim())) }, input, h('button', { type: 'submit' }, 'Search'));
  slots = { yield: h('div'), pareto: h('div', { class: 'pareto' }), overlay: h('div', { id: 'overlay' }), thresholds: h('div'), model: h('div', { id: 'model-card' }), found: h('div', { id: 'search-results' }) };
  fill(
    root,
    h('h2', { class: 'lens-title' }, 'Quality'),
    h(
      'div',
      { class: 'grid' },
      card('Yield over time', slots.yield),
      card('Reject Pareto', slots.pareto),
      card('Defect overlay', slots.overlay),
      card('Model and shadow', slots.model),
      card('Threshold per label', slots.thresholds),
      card('History by part id', form, slots.found),
    ),
  );
}

export function renderQuality(root, state, actions) {
  if (slots === null || !root.contains(slots.yield)) layout(root, actions);
  const sum = state.summary;
  fill(slots.yield, sum ? yieldBlock(sum) : h('p', { class: 'empty' }, 'loading…'));
  fill(slots.pareto, sum ? paretoBlock(sum) : null);
  fill(slots.overlay, overlayBlock(pickShown(state), state));
  fill(slots.thresholds, thresholdsBlock(state));
  fill(slots.model, modelBlock(state));
  fill(slots.found, searchBlock(state.search, actions));
}

function yieldBlock(sum) {
  const y = sum.yield;
  const parts = y.pass + y.fail + y.error;
  return [
    h('p', { class: 'big-number' }, h('strong', { id: 'yield-rate' }, pct(y.rate)), ` yield · ${parts} parts since ${clock(sum.window.since)}`, sum.window.capped ? ' (the oldest left out)' : ''),
    h('p', { class: 'legend' }, h('span', { class: 'key pass' }, '✓ pass'), h('span', { class: 'key fail' }, '✗ fail'), h('span', { class: 'key error' }, '⚠ error'), ` · buckets of ${y.bucketS} s`),
    yieldChart(y.buckets),
  ];
}

function paretoBlock(sum) {
  const { byCode, byLabel } = sum.pareto;
  if (byCode.length === 0) return h('p', { class: 'empty' }, 'no rejects this hour');
  return [
    h('h4', null, 'by reject code'),
    paretoChart(byCode, (i) => `${i.rejectCode} · ${i.code}`, 'rejected parts by reject code'),
    byLabel.length > 0 ? [h('h4', null, 'by defect label'), paretoChart(byLabel, (i) => i.label, 'rejected parts by defect label')] : null,
  ];
}

/** Following the newest reject, a shown overlay stays this long: each one is drawn by the station, on its CPU. */
const FOLLOW_MS = 5000;

/** The part picked in a lens, else the newest reject (at most one new one per FOLLOW_MS), else the newest part. */
function pickShown(state) {
  const all = [...state.results, ...(state.search.items ?? [])];
  const picked = all.find((r) => r.resultId === state.selected);
  if (picked) return picked;
  const current = overlay.id === null ? undefined : all.find((r) => r.resultId === overlay.id);
  if (current && Date.now() - overlay.at < FOLLOW_MS) return current;
  return state.results.find((r) => r.verdict !== 'pass') ?? state.results[0];
}

function overlayBlock(r, state) {
  if (r === undefined) return h('p', { class: 'empty' }, 'no part yet');
  if (!stored(r, state)) overlay = { id: null, el: h('div', { class: 'noimg' }, 'image…'), at: 0 };
  else if (overlay.id !== r.resultId) {
    overlay = {
      id: r.resultId,
      at: Date.now(),
      el: hasImage(r)
        ? h('img', { class: 'overlay-img', src: imageUrl(r, true), alt: `part ${r.partId} with its defects drawn`, onerror: (e) => e.target.replaceWith(h('div', { class: 'noimg' }, 'image not kept')) })
        : h('div', { class: 'noimg' }, 'no image kept for this part'),
    };
  }
  const rows = r.defects.map((d) => {
    const t = r.thresholds?.[d.label];
    return h('tr', null, h('td', null, d.label), h('td', null, d.score.toFixed(3)), h('td', null, t === undefined ? '–' : t.toFixed(3)), h('td', null, d.rule ? `✗ fired (${d.rule})` : t !== undefined && d.score >= t ? '≥ threshold' : '–'));
  });
  return [
    h('div', { class: 'overlay-wrap' }, overlay.el),
    h('p', null, h('span', { class: `tag ${r.verdict}` }, verdictLabel(r.verdict)), ` part ${r.partId} · `, h('span', { class: 'part-model' }, modelName(r.model)), ` · ${ago(r.time.decidedAt)}`),
    rows.length === 0 ? h('p', { class: 'empty' }, 'no defects') : h('table', null, h('thead', null, h('tr', null, h('th', null, 'label'), h('th', null, 'score'), h('th', null, 'threshold'), h('th', null, ''))), h('tbody', null, rows)),
    h('p', { class: 'hint' }, 'Pick a part in the operator lens or in the search below to see it here.'),
  ];
}

function thresholdsBlock(state) {
  const values = state.models?.thresholds ?? state.summary?.thresholds ?? {};
  const entries = Object.entries(values);
  if (entries.length === 0) return h('p', { class: 'empty' }, 'no thresholds reported yet');
  return h('table', { id: 'thresholds' }, h('thead', null, h('tr', null, h('th', null, 'label'), h('th', null, 'threshold'))), h('tbody', null, entries.map(([k, v]) => h('tr', null, h('td', null, k), h('td', null, v.toFixed(4))))));
}

function modelBlock(state) {
  const m = state.models;
  const planned = (state.station?.models ?? []).map((x) => `${x.step}: ${x.name}@${x.version}`).join(', ') || 'none';
  if (m === undefined) return h('p', { class: 'empty' }, 'loading…');
  if (m === null) return [h('p', { class: 'empty', id: 'no-model-info' }, 'no model info (this station has no deploy API)'), facts([['loaded at start', planned]])];
  const a = m.active;
  const shadow = m.shadow ?? { state: 'off' };
  return [
    facts([
      ['in use', a ? `${a.name}@${a.version}` : 'none'],
      a && ['activated', `${ago(a.activatedAt)} by ${a.by} (${a.action}, step ${a.step})`],
      a && ['sha256', a.sha256.slice(0, 12)],
      ['rollback', m.canRollback ? 'possible' : 'no earlier version'],
      ['shadow', shadow.state === 'running' ? `${modelName(shadow.model)} since ${clock(shadow.since)} · ${shadow.frames} frames, ${shadow.skipped} skipped` : 'off'],
      shadow.state === 'running' && ['agreement', `${pct(shadow.agreement.rate)} (${shadow.agreement.agree} of ${shadow.agreement.total})`],
    ]),
    shadow.state === 'running' && Object.keys(shadow.agreement.byClass).length > 0
      ? h('table', null, h('thead', null, h('tr', null, h('th', null, 'class'), h('th', null, 'agree'), h('th', null, 'of'))), h('tbody', null, Object.entries(shadow.agreement.byClass).map(([k, v]) => h('tr', null, h('td', null, k), h('td', null, String(v.agree)), h('td', null, String(v.total))))))
      : null,
    m.history.length > 0 ? [h('h4', null, 'deployments'), h('ol', { class: 'deployments' }, m.history.slice(0, 6).map((d) => h('li', null, `${d.name}@${d.version} · ${d.action} by ${d.by} · ${ago(d.activatedAt)}`)))] : null,
  ];
}

function searchBlock(search, actions) {
  if (search.busy) return h('p', { class: 'empty' }, 'searching…');
  if (search.error) return h('p', { class: 'error-text' }, `✗ ${search.error}`);
  if (search.items === null) return null;
  if (search.items.length === 0) return h('p', { class: 'empty' }, `no result for part ${search.partId}`);
  return h(
    'ul',
    { class: 'found' },
    search.items.map((r) => h('li', null, h('button', { type: 'button', class: `linklike ${r.verdict}`, dataset: { result: r.resultId }, onclick: () => actions.inspect(r.resultId, false) }, `${verdictLabel(r.verdict)} ${r.partId}`), ` ${clock(r.time.decidedAt)} · code ${r.rejectCode} · ${modelName(r.model)}`)),
  );
}
