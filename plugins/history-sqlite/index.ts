import { z } from 'zod';
import { DEPLOYMENT_RECORDS_SERVICE, definePlugin } from '../../runtime/contract.js';
import { HISTORY_DEFAULTS, HISTORY_PLUGIN_ID, historyFileName } from '../../runtime/history-file.js';
import { HistorySink } from './sink.js';

const Config = z
  .object({
    dir: z.string().min(1).default(HISTORY_DEFAULTS.dir).describe('folder of the history file <dir>/<station id>.sqlite, relative to the station root'),
    maxAgeDays: z.number().positive().max(36_500).default(HISTORY_DEFAULTS.maxAgeDays).describe('results decided longer ago are deleted'),
    maxMiB: z.number().min(0).max(1_048_576).default(HISTORY_DEFAULTS.maxMiB).describe('past this many MiB of rows the oldest are deleted, down to 90 %; 0: no size limit'),
    batchSize: z.number().int().min(1).max(10_000).default(256).describe('results committed in one transaction at most, when the lane has them waiting'),
    retentionEveryMin: z.number().positive().max(1440).default(10).describe('how often retention runs (and once at start)'),
  })
  .strict();

/** Every result into an SQLite file per station, indexed for the `history` command and the API. */
export const historySink = definePlugin({
  manifest: {
    id: HISTORY_PLUGIN_ID,
    kind: 'sink',
    description:
      'Keeps every result in an SQLite file per station (WAL), indexed by part id, time, verdict, reason code, reject code and label, with retention by age and size; written on a thread of its own, in a background lane, so a slow or full disk never delays a verdict.',
    config: Config,
    critical: false,
    // The JSONL file and the queue spool are the durable records; this is an index of them.
    durable: false,
    // Model activations (deploys, rollbacks, starts) kept beside the results.
    provides: [DEPLOYMENT_RECORDS_SERVICE],
  },
  async init(config, ctx) {
    const sink = new HistorySink({
      file: historyFileName(ctx.resolvePath('.'), config.dir, ctx.stationId),
      step: ctx.step,
      pluginId: HISTORY_PLUGIN_ID,
      maxAgeDays: config.maxAgeDays,
      maxBytes: Math.round(config.maxMiB * 1024 * 1024),
      batchSize: config.batchSize,
      retentionEveryMs: config.retentionEveryMin * 60_000,
      closeMs: ctx.timing.closeTimeoutMs,
      log: ctx.log,
    });
    await sink.start();
    return sink;
  },
});
