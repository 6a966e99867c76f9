import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { definePlugin } from '../../runtime/contract.js';
import type { InspectionResult } from '../../runtime/result.js';

const Config = z
  .object({
    dir: z.string().min(1).default('var/results').describe('folder for the files, relative to the station root'),
    rotate: z.enum(['daily', 'none']).default('daily').describe('daily: one file per UTC day, <station>-YYYY-MM-DD.jsonl'),
    fsync: z.enum(['flush', 'every']).default('flush').describe('every: fsync after each line (durable, slower); flush: at flush and close'),
  })
  .strict();

/** Appends every result as one JSON line: the station's own archive of verdicts, readable with any tool. */
export const jsonlSink = definePlugin({
  manifest: {
    id: 'core/jsonl-sink@1',
    kind: 'sink',
    description: 'Appends each inspection result as a JSON line to a file per station and day.',
    config: Config,
    critical: false,
  },
  async init(config, ctx) {
    const dir = ctx.resolvePath(config.dir);
    await mkdir(dir, { recursive: true });
    let handle: FileHandle | undefined;
    let handleName = '';
    // Writes are chained so lines never interleave, whatever the caller's concurrency.
    let tail: Promise<unknown> = Promise.resolve();
    const fileFor = (r: InspectionResult): string =>
      path.join(dir, config.rotate === 'daily' ? `${ctx.stationId}-${r.time.decidedAt.slice(0, 10)}.jsonl` : `${ctx.stationId}.jsonl`);
    const append = async (r: InspectionResult): Promise<void> => {
      const name = fileFor(r);
      if (name !== handleName) {
        await handle?.sync();
        await handle?.close();
        handle = await open(name, 'a');
        handleName = name;
      }
      await handle!.write(`${JSON.stringify(r)}\n`);
      if (config.fsync === 'every') await handle!.sync();
    };
    return {
      write(result, run) {
        run.signal.throwIfAborted();
        const done = tail.then(() => append(result));
        tail = done.catch(() => undefined);
        return done;
      },
      async flush() {
        await tail;
        await handle?.sync();
      },
      async close() {
        await tail;
        await handle?.sync();
        await handle?.close();
        handle = undefined;
      },
    };
  },
});
