// Builds the plant page's DOM from GET /api/plant. Text goes in through textContent only: station
// names and reason codes come from station files and results, never markup.
import { HEALTH_TEXT, ago, percent, rate } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';

/** An element with a class, attributes and children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return e;
}

function metric(label, value, cls) {
  return el('div', { class: `metric${cls ? ` ${cls}` : ''}` }, el('span', { class: 'value' }, value), el('span', { class: 'label' }, label));
}

/** Parts per minute of the window as bars: the shape of the shift at a glance. */
function sparkline(perMinute) {
  const w = 120;
  const h = 28;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `parts per minute over the last ${perMinute.length} minutes`);
  const max = Math.max(1, ...perMinute);
  const bw = w / Math.max(1, perMinute.length);
  perMinute.forEach((n, i) => {
    if (n === 0) return;
    const r = document.createElementNS(SVG, 'rect');
    const bh = Math.max(1, (n / max) * h);
    r.setAttribute('x', (i * bw).toFixed(2));
    r.setAttribute('y', (h - bh).toFixed(2));
    r.setAttribute('width', Math.max(0.5, bw - 0.3).toFixed(2));
    r.setAttribute('height', bh.toFixed(2));
    svg.append(r);
  });
  return svg;
}

function rejects(s) {
  if (s.topRejectCodes.length === 0) return el('p', { class: 'none' }, s.verdicts.fail + s.verdicts.error === 0 ? 'no rejects' : 'reject codes not counted');
  return el(
    'ol',
    { class: 'rejects', 'aria-label': 'top reject codes' },
    s.topRejectCodes.map((r) =>
      el('li', { 'data-code': r.code }, el('span', { class: 'code' }, String(r.code)), el('span', { class: 'name' }, r.name ?? ''), el('span', { class: 'count' }, `${r.count} · ${percent(r.share)}`)),
    ),
  );
}

function labels(s) {
  if (s.topLabels.length === 0) return null;
  return el(
    'p',
    { class: 'labels' },
    s.topLabels.map((l) => el('span', { class: 'label-chip' }, `${l.label} ${l.count}`)),
  );
}

export function stationCard(s) {
  const h = s.health.state;
  return el(
    'article',
    { class: `station ${h}`, 'data-station': s.station, 'data-health': h },
    el('header', {}, el('h5', {}, s.station), el('span', { class: `badge ${h}`, title: s.health.why }, HEALTH_TEXT[h] ?? h)),
    el('p', { class: 'why' }, s.health.why),
    el(
      'div',
      { class: 'metrics' },
      metric('yield', percent(s.yield), 'yield'),
      metric('parts/min', rate(s.throughputPerMin)),
      metric('parts', String(s.parts)),
      metric('fail', String(s.verdicts.fail), s.verdicts.fail > 0 ? 'fail' : ''),
      metric('error', String(s.verdicts.error), s.verdicts.error > 0 ? 'error' : ''),
    ),
    sparkline(s.partsPerMinute),
    rejects(s),
    labels(s),
    el('p', { class: 'last' }, `last result ${ago(s.lastAgeS)}${s.lastVerdict ? ` (${s.lastVerdict})` : ''}`),
  );
}

function yieldOf(stations) {
  let pass = 0;
  let parts = 0;
  for (const s of stations) {
    pass += s.verdicts.pass;
    parts += s.parts;
  }
  return parts === 0 ? null : pass / parts;
}

function lineSection(site, area, line) {
  const stations = line.cells.flatMap((c) => c.stations);
  return el(
    'section',
    { class: 'line', 'data-site': site, 'data-area': area, 'data-line': line.line },
    el('h4', {}, `Line ${line.line}`, el('span', { class: 'sub' }, `${stations.length} station${stations.length === 1 ? '' : 's'} · yield ${percent(yieldOf(stations))}`)),
    el(
      'div',
      { class: 'cells' },
      line.cells.map((c) => el('div', { class: 'cell', 'data-cell': c.cell }, el('h6', {}, `Cell ${c.cell}`), c.stations.map(stationCard))),
    ),
  );
}

/** The stations, grouped site > area > line > cell; those without a place in the plant last. */
export function renderPlant(root, view) {
  const parts = view.sites.map((site) =>
    el(
      'section',
      { class: 'site', 'data-site': site.site },
      el('h2', {}, site.site),
      site.areas.map((area) => el('section', { class: 'area', 'data-area': area.area }, el('h3', {}, area.area), area.lines.map((l) => lineSection(site.site, area.area, l)))),
    ),
  );
  if (view.unplaced.length > 0) {
    parts.push(
      el(
        'section',
        { class: 'site unplaced' },
        el('h2', {}, 'Not placed in the plant'),
        el('p', { class: 'hint' }, 'These stations name no station.hierarchy (site, area, line, cell) in their station file.'),
        el('div', { class: 'cells' }, el('div', { class: 'cell' }, view.unplaced.map(stationCard))),
      ),
    );
  }
  if (parts.length === 0) parts.push(el('p', { class: 'empty' }, Object.keys(view.filter).length > 0 ? 'No station matches the filter.' : 'No station has been counted yet: is `linegate worker stats` running on this Redis and prefix?'));
  root.replaceChildren(...parts);
}

export function renderTotals(root, view) {
  const t = view.totals;
  root.replaceChildren(
    metric('stations', String(t.stations)),
    metric(`yield (${view.window.minutes} min)`, percent(t.yield), 'yield'),
    metric(`parts (${view.window.minutes} min)`, String(t.parts)),
    metric(`parts/min (last ${view.window.recentMinutes} min)`, rate(t.throughputPerMin)),
    metric('ok', String(t.health.ok), 'ok'),
    metric('stale', String(t.health.stale), t.health.stale > 0 ? 'stale' : ''),
    metric('errors', String(t.health.errors), t.health.errors > 0 ? 'errors' : ''),
  );
}

/** One select's options: "all", then every name the level can take (the chosen one kept even if it vanished). */
export function fillSelect(select, all, names, chosen) {
  const list = chosen && !names.includes(chosen) ? [...names, chosen] : names;
  select.replaceChildren(el('option', { value: '' }, all), ...list.map((n) => el('option', { value: n, selected: n === chosen }, n)));
  select.value = chosen ?? '';
}
