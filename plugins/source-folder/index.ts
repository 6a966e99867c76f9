import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { definePlugin, type FrameInput, type PluginContext } from '../../runtime/contract.js';
import { InstanceState } from '../lib/instance.js';
import { LinegateError } from '../../runtime/errors.js';
import { sleep } from '../../runtime/execute/bounded.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp'];

const Config = z
  .object({
    dir: z.string().min(1).describe('folder of images; sub-folders are walked and their name kept as the label'),
    loop: z.boolean().default(false).describe('start again at the first image after the last'),
    rateHz: z.number().positive().max(10_000).optional().describe('frames per second; as fast as the pipeline takes them when absent'),
    extensions: z.array(z.string().regex(/^\.[a-z0-9]+$/i)).default(IMAGE_EXTENSIONS),
    recursive: z.boolean().default(true),
  })
  .strict();

export interface Entry {
  readonly file: string;
  readonly label: string | undefined;
}

/** Every image under `dir`, sorted by relative path (byte order, so every machine agrees). */
export async function listImages(dir: string, extensions: readonly string[], recursive: boolean): Promise<Entry[]> {
  const exts = new Set(extensions.map((e) => e.toLowerCase()));
  const out: Entry[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const relPath = rel === '' ? e.name : `${rel}/${e.name}`;
      // A symbolic link counts as what it points to (data sets are often linked in, not copied).
      const target = e.isSymbolicLink() ? await stat(path.join(d, e.name)).catch(() => undefined) : e;
      if (target === undefined) continue;
      if (target.isDirectory() && recursive) await walk(path.join(d, e.name), relPath);
      else if (target.isFile() && exts.has(path.extname(e.name).toLowerCase())) out.push({ file: relPath, label: rel === '' ? undefined : rel.split('/')[0] });
    }
  };
  await walk(dir, '');
  return out.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

export const folderSource = definePlugin({
  manifest: {
    id: 'core/folder-source@1',
    kind: 'source',
    description: 'Images from a folder in a stable order, optionally looped and paced; the first sub-folder name is the label.',
    config: Config,
    produces: [{ type: 'image/encoded' }],
  },
  async init(config, ctx) {
    const dir = ctx.resolvePath(config.dir);
    const info = await stat(dir).catch(() => undefined);
    if (info === undefined || !info.isDirectory()) throw new LinegateError('LG_ERR_SOURCE_NOT_FOUND', [dir], { step: ctx.step });
    const entries = await listImages(dir, config.extensions, config.recursive);
    if (entries.length === 0) throw new LinegateError('LG_ERR_SOURCE_EMPTY', [dir, config.extensions.join(' ')], { step: ctx.step });
    ctx.log.info({ dir, images: entries.length, loop: config.loop, rateHz: config.rateHz }, 'folder source ready');
    const state = new InstanceState(ctx.step, 'core/folder-source@1');
    return {
      close: () => state.close(),
      async *frames(run: PluginContext): AsyncGenerator<FrameInput> {
        const periodMs = config.rateHz === undefined ? 0 : 1000 / config.rateHz;
        let next = performance.now();
        let pass = 0;
        do {
          for (const entry of entries) {
            if (run.signal.aborted || state.closed) return;
            if (periodMs > 0) {
              // Paced against a fixed schedule, so a slow read does not make the rate drift.
              next += periodMs;
              await sleep(next - performance.now(), run.signal);
              if (run.signal.aborted || state.closed) return;
            }
            const file = path.join(dir, entry.file);
            const data = await readFile(file);
            const stem = entry.file.replace(/\.[^./]+$/, '').replace(/\//g, '_');
            yield {
              ref: file,
              partId: pass === 0 ? stem : `${stem}#${pass}`,
              image: { kind: 'encoded', data, format: path.extname(file).slice(1).toLowerCase() },
              ...(entry.label === undefined ? {} : { label: entry.label }),
            };
          }
          pass++;
        } while (config.loop);
      },
    };
  },
});
