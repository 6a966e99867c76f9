import type { Command } from 'commander';
import { positiveInt } from './args.js';
import type { CommandContext, LogOptions } from './context.js';
import type { WorkerCliOptions } from './worker.js';

/** `worker` and `stats`: BullMQ and ioredis load only when one of them runs. */
export function addQueueCommands(add: (name: string) => Command, ctx: CommandContext, exit: (code: number) => void): void {
  add('worker')
    .description(
      'run a queue worker (it may run on another machine than the station; Redis is shared) until SIGINT/SIGTERM: dataset-export (samples -> a retraining dataset in --out) or stats (results -> per-minute statistics in Redis)',
    )
    .argument('<name>', 'dataset-export | stats')
    .option('--redis <url>', 'Redis URL (default LINEGATE_REDIS_URL, else redis://127.0.0.1:6379)')
    .option('--prefix <prefix>', 'BullMQ key prefix the station uses (default linegate; the demo station uses linegate-demo)')
    .option('--concurrency <n>', 'jobs at once (default: dataset-export 1, stats 4)', positiveInt)
    .option('--out <dir>', 'dataset-export: the dataset folder')
    .option('--archive <dir>', "dataset-export: the station's image archive folder (not needed when images travel inline)")
    .action(async (name: string, opts: WorkerCliOptions) => exit(await (await import('./worker.js')).workerCommand(name, opts, ctx)));

  add('stats')
    .description("print a station's statistics over the last N minutes as JSON (counted in Redis by `linegate worker stats`)")
    .argument('<station>', 'station id')
    .option('--minutes <n>', 'window length in minutes, the current one included', positiveInt, 60)
    .option('--redis <url>', 'Redis URL (default LINEGATE_REDIS_URL, else redis://127.0.0.1:6379)')
    .option('--prefix <prefix>', 'key prefix (default linegate)')
    .action(async (station: string, opts: LogOptions & { minutes: number; redis?: string; prefix?: string }) => exit(await (await import('./worker.js')).statsCommand(station, opts, ctx)));
}
