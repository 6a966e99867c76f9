import fs from 'node:fs/promises';
import path from 'node:path';
import { errnoOf } from '../lib/file-ops.js';
import { splitName } from './names.js';

export { errnoOf, fsyncDir } from '../lib/file-ops.js';

/** Target paths a move in this process is about to use, so that two concurrent moves never pick the same free name. */
const reserved = new Set<string>();

/** Reserves `target` when no file has it and no other move in this process reserved it first. */
async function reserve(target: string): Promise<boolean> {
  if (reserved.has(target)) return false;
  try {
    await fs.lstat(target);
    return false;
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw e;
  }
  // Checked again: another move may have reserved it while lstat ran.
  if (reserved.has(target)) return false;
  reserved.add(target);
  return true;
}

/** Reserves `name` in `dir` when nothing has it, else `<stem>~<ms timestamp>[-n]<ext>`: an older file is never replaced. */
async function reserveFreePath(dir: string, name: string): Promise<string> {
  const plain = path.join(dir, name);
  if (await reserve(plain)) return plain;
  const { stem, ext } = splitName(name);
  const stamp = Date.now();
  for (let n = 0; ; n++) {
    const candidate = path.join(dir, `${stem}~${stamp}${n === 0 ? '' : `-${n}`}${ext}`);
    if (await reserve(candidate)) return candidate;
  }
}

/**
 * Renames `src` into `destDir` under its own name, or a suffixed one when that
 * name is taken, and returns where it went. `rename` alone would silently
 * replace an existing file (POSIX and Node on Windows alike), hence the check;
 * only this process writes into linegate's folders, and `reserved` covers
 * concurrent moves inside it. Does not fsync: see `fsyncDir`.
 */
export async function moveNoClobber(src: string, destDir: string, name: string = path.basename(src)): Promise<string> {
  const target = await reserveFreePath(destDir, name);
  try {
    await fs.rename(src, target);
    return target;
  } finally {
    reserved.delete(target);
  }
}
