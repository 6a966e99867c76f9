import path from 'node:path';
import type { CommandContext, LogOptions } from './context.js';
import { EXIT } from './io.js';
import { onStopSignals } from './signals.js';

export interface WorkerCliOptions extends LogOptions {
  readonly redis?: string;
  readonly prefix?: string;
  readonly concurrency?: number;
  readonly out?: string;
  readonly archive?: string;
}

/** The Redis a command talks to: --redis, else LINEGATE_REDIS_URL (as the station's queue sink reads it), else the plugin's default. */
const redisOf = (opts: { readonly redis?: string }, ctx: CommandContext): string | undefined => opts.redis ?? ctx.io.env.LINEGATE_REDIS_URL;

/** `worker <name>`: consume a queue until SIGINT/SIGTERM, then close gracefully; one {"worker": ...} JSON line on stdout at exit. */
export async function workerCommand(name: string, opts: WorkerCliOptions, ctx: CommandContext): Promise<number> {
  const log = ctx.logger(opts);
  const { startWorker } = await import('../../plugins/sink-bullmq/workers/index.js');
  // Only the flags given: each worker refuses the options it does not take.
  const options = Object.fromEntries(
    Object.entries({
      redis: redisOf(opts, ctx),
      prefix: opts.prefix,
      concurrency: opts.concurrency,
      out: opts.out === undefined ? undefined : path.resolve(opts.out),
      archive: opts.archive === undefined ? undefined : path.resolve(opts.archive),
    }).filter(([, v]) => v !== undefined),
  );
  let stop = (): void => undefined;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const offSignals = onStopSignals(log, ctx.io, 'stopping: no new jobs; waiting for the running ones', () => stop());
  try {
    const worker = await startWorker(name, options, log);
    await stopped;
    await worker.close();
    ctx.io.stdout.write(`${JSON.stringify({ worker: { name: worker.name, processed: worker.processed(), failed: worker.failed() } })}\n`);
    return EXIT.ok;
  } finally {
    offSignals();
  }
}

/** `stats <station>`: what `worker stats` counted over the last N minutes, as JSON. */
export async function statsCommand(station: string, opts: LogOptions & { readonly minutes: number; readonly redis?: string; readonly prefix?: string }, ctx: CommandContext): Promise<number> {
  ctx.logger(opts);
  const { readStats } = await import('../../plugins/sink-bullmq/workers/stats-read.js');
  const redis = redisOf(opts, ctx);
  const stats = await readStats({ station, minutes: opts.minutes, ...(redis === undefined ? {} : { redis }), ...(opts.prefix === undefined ? {} : { prefix: opts.prefix }) });
  ctx.io.stdout.write(`${JSON.stringify(stats, null, 2)}\n`);
  return EXIT.ok;
}
