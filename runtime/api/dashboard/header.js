// The header every lens shows: station id (and its place in the plant), the model in use, and
// whether the data is live or stale.
import { fill } from './dom.js';
import { ago, hierarchyText, modelName } from './format.js';

/** The model in use: the deploy API's active one, else what the station loaded at start. */
export function modelInUse(state) {
  const active = state.models?.active;
  if (active) return modelName(active);
  const loaded = state.station?.models ?? state.summary?.ready.models ?? [];
  if (loaded.length === 0) return state.station ? 'no model' : '…';
  return loaded.map((m) => (loaded.length > 1 ? `${m.step}: ${modelName(m)}` : modelName(m))).join(', ');
}

export function renderHeader(state, link) {
  const st = state.summary?.station ?? state.station?.settings;
  const id = state.station?.id ?? st?.id;
  const station = document.getElementById('station');
  fill(station, id ? `station ${id}` : 'station …', st?.name ? ` · ${st.name}` : '', st?.line ? ` · line ${st.line}` : '');
  const hr = hierarchyText(state.summary?.station.hierarchy ?? state.results[0]?.station.hierarchy);
  const hierarchy = document.getElementById('hierarchy');
  hierarchy.hidden = hr === '';
  fill(hierarchy, hr);
  fill(document.getElementById('model'), modelInUse(state));
  const el = document.getElementById('link');
  el.dataset.state = link.state;
  el.dataset.stale = String(link.stale);
  const since = link.lastContact === 0 ? 'no data yet' : `last data ${ago(link.lastContact)}`;
  let text;
  if (link.state === 'down') text = `✗ STALE · station unreachable, reconnecting (${since})`;
  else if (link.state === 'connecting') text = `⚠ STALE · connecting to the station (${since})`;
  else if (link.stale) text = `⚠ STALE · ${since}`;
  else text = `● LIVE · ${link.lastResult === 0 ? 'no part yet' : `last part ${ago(link.lastResult)}`}`;
  fill(el, text);
  document.body.classList.toggle('stale', link.stale);
}
