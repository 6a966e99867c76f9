import { DEFECT_COLOUR } from './html-charts.js';

/** The report's stylesheet, inlined: the file must open with no network (system fonts only). */
export const REPLAY_CSS = `
:root { color-scheme: light; --ink: #1d232a; --muted: #5c6670; --line: #d7dde3; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 22px; margin: 0 0 12px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; word-break: break-all; }
.note { color: var(--muted); font-size: 13px; margin: 6px 0; }
small { color: var(--muted); font-weight: normal; }
#summary { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0 0 14px; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.metrics { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px; }
.metric { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; background: var(--bg); }
.metric .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.metric .v { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.metric.bad .v { color: #c92a2a; }
.metric.warn .v { color: #b35900; }
.metric.ok .v { color: #2b8a3e; }
.metric .ci { color: var(--muted); font-size: 11.5px; font-variant-numeric: tabular-nums; }
.badtext { color: #c92a2a; font-weight: 600; }
#judged { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; }
#judged .facts { margin: 0; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.row { display: flex; flex-wrap: wrap; gap: 0 24px; align-items: flex-start; }
.charts { gap: 24px; align-items: stretch; }
.row > div { flex: 1 1 360px; min-width: 0; }
.row > div > h2:first-child { margin-top: 20px; }
table { border-collapse: collapse; background: #fff; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: right; }
th { background: #eef1f4; font-weight: 600; }
tbody th, thead th:first-child { text-align: left; white-space: nowrap; }
.confusion td { font-size: 20px; font-weight: 600; min-width: 110px; text-align: center; }
.confusion td small { display: block; font-size: 11px; }
.confusion td.ok { background: #ebfbee; }
.confusion td.bad { background: #ffe3e3; color: #c92a2a; }
.confusion td.warn { background: #fff4e6; color: #b35900; }
#sweep tr.best td { background: #fff3bf; font-weight: 600; }
.chart { background: #fff; border: 1px solid var(--line); border-radius: 8px; height: auto; flex: 0 1 380px; min-width: 280px; }
.chart.wide { flex: 1 1 560px; }
.chart text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; fill: var(--ink); }
.chart .ctitle { font-size: 15px; font-weight: 600; }
.chart .tick { font-size: 11px; fill: var(--muted); }
.chart .axis { font-size: 12px; }
.chart .legend { font-size: 12px; fill: var(--ink); }
.chart .grid { stroke: #eceff2; stroke-width: 1; }
.chart .frame { fill: none; stroke: var(--line); }
.chart .axisline { stroke: var(--muted); }
.chart .diag { stroke: #adb5bd; stroke-dasharray: 5 4; }
.chart .roc { fill: none; stroke: ${DEFECT_COLOUR}; stroke-width: 2.5; stroke-linejoin: round; }
.chart .op { fill: var(--ink); }
.chart .cut { fill: rgba(29, 35, 42, .18); stroke: var(--ink); stroke-dasharray: 4 3; stroke-width: 1; }
.chart .cutlabel { fill: var(--ink); }
.chart .thr { stroke: var(--ink); stroke-width: 2; stroke-dasharray: 6 3; }
.pager { position: relative; }
.pager .pg { position: absolute; opacity: 0; pointer-events: none; }
.pager .tiles > .tile { display: none; }
.pages { margin: 4px 0 10px; color: var(--muted); font-size: 13px; }
.pages label { display: inline-block; min-width: 26px; padding: 1px 6px; margin: 0 2px; border: 1px solid var(--line); border-radius: 4px; text-align: center; cursor: pointer; background: #fff; color: var(--ink); }
.key { display: inline-block; width: 18px; height: 10px; border: 2px solid; vertical-align: middle; }
.key.dashed { border-style: dashed; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 14px; }
.tile { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
.pic { position: relative; background: #222; }
.pic img { display: block; width: 100%; height: 100%; }
.pic .overlay { position: absolute; inset: 0; width: 100%; height: 100%; }
.overlay rect { fill: none; stroke-width: 2.5; vector-effect: non-scaling-stroke; }
.overlay rect.truth { stroke-dasharray: 6 4; }
.overlay text { paint-order: stroke; stroke: #000; stroke-linejoin: round; font-family: system-ui, "DejaVu Sans", sans-serif; font-weight: 600; }
.pic.broken { aspect-ratio: 4 / 3; display: flex; align-items: center; justify-content: center; background: repeating-linear-gradient(45deg, #f1f3f5 0 10px, #e9ecef 10px 20px); color: #c92a2a; font-weight: 600; }
.tile figcaption { padding: 8px 10px; font-size: 12.5px; }
.tile .file { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; margin-bottom: 2px; }
.tag { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 11px; font-weight: 700; text-transform: uppercase; color: #fff; }
.tag.escape { background: #c92a2a; }
.tag.overkill { background: #b35900; }
`;
