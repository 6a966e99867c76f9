import { compileStation } from '../compile/compile.js';
import { loadDataFile, stationRoot } from '../config/load.js';
import { StationFile } from '../config/station-schema.js';
import { LinegateError } from '../errors.js';
import type { DeploymentRecord } from '../contract.js';
import type { HistoryFilter, HistoryReader } from '../history.js';
import { HISTORY_DEFAULTS, historyFileName, historyFileOf } from '../history-file.js';
import { builtinRegistry, historyReaderFactory } from '../registry/builtins.js';
import { loadExternalPlugins } from '../registry/load-external.js';
import type { InspectionResult, Verdict } from '../result.js';
import type { CommandContext, LogOptions } from './context.js';
import { EXIT } from './io.js';

export interface HistoryOptions extends LogOptions {
  readonly part?: string;
  readonly verdict?: Verdict;
  readonly code?: string;
  readonly rejectCode?: number;
  readonly label?: string;
  readonly since?: string;
  readonly until?: string;
  readonly limit: number;
  readonly json?: boolean;
  readonly deployments?: boolean;
}

/**
 * The history file a station file names, found by compiling the station only (no calibration, no
 * model package, no PLC, no Redis): a station whose model or calibration is broken still shows what
 * it did. LG_ERR_HISTORY_MISSING when the station keeps none (`history: false`).
 */
export async function historyFileOfStation(file: string): Promise<string> {
  const loaded = await loadDataFile(file);
  const registry = builtinRegistry();
  const shape = StationFile.safeParse(loaded.data);
  if (shape.success && shape.data.plugins.length > 0) {
    await loadExternalPlugins(shape.data.plugins, loaded.file, stationRoot(loaded.file, shape.data.station.root), registry);
  }
  const plan = compileStation(loaded.data, loaded.file, registry);
  const found = historyFileOf(plan);
  if (found === undefined) throw new LinegateError('LG_ERR_HISTORY_MISSING', [historyFileName(plan.root, HISTORY_DEFAULTS.dir, plan.settings.id)]);
  return found;
}

/** `history`: a station's results from its history file, newest first, as a table or JSON lines; nothing but the file is opened. */
export async function historyCommand(stationFile: string, opts: HistoryOptions, ctx: CommandContext): Promise<number> {
  const log = ctx.logger(opts, 'warn');
  const file = await historyFileOfStation(stationFile);
  const filter: HistoryFilter = {
    ...(opts.part === undefined ? {} : { partId: opts.part }),
    ...(opts.verdict === undefined ? {} : { verdict: opts.verdict }),
    ...(opts.code === undefined ? {} : { code: opts.code }),
    ...(opts.rejectCode === undefined ? {} : { rejectCode: opts.rejectCode }),
    ...(opts.label === undefined ? {} : { label: opts.label }),
    ...(opts.since === undefined ? {} : { since: opts.since }),
    ...(opts.until === undefined ? {} : { until: opts.until }),
  };
  let reader: HistoryReader | undefined;
  try {
    reader = await historyReaderFactory(file);
    if (opts.deployments === true) {
      const rows = (await reader.deployments?.(opts.limit)) ?? [];
      ctx.io.stdout.write(opts.json === true ? rows.map((d) => `${JSON.stringify(d)}\n`).join('') : deploymentTable(rows));
      return EXIT.ok;
    }
    const page = await reader.query(filter, { limit: opts.limit });
    ctx.io.stdout.write(opts.json === true ? page.items.map((r) => `${JSON.stringify(r)}\n`).join('') : table(page.items));
    if (page.next !== undefined) log.info({ file, limit: opts.limit }, `more than ${opts.limit} results match: narrow the filter (--since, --until) or raise --limit`);
    return EXIT.ok;
  } finally {
    await reader?.close();
  }
}

const HEAD = ['time', 'part', 'verdict', 'codes', 'labels', 'model'] as const;
const DEPLOY_HEAD = ['time', 'action', 'model', 'sha256', 'by', 'step'] as const;

function deploymentTable(items: readonly DeploymentRecord[]): string {
  return columns(
    DEPLOY_HEAD,
    items.map((d) => [d.activatedAt, d.action, `${d.name}@${d.version}`, d.sha256.slice(0, 12), d.by, d.step]),
  );
}

function table(items: readonly InspectionResult[]): string {
  return columns(
    HEAD,
    items.map((r) => [
    r.time.decidedAt,
    r.partId,
    r.verdict === 'pass' ? 'pass' : `${r.verdict} ${r.rejectCode}`,
    [...new Set(r.reasons.map((x) => x.code))].join(',') || '-',
    [...new Set(r.defects.map((d) => d.label))].join(',') || '-',
    r.model === null ? '-' : `${r.model.name}@${r.model.version}`,
    ]),
  );
}

function columns(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string => `${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}\n`;
  return line(head) + rows.map(line).join('');
}
