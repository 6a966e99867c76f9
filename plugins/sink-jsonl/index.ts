import { mkdir } from 'node:fs/promises';
import { z } from 'zod';
import { definePlugin } from '../../runtime/contract.js';
import type { DeliveryStatus, InspectionResult } from '../../runtime/result.js';
import { nodeFileOps } from '../lib/file-ops.js';
import { ResultsFile, resultsFileName } from './results-file.js';
import { collectResultIds } from './seen.js';

const DAY_MS = 86_400_000;

const Config = z
  .object({
    dir: z.string().min(1).default('var/results').describe('folder for the files, relative to the station root'),
    rotate: z.enum(['daily', 'none']).default('daily').describe('daily: one file per UTC day, <station>-YYYY-MM-DD.jsonl'),
    fsync: z
      .enum(['every', 'flush'])
      .default('every')
      .describe("every: fsync each line before the write resolves (durable: a hot folder settles a part only once its line is on disk); flush: at flush and close only (faster, not durable)"),
  })
  .strict();

/** Appends every result as one JSON line: the station's own archive of verdicts, readable with any tool. */
export const jsonlSink = definePlugin({
  manifest: {
    id: 'core/jsonl-sink@1',
    kind: 'sink',
    description: 'Appends each inspection result as a JSON line to a file per station and day; each line whole or not at all, fsync\'d before the write resolves.',
    config: Config,
    critical: false,
    durable: (config) => config.fsync === 'every',
  },
  async init(config, ctx) {
    const dir = ctx.resolvePath(config.dir);
    await mkdir(dir, { recursive: true });
    const fileFor = (r: Pick<InspectionResult, 'time'>): string => resultsFileName(dir, ctx.stationId, config.rotate, r.time.decidedAt);
    // Results an earlier run wrote whose parts it had not settled when it stopped: a re-inspection under the same id is not written twice.
    const earlier = new Set<string>();
    const now = Date.now();
    const files = new Set([now - DAY_MS, now].map((t) => resultsFileName(dir, ctx.stationId, config.rotate, new Date(t).toISOString())));
    for (const f of files) await collectResultIds(f, earlier);
    const out = new ResultsFile({ ops: nodeFileOps, syncEach: config.fsync === 'every', log: ctx.log });
    // Writes are chained so lines never interleave, whatever the caller's concurrency.
    let tail: Promise<unknown> = Promise.resolve();
    return {
      write(result, run): Promise<DeliveryStatus | void> {
        run.signal.throwIfAborted();
        const done = tail.then(async () => {
          if (earlier.has(result.resultId)) return 'delivered' as const;
          await out.append(fileFor(result), `${JSON.stringify(result)}\n`);
          return undefined;
        });
        tail = done.catch(() => undefined);
        return done;
      },
      async flush() {
        await tail;
        await out.sync();
      },
      health: () => out.health(),
      async close() {
        await tail;
        await out.close();
      },
    };
  },
});
