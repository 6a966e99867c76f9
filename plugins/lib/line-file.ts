import fs from 'node:fs/promises';
import path from 'node:path';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import { errnoOf, type AppendHandle, type FileOps } from './file-ops.js';

/*
 * One append-only file of complete lines, written whole or not at all (as
 * SQLite's WAL and sonic-boom do): a write that fails or comes up short is cut
 * back to the last good offset, so the next line never glues onto a fragment.
 * Only bytes that were written whole and fsync'd count as the file's size; a
 * reader that stops there never reads what was not kept.
 */

const TAIL_CHUNK = 64 * 1024;

/** The coded error for a failed write: a full disk is the operator's to fix, anything else is a fault. */
export function writeError(file: string, e: unknown): LinegateError {
  if (e instanceof LinegateError) return e;
  const code = errnoOf(e);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new LinegateError('LG_ERR_DISK_FULL', [file, messageOf(e)], { cause: e });
  return new LinegateError('LG_ERR_FILE_WRITE', [file, messageOf(e)], { cause: e });
}

/**
 * Cuts a last line that has no newline (a crash or a power loss mid-write): that append never
 * resolved, so nobody was told it was kept. Reads only the tail, however large the file.
 * Returns the size after the cut and how many bytes were cut.
 */
export async function repairTail(file: string): Promise<{ size: number; cut: number }> {
  const fh = await fs.open(file, 'r+');
  try {
    const { size } = await fh.stat();
    let end = size;
    while (end > 0) {
      const len = Math.min(TAIL_CHUNK, end);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, end - len);
      const nl = buf.lastIndexOf(10);
      if (nl !== -1) {
        end = end - len + nl + 1;
        break;
      }
      end -= len;
    }
    if (end !== size) {
      await fh.truncate(end);
      await fh.datasync();
    }
    return { size: end, cut: size - end };
  } finally {
    await fh.close();
  }
}

export class LineFile {
  readonly file: string;
  readonly #h: AppendHandle;
  #size: number;
  /** A failed append that could not be cut back: bytes past `size` are not ours, so no more appends here. */
  #broken: LinegateError | undefined;

  private constructor(file: string, h: AppendHandle, size: number) {
    this.file = file;
    this.#h = h;
    this.#size = size;
  }

  /**
   * Opens `file` for appending, creating it (and fsyncing its folder, or the new file could vanish
   * in a power loss with every line in it), after cutting off a torn last line.
   */
  static async open(file: string, ops: FileOps): Promise<{ file: LineFile; cut: number }> {
    let size = 0;
    let cut = 0;
    let created = false;
    try {
      ({ size, cut } = await repairTail(file));
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw writeError(file, e);
      created = true;
    }
    let h: AppendHandle;
    try {
      h = await ops.openAppend(file);
      if (created) await ops.fsyncDir(path.dirname(file));
    } catch (e) {
      throw writeError(file, e);
    }
    return { file: new LineFile(file, h, size), cut };
  }

  /** Bytes of complete lines on disk: the last good offset. */
  get size(): number {
    return this.#size;
  }

  /** Set once a failed append could not be undone; appends then go to another file. */
  get broken(): LinegateError | undefined {
    return this.#broken;
  }

  /**
   * Appends `data` (whole lines) and, unless `sync` is false, fsyncs it. On any failure (ENOSPC
   * after part of it, a short write, a failing fsync) the file is cut back to the last good offset
   * and the coded error thrown: the caller's lines are either all kept or none of them.
   */
  async append(data: Uint8Array, sync = true): Promise<void> {
    if (this.#broken !== undefined) throw this.#broken;
    let written = 0;
    try {
      while (written < data.byteLength) {
        const { bytesWritten } = await this.#h.write(data, written, data.byteLength - written);
        // write(2) returning 0 for a regular file means no room, without an error to say so.
        if (bytesWritten <= 0) throw Object.assign(new Error('no bytes written'), { code: 'ENOSPC' });
        written += bytesWritten;
      }
      if (sync) await this.#h.datasync();
      this.#size += data.byteLength;
    } catch (e) {
      const err = writeError(this.file, e);
      // After a failed fsync the page cache may hold the bytes or not: cut them either way.
      try {
        await this.#h.truncate(this.#size);
      } catch (t) {
        this.#broken = new LinegateError('LG_ERR_FILE_WRITE', [this.file, `a failed append could not be cut back to ${this.#size} bytes (${messageOf(t)}); no more appends to this file`], { cause: t });
      }
      throw err;
    }
  }

  /** fsync of lines appended without it. */
  async sync(): Promise<void> {
    try {
      await this.#h.datasync();
    } catch (e) {
      throw writeError(this.file, e);
    }
  }

  async close(): Promise<void> {
    await this.#h.close().catch(() => undefined);
  }
}
