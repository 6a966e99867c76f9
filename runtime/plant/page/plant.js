// The plant page: asks GET /api/plant every few seconds with the chosen filters (kept in the URL, so
// a link opens the same view), and renders what it gets. When Redis or the server is away it says
// so and keeps the last view on screen, dimmed, with its time.
import { clock } from './format.js';
import { fillSelect, renderPlant, renderTotals } from './render.js';

const LEVELS = ['site', 'area', 'line', 'cell'];
const ALL = { site: 'All sites', area: 'All areas', line: 'All lines', cell: 'All cells' };

const $ = (id) => document.getElementById(id);
const form = $('filters');

const params = new URLSearchParams(location.search);
const state = {
  filter: Object.fromEntries(LEVELS.filter((l) => params.get(l)).map((l) => [l, params.get(l)])),
  minutes: params.get('minutes') ?? '',
  refreshMs: 5000,
  timer: undefined,
  /** generatedAt of the view on screen. */
  shownAt: undefined,
  seq: 0,
};

function query() {
  const q = new URLSearchParams();
  for (const l of LEVELS) if (state.filter[l]) q.set(l, state.filter[l]);
  if (state.minutes) q.set('minutes', state.minutes);
  return q;
}

function banner(text) {
  const b = $('banner');
  b.hidden = text === undefined;
  b.textContent = text ?? '';
  document.body.classList.toggle('away', text !== undefined);
}

function show(view) {
  state.shownAt = view.generatedAt;
  state.refreshMs = view.refreshMs ?? state.refreshMs;
  $('source').textContent = `${view.source.prefix} @ ${view.source.redis}`;
  $('status').textContent = `updated ${clock(view.generatedAt)} · every ${Math.round(state.refreshMs / 1000)} s`;
  $('status').dataset.state = 'up';
  for (const l of LEVELS) fillSelect(form.elements[l], ALL[l], view.levels[l], state.filter[l]);
  form.elements.minutes.value = String(view.window.minutes);
  renderTotals($('totals'), view);
  renderPlant($('plant'), view);
  banner(undefined);
}

function away(why) {
  $('status').dataset.state = 'away';
  $('status').textContent = state.shownAt ? `showing counts as of ${clock(state.shownAt)}` : 'no counts yet';
  banner(why);
}

async function refresh() {
  clearTimeout(state.timer);
  const seq = ++state.seq;
  try {
    const res = await fetch(`/api/plant?${query()}`, { cache: 'no-store' });
    const body = await res.json().catch(() => undefined);
    // A newer request went out meanwhile (a filter changed): its answer wins.
    if (seq !== state.seq) return;
    if (res.ok && body) show(body);
    else if (body?.redis?.state === 'refused') away(`Redis at ${body.redis.where} refuses the password: ${body.error?.message ?? ''} Correct it where the plant page gets it (LINEGATE_REDIS_URL or --redis).`);
    else if (body?.redis?.state === 'away') away(`Redis is away (${body.redis.where}): ${body.error?.code ?? ''} ${body.error?.message ?? ''}. The stations keep their results in their spools; the counts catch up when it answers.`);
    else away(`The plant page could not read the counts: ${body?.error?.code ?? res.status} ${body?.error?.message ?? res.statusText}`);
  } catch (e) {
    if (seq !== state.seq) return;
    away(`The plant page server does not answer (${e instanceof Error ? e.message : String(e)}).`);
  }
  state.timer = setTimeout(refresh, state.refreshMs);
}

function choose(level, value) {
  state.filter[level] = value || undefined;
  // A higher level chosen anew: the lower ones may not exist under it.
  for (const l of LEVELS.slice(LEVELS.indexOf(level) + 1)) state.filter[l] = undefined;
  history.replaceState(null, '', `?${query()}`);
  void refresh();
}

for (const l of LEVELS) form.elements[l].addEventListener('change', (e) => choose(l, e.target.value));
form.elements.minutes.addEventListener('change', (e) => {
  state.minutes = e.target.value;
  history.replaceState(null, '', `?${query()}`);
  void refresh();
});
$('clear').addEventListener('click', () => {
  state.filter = {};
  history.replaceState(null, '', `?${query()}`);
  void refresh();
});
form.addEventListener('submit', (e) => e.preventDefault());

void refresh();
