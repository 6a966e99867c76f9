import type { Command } from 'commander';
import { nonNegative, portArg, positive, positiveInt } from './args.js';
import type { CommandContext, LogOptions } from './context.js';
import { EXIT } from './io.js';
import { onStopSignals } from './signals.js';

export interface PlantCliOptions extends LogOptions {
  readonly host?: string;
  readonly port?: number;
  readonly redis?: string;
  readonly prefix?: string;
  readonly minutes?: number;
  readonly staleMinutes?: number;
  readonly maxErrorRate?: number;
  readonly refreshSeconds?: number;
}

const DEFAULT_REDIS = 'redis://127.0.0.1:6379';

/** `plant`: the definition only; the server, zod and ioredis load when the command runs. */
export function addPlantCommand(add: (name: string) => Command, ctx: CommandContext, exit: (code: number) => void): void {
  add('plant')
    .description(
      "serve the plant page: every station's yield, throughput, top reject codes and health, grouped and filtered by site, area, line and cell, from what `linegate worker stats` counts in Redis; until SIGINT/SIGTERM",
    )
    .option('--host <addr>', 'address to listen on (default 127.0.0.1)')
    .option('--port <port>', 'port (default 8090; 0 picks a free one)', portArg)
    .option('--redis <url>', 'Redis URL (default LINEGATE_REDIS_URL, else redis://127.0.0.1:6379)')
    .option('--prefix <prefix>', 'BullMQ key prefix of the stations and the stats workers (default linegate; the demo stations use linegate-demo)')
    .option('--minutes <n>', 'window of yield, parts and reject codes (default 60, at most 1440)', positiveInt)
    .option('--stale-minutes <n>', 'a station with no result for this long is stale (default 5)', positive)
    .option('--max-error-rate <x>', 'share of error verdicts over the last 5 minutes above which a station is unhealthy, 0-1 (default 0.05)', nonNegative)
    .option('--refresh-seconds <s>', 'how often the page asks again (default 5)', positive)
    .action(async (opts: PlantCliOptions) => exit(await plantCommand(opts, ctx)));
}

/** Serves the page until SIGINT/SIGTERM; one {"plant": ...} JSON line on stdout at exit. */
export async function plantCommand(opts: PlantCliOptions, ctx: CommandContext): Promise<number> {
  const log = ctx.logger(opts);
  const { parsePlantOptions } = await import('../plant/options.js');
  // Only the flags given: the schema's defaults hold for the others, and it names a bad value.
  const settings = parsePlantOptions(
    Object.fromEntries(
      Object.entries({
        host: opts.host,
        port: opts.port,
        redis: opts.redis ?? ctx.io.env.LINEGATE_REDIS_URL ?? DEFAULT_REDIS,
        prefix: opts.prefix,
        minutes: opts.minutes,
        staleMinutes: opts.staleMinutes,
        maxErrorRate: opts.maxErrorRate,
        refreshSeconds: opts.refreshSeconds,
      }).filter(([, v]) => v !== undefined),
    ),
  );
  const [{ PlantServer }, { PlantReader }] = await Promise.all([import('../plant/server.js'), import('../../plugins/sink-bullmq/workers/plant-read.js')]);
  let stop = (): void => undefined;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const offSignals = onStopSignals(log, ctx.io, 'stopping the plant page', () => stop());
  const source = new PlantReader({ redis: settings.redis, prefix: settings.prefix, log });
  try {
    const server = await PlantServer.start({ settings, source, log });
    await stopped;
    await server.close();
    ctx.io.stdout.write(`${JSON.stringify({ plant: { url: server.url, requests: server.requests } })}\n`);
    return EXIT.ok;
  } finally {
    await source.close();
    offSignals();
  }
}
