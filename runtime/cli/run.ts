import { compileStationData } from '../compile/compile.js';
import { loadDataFile } from '../config/load.js';
import { apiSettingsFor } from '../api/settings.js';
import { verifyPlan } from '../compile/verify.js';
import { builtinRegistry, historyReaderFactory } from '../registry/builtins.js';
import { historyFileOf } from '../history-file.js';
import { Station } from '../station.js';
import type { CommandContext, LogOptions } from './context.js';
import { EXIT } from './io.js';
import { onStopSignals } from './signals.js';

export interface RunOptions extends LogOptions {
  readonly maxFrames?: number;
  /** Overrides the station file's api.port (and turns the API on); 0 picks a free port. */
  readonly apiPort?: number;
}

/**
 * `run`: compile, verify every step's resources (a bad model package is bad input, exit 2, before
 * anything connects), run until the source ends, --max-frames or a signal, then one summary line.
 */
export async function runCommand(file: string, opts: RunOptions, ctx: CommandContext): Promise<number> {
  const log = ctx.logger(opts);
  const loaded = await loadDataFile(file);
  const plan = await compileStationData(loaded.data, loaded.file, builtinRegistry());
  const apiSettings = apiSettingsFor(plan, loaded.data, opts.apiPort, ctx.io.env);
  await verifyPlan(plan, log);
  const station = new Station(plan, log);
  const offSignals = onStopSignals(log, ctx.io, 'stopping: no new frames; draining parts in flight and flushing sinks', () => station.stop());
  let api: { close(): Promise<void> } | undefined;
  try {
    // The API starts once the steps are up and closes before they close (the finally below).
    if (apiSettings !== undefined) {
      await station.start();
      const { startApi } = await import('../api/server.js');
      // The history the station's sink writes, read on a connection of its own (none: the API keeps recent results in memory).
      const historyFile = historyFileOf(plan);
      const history = historyFile === undefined ? undefined : await historyReaderFactory(historyFile);
      try {
        const server = await startApi({ station, settings: apiSettings, log, env: ctx.io.env, ...(history === undefined ? {} : { history }) });
        let closing: Promise<void> | undefined;
        api = { close: () => (closing ??= server.close().then(() => history?.close())) };
      } catch (e) {
        await history?.close();
        throw e;
      }
    }
    const summary = await station.run(opts.maxFrames === undefined ? {} : { maxFrames: opts.maxFrames });
    // Read before the close: e.g. "Redis unreachable, N bytes spooled", which the operator must see.
    const health = station.health();
    if (health.status !== 'ok') log.warn({ health }, `station ended ${health.status}`);
    await api?.close();
    await station.close();
    ctx.io.stdout.write(`${JSON.stringify({ summary, health })}\n`);
    return EXIT.ok;
  } finally {
    await api?.close();
    await station.close();
    offSignals();
  }
}
