import fs from 'node:fs/promises';
import { errnoOf, fsyncDir } from '../../runtime/durable-fs.js';

export { errnoOf, fsyncDir };

/*
 * The few file operations linegate's append-only logs (the spool, the JSONL
 * results file) write with. They take them as a parameter so that a test can
 * hand in one that fails the way a full or broken disk does (ENOSPC after N
 * bytes, a short write, a failing fsync) on any machine, without mounting
 * anything.
 */

/** A file open for appending: the subset of node's FileHandle the logs use. */
export interface AppendHandle {
  /** May write fewer bytes than asked (a short write): the caller writes the rest. */
  write(data: Uint8Array, offset: number, length: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

export interface FileOps {
  /** Opens `file` for appending, creating it when missing. */
  openAppend(file: string): Promise<AppendHandle>;
  /** Makes the entries of `dir` durable: a file created, renamed into it or removed. */
  fsyncDir(dir: string): Promise<void>;
  /** Replaces a small file atomically: a temporary name, flushed, renamed (the caller fsyncs the folder). */
  replaceFile(file: string, data: string): Promise<void>;
}

/** The real file system. */
export const nodeFileOps: FileOps = {
  openAppend: (file) => fs.open(file, 'a'),
  fsyncDir,
  async replaceFile(file, data) {
    const tmp = `${file}.tmp`;
    await fs.writeFile(tmp, data, { flush: true });
    await fs.rename(tmp, file);
  },
};
