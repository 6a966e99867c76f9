// The station's dashboard: state from the API and its event stream, three lenses over it.
import { HttpError, getJson, routes, stored } from './api.js';
import { renderHeader } from './header.js';
import { renderIt } from './it.js';
import { renderOperator } from './operator.js';
import { renderQuality } from './quality.js';
import { Freshness, Stream } from './stream.js';
import { ago } from './format.js';

const POLL_MS = 2000;
/** The history stores a part within a few ms of its verdict; a check this long after a streamed part finds it there. */
const STORED_CHECK_MS = 200;
/** Results kept in the page, newest first. */
const KEEP = 60;
const LENSES = { operator: renderOperator, quality: renderQuality, it: renderIt };

const state = {
  station: null,
  summary: null,
  /** The deploy API's body; null when the station has none ("no model info"); undefined until known. */
  models: undefined,
  results: [],
  selected: null,
  search: { partId: '', items: null, error: null, busy: false },
  /** decidedAt of the newest part known to be in the history. */
  storedUntil: null,
};
const fresh = new Freshness();
let stream;
let lens = 'operator';
let scheduled = false;

const newestFirst = (a, b) => (a.time.decidedAt < b.time.decidedAt ? 1 : a.time.decidedAt > b.time.decidedAt ? -1 : a.resultId < b.resultId ? 1 : -1);

function merge(items) {
  const byId = new Map(state.results.map((r) => [r.resultId, r]));
  for (const r of items) byId.set(r.resultId, r);
  state.results = [...byId.values()].sort(newestFirst).slice(0, KEEP);
}

function staleAfterMs() {
  const budget = state.summary?.station.cycleBudgetMs ?? state.station?.settings?.cycleBudgetMs ?? 1000;
  // A few cycle budgets, but never less than a few polls: the poll is the heartbeat the page can see.
  return Math.max(3 * budget, 3 * POLL_MS);
}

function linkInfo() {
  const s = stream?.state ?? 'connecting';
  return { state: s, stale: fresh.stale(s, staleAfterMs()), lastContact: fresh.lastContact, lastResult: fresh.lastResult };
}

function render() {
  scheduled = false;
  renderHeader(state, linkInfo());
  LENSES[lens](document.getElementById(`lens-${lens}`), state, actions);
}

function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(render);
}

function notice(text) {
  const el = document.getElementById('notice');
  el.hidden = text === null;
  el.textContent = text ?? '';
}

function failed(e) {
  if (e instanceof HttpError && e.status === 401) notice('This station needs a token to read its data (api.auth: all): the dashboard cannot show it.');
  else if (e instanceof HttpError) notice(`The station answered ${e.status}: ${e.message}`);
  // Network errors: the stream's state says it (reconnecting), no notice needed.
}

async function poll() {
  if (stream?.state !== 'live') return;
  try {
    state.summary = await getJson('/api/summary');
    fresh.touch();
    schedule();
  } catch (e) {
    failed(e);
  }
}

let storedCheck = null;

/**
 * Soon after a streamed part, asks the history for its newest part (one record): parts up to it are
 * stored, and their images can be asked for without a 404.
 */
function checkStored() {
  storedCheck ??= setTimeout(async () => {
    try {
      const page = await getJson('/api/results?limit=1');
      const newest = page.items[0]?.time.decidedAt;
      if (newest !== undefined && (state.storedUntil === null || newest > state.storedUntil)) state.storedUntil = newest;
      schedule();
    } catch {
      // the poll and the stream say when the station is away
    } finally {
      storedCheck = null;
    }
    // A part that came in while this check ran waits for the next one, not for the next part.
    if (stream?.state === 'live' && state.results[0] !== undefined && !stored(state.results[0], state)) checkStored();
  }, STORED_CHECK_MS);
}

/** After every (re)connect: who the station is, what it offers, its last results. */
async function refill() {
  try {
    const [station, paths] = await Promise.all([getJson('/api/station'), routes()]);
    // Another station now answers at this address: what the page holds is not its data.
    if (state.station !== null && state.station.id !== station.id) state.results = [];
    state.station = station;
    state.models = paths.has('/api/models') ? await getJson('/api/models').catch(() => null) : null;
    const page = await getJson(`/api/results?limit=${KEEP}`);
    merge(page.items.map((r) => ({ ...r, stored: true })));
    fresh.touch();
    notice(null);
    await poll();
    schedule();
  } catch (e) {
    failed(e);
  }
}

const actions = {
  /** Shows a part in the quality lens's overlay. */
  inspect(resultId, switchLens = true) {
    state.selected = resultId;
    if (switchLens) show('quality');
    schedule();
  },
  async search(partId) {
    if (partId === '') return;
    state.search = { partId, items: null, error: null, busy: true };
    schedule();
    try {
      const page = await getJson(`/api/results?partId=${encodeURIComponent(partId)}&limit=50`);
      state.search = { partId, items: page.items.map((r) => ({ ...r, stored: true })), error: null, busy: false };
    } catch (e) {
      state.search = { partId, items: null, error: e.message, busy: false };
    }
    schedule();
  },
};

function show(name) {
  if (!(name in LENSES)) name = 'operator';
  lens = name;
  for (const key of Object.keys(LENSES)) {
    document.getElementById(`lens-${key}`).hidden = key !== name;
    const tab = document.getElementById(`tab-${key}`);
    tab.setAttribute('aria-selected', String(key === name));
  }
  document.body.dataset.lens = name;
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
  schedule();
}

function start() {
  for (const tab of document.querySelectorAll('[role="tab"]')) tab.addEventListener('click', () => show(tab.dataset.lens));
  addEventListener('hashchange', () => show(location.hash.slice(1)));
  show(location.hash.slice(1));
  stream = new Stream('/api/events', {
    open: refill,
    state: schedule,
    result(r) {
      fresh.result();
      merge([r]);
      checkStored();
      schedule();
    },
    model(body) {
      state.models = body;
      fresh.touch();
      schedule();
    },
    // The station's heartbeat: a quiet line is not stale data.
    heartbeat() {
      fresh.touch();
    },
  }).start();
  setInterval(poll, POLL_MS);
  // Once a second: the stale flag and the "s ago" texts move with the clock, not only with data.
  setInterval(() => {
    renderHeader(state, linkInfo());
    for (const el of document.querySelectorAll('.ago[data-at]')) el.textContent = ago(el.dataset.at);
  }, 1000);
}

start();
