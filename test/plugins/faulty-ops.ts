import fs from 'node:fs/promises';
import { nodeFileOps, type AppendHandle, type FileOps } from '../../plugins/lib/file-ops.js';

/**
 * A disk that fails on demand, for the append-only logs (the spool, the JSONL
 * writer), on any machine: ENOSPC once `spaceLeft` bytes are written (the
 * write that crosses it is a short write, as write(2) does when the disk fills
 * mid-buffer), short writes, failing fsyncs, a failing cursor file. Every
 * directory fsync is recorded.
 */
export interface Faults {
  /** Bytes that still fit; undefined: no limit. */
  spaceLeft?: number;
  /** Every write takes at most this many bytes (a short write), without failing. */
  shortWrites?: number;
  /** The next N datasyncs fail with EIO. */
  failSyncs?: number;
  /** replaceFile (the spool's cursor) fails with ENOSPC. */
  failReplace?: boolean;
}

export interface FaultyDisk {
  readonly ops: FileOps;
  readonly faults: Faults;
  /** Folders fsync'd, in order. */
  readonly dirSyncs: string[];
}

const errno = (code: string, what: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: ${what}`), { code });

export function faultyDisk(faults: Faults = {}): FaultyDisk {
  const dirSyncs: string[] = [];
  const wrap = (h: fs.FileHandle): AppendHandle => ({
    async write(data, offset, length) {
      let take = faults.shortWrites === undefined ? length : Math.min(length, faults.shortWrites);
      if (faults.spaceLeft !== undefined) {
        if (faults.spaceLeft <= 0) throw errno('ENOSPC', 'no space left on device, write');
        take = Math.min(take, faults.spaceLeft);
      }
      const { bytesWritten } = await h.write(data, offset, take);
      if (faults.spaceLeft !== undefined) faults.spaceLeft -= bytesWritten;
      return { bytesWritten };
    },
    async datasync() {
      if ((faults.failSyncs ?? 0) > 0) {
        faults.failSyncs! -= 1;
        throw errno('EIO', 'i/o error, fdatasync');
      }
      await h.datasync();
    },
    truncate: (length) => h.truncate(length),
    close: () => h.close(),
  });
  const ops: FileOps = {
    openAppend: async (file) => wrap(await fs.open(file, 'a')),
    async fsyncDir(dir) {
      dirSyncs.push(dir);
      await nodeFileOps.fsyncDir(dir);
    },
    async replaceFile(file, data) {
      if (faults.failReplace === true) throw errno('ENOSPC', `no space left on device, open '${file}.tmp'`);
      await nodeFileOps.replaceFile(file, data);
    },
  };
  return { ops, faults, dirSyncs };
}
