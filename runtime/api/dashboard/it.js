// IT lens: cycle time against the budget, drops, lane and spool depth, PLC reconnects, memory.
import { latencyChart } from './charts.js';
import { card, facts, fill, h } from './dom.js';
import { bytes, ms, pct } from './format.js';
import { plcLinks } from './operator.js';

const STATUS_MARK = { ok: '✓', degraded: '⚠', down: '✗' };

export function renderIt(root, state) {
  const sum = state.summary;
  if (!sum) return fill(root, h('h2', { class: 'lens-title' }, 'IT'), h('p', { class: 'empty' }, 'loading…'));
  const ready = sum.ready;
  fill(
    root,
    h('h2', { class: 'lens-title' }, 'IT'),
    h('div', { class: 'grid' }, latencyCard(sum), framesCard(ready), queuesCard(sum), plcCard(ready), processCard(sum), stepsCard(ready)),
  );
}

function latencyCard(sum) {
  const l = sum.latency;
  const n = l.bins.reduce((a, b) => a + b.count, 0);
  return card(
    'Cycle time against the budget',
    h('div', { id: 'latency' }, latencyChart(l)),
    facts([
      ['p50 / p95 / max', `${ms(l.p50Ms)} / ${ms(l.p95Ms)} / ${ms(l.maxMs)}`],
      ['over the budget', `${l.overBudget} of ${n} parts (${pct(n === 0 ? null : l.overBudget / n)})`],
    ]),
  );
}

function framesCard(ready) {
  const d = ready.frames.data ?? {};
  return card(
    'Frames',
    facts([
      ['health', `${STATUS_MARK[ready.frames.status] ?? '?'} ${ready.frames.status}: ${ready.frames.detail}`],
      ['arrived', String(d.arrived ?? 0)],
      ['in flight / queued', `${d.inFlight ?? 0} / ${d.queued ?? 0}`],
      ['dropped', h('span', { id: 'drops' }, `${d.dropped ?? 0}${d.dropRate ? ` (${d.dropRate}/s now)` : ''}`)],
    ]),
  );
}

function queuesCard(sum) {
  const lanes = Object.entries(sum.lanes);
  const spools = Object.entries(sum.ready.steps).filter(([, hl]) => typeof hl.data?.pendingBytes === 'number');
  return card(
    'Queues and spool',
    lanes.length === 0 ? h('p', { class: 'empty' }, 'no background sink') : h('table', { id: 'lanes' }, h('thead', null, h('tr', null, h('th', null, 'sink lane'), h('th', null, 'waiting'))), h('tbody', null, lanes.map(([k, v]) => h('tr', null, h('td', null, k), h('td', null, String(v)))))),
    spools.length === 0
      ? null
      : h(
          'table',
          { id: 'spools' },
          h('thead', null, h('tr', null, h('th', null, 'queue'), h('th', null, 'Redis'), h('th', null, 'spooled'), h('th', null, 'oldest'))),
          h('tbody', null, spools.map(([k, hl]) => h('tr', null, h('td', null, k), h('td', null, `${STATUS_MARK[hl.status] ?? ''} ${hl.data.state ?? ''}`), h('td', null, bytes(hl.data.pendingBytes)), h('td', null, `${Math.round(hl.data.oldestPendingAgeS ?? 0)} s`)))),
        ),
  );
}

function plcCard(ready) {
  const plcs = plcLinks(ready);
  if (plcs.length === 0) return card('PLC link', h('p', { class: 'empty' }, 'no PLC link on this station'));
  return card(
    'PLC link',
    h(
      'table',
      { id: 'plc-links' },
      h('thead', null, h('tr', null, h('th', null, 'step'), h('th', null, 'link'), h('th', null, 'reconnects'), h('th', null, 'triggers acked'))),
      h('tbody', null, plcs.map(([k, hl]) => h('tr', null, h('td', null, k), h('td', null, hl.data.link === 'up' ? '✓ up' : '✗ DOWN'), h('td', null, String(hl.data.cycles?.outages ?? 0)), h('td', null, `${hl.data.cycles?.acked ?? '?'} of ${hl.data.cycles?.taken ?? '?'}`)))),
    ),
  );
}

function processCard(sum) {
  const p = sum.process;
  const disk = sum.ready.disk;
  return card(
    'Memory and process',
    facts([
      ['memory (RSS)', h('span', { id: 'rss' }, bytes(p.rssBytes))],
      ['JS heap', `${bytes(p.heapUsedBytes)} of ${bytes(p.heapTotalBytes)}`],
      ['API up', `${Math.round(p.uptimeS / 60)} min`],
      ['event-stream clients', `${sum.events.clients} (${sum.events.dropped} dropped as too slow)`],
      disk && ['disk free', `${bytes(disk.freeBytes)} of ${bytes(disk.totalBytes)}${disk.ok ? '' : ' ✗ LOW'}`],
    ]),
  );
}

function stepsCard(ready) {
  const steps = Object.entries(ready.steps);
  return card(
    'Step health',
    steps.length === 0 ? h('p', { class: 'empty' }, 'no step reports a health') : h('ul', { class: 'steps' }, steps.map(([k, hl]) => h('li', { class: `status ${hl.status === 'ok' ? 'ok' : 'bad'}` }, `${STATUS_MARK[hl.status] ?? '?'} ${k}: ${hl.status}`, h('small', null, ` ${hl.detail}`)))),
  );
}
