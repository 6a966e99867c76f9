import path from 'node:path';
import { z } from 'zod';
import type { PluginContext } from '../../runtime/contract.js';

export const HOT_FOLDER_ID = 'core/hot-folder@1';

export const DEFAULT_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp'];

/** The station-file config of `core/hot-folder@1`. */
export const HotFolderConfig = z
  .object({
    dir: z.string().min(1).describe('the inbox a camera or FTP server drops image files into'),
    extensions: z
      .array(z.string().regex(/^\.?[^./\\\s]+$/, 'an extension such as ".jpg"'))
      .min(1)
      .default(DEFAULT_EXTENSIONS)
      .describe('file extensions taken, case-insensitive'),
    settleMs: z.number().int().nonnegative().max(600_000).default(300).describe('a file is complete once its size and mtime have not changed for this long'),
    pollMs: z.number().int().min(5).max(60_000).default(200).describe('how often the inbox is listed'),
    after: z.enum(['move', 'delete']).default('move').describe('what happens to a file once its result is final; an `error` verdict always moves it to failedDir'),
    doneDir: z.string().min(1).optional().describe('default <dir>/.linegate/done'),
    failedDir: z.string().min(1).optional().describe('default <dir>/.linegate/failed'),
    processingDir: z.string().min(1).optional().describe('default <dir>/.linegate/processing; must be on the same file system as dir'),
    maxFileBytes: z
      .number()
      .int()
      .positive()
      .default(64 * 1024 * 1024)
      .describe('larger files go to failedDir unread'),
  })
  .strict();
export type HotFolderConfig = z.infer<typeof HotFolderConfig>;

/** The config with every folder absolute and the extensions normalised (`.jpg`, lower-case). */
export interface HotFolderSettings {
  readonly dir: string;
  readonly processingDir: string;
  readonly doneDir: string;
  readonly failedDir: string;
  readonly extensions: ReadonlySet<string>;
  readonly settleMs: number;
  readonly pollMs: number;
  readonly after: 'move' | 'delete';
  readonly maxFileBytes: number;
}

export function resolveSettings(config: Readonly<HotFolderConfig>, ctx: Pick<PluginContext, 'resolvePath'>): HotFolderSettings {
  const dir = ctx.resolvePath(config.dir);
  const sub = (given: string | undefined, name: string): string => (given === undefined ? path.join(dir, '.linegate', name) : ctx.resolvePath(given));
  return {
    dir,
    processingDir: sub(config.processingDir, 'processing'),
    doneDir: sub(config.doneDir, 'done'),
    failedDir: sub(config.failedDir, 'failed'),
    extensions: new Set(config.extensions.map((e) => (e.startsWith('.') ? e : `.${e}`).toLowerCase())),
    settleMs: config.settleMs,
    pollMs: config.pollMs,
    after: config.after,
    maxFileBytes: config.maxFileBytes,
  };
}
