import fs from 'node:fs/promises';

/** Where directories cannot be opened and synced (Windows, some file systems): not an error there. */
const FSYNC_UNSUPPORTED = new Set(['EISDIR', 'EPERM', 'EACCES', 'EINVAL', 'ENOTSUP', 'EBADF']);

export const errnoOf = (e: unknown): string | undefined =>
  typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string' ? (e as { code: string }).code : undefined;

/** fsync of a directory, so that a file created or renamed in it survives a power cut; a no-op where directories cannot be synced. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch (e) {
    if (!FSYNC_UNSUPPORTED.has(errnoOf(e) ?? '')) throw e;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
