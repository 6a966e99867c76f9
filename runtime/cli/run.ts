import { compileStationFile } from '../compile/compile.js';
import { verifyPlan } from '../compile/verify.js';
import { builtinRegistry } from '../registry/builtins.js';
import { Station } from '../station.js';
import type { CommandContext, LogOptions } from './context.js';
import { EXIT } from './io.js';
import { onStopSignals } from './signals.js';

export interface RunOptions extends LogOptions {
  readonly maxFrames?: number;
}

/**
 * `run`: compile, verify every step's resources (a bad model package is bad input, exit 2, before
 * anything connects), run until the source ends, --max-frames or a signal, then one summary line.
 */
export async function runCommand(file: string, opts: RunOptions, ctx: CommandContext): Promise<number> {
  const log = ctx.logger(opts);
  const plan = await compileStationFile(file, builtinRegistry());
  await verifyPlan(plan, log);
  const station = new Station(plan, log);
  const offSignals = onStopSignals(log, ctx.io, 'stopping: no new frames; draining parts in flight and flushing sinks', () => station.stop());
  try {
    const summary = await station.run(opts.maxFrames === undefined ? {} : { maxFrames: opts.maxFrames });
    // Read before the close: e.g. "Redis unreachable, N bytes spooled", which the operator must see.
    const health = station.health();
    if (health.status !== 'ok') log.warn({ health }, `station ended ${health.status}`);
    await station.close();
    ctx.io.stdout.write(`${JSON.stringify({ summary, health })}\n`);
    return EXIT.ok;
  } finally {
    await station.close();
    offSignals();
  }
}
