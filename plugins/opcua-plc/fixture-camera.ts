import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** Bytes of images kept in memory: a few hundred fixture photos, not a hot folder's worth. */
const CACHE_BYTES = 64 * 1024 * 1024;

/**
 * The fixture camera behind core/opcua-trigger@1: each trigger takes the next
 * image of a folder, round and round. An image read once is kept (up to
 * CACHE_BYTES, least recently taken out first): a file read costs a trigger
 * about a millisecond of thread-pool round trips, which a camera that already
 * holds its frame does not pay, and the PLC's latency is what this source is
 * measured by. The folder is fixture data: it does not change while it runs.
 */
export class FixtureCamera {
  readonly #dir: string;
  readonly #files: readonly string[];
  readonly #cache = new Map<string, Buffer>();
  #bytes = 0;
  #next = 0;

  constructor(dir: string, files: readonly string[]) {
    this.#dir = dir;
    this.#files = files;
  }

  /** The next frame; rejects when its file cannot be read (the caller answers the part "no frame"). */
  async take(): Promise<{ readonly file: string; readonly data: Buffer }> {
    const file = path.join(this.#dir, this.#files[this.#next++ % this.#files.length]!);
    const kept = this.#cache.get(file);
    if (kept !== undefined) {
      this.#cache.delete(file);
      this.#cache.set(file, kept);
      return { file, data: kept };
    }
    const data = await readFile(file);
    this.#keep(file, data);
    return { file, data };
  }

  #keep(file: string, data: Buffer): void {
    if (data.length > CACHE_BYTES) return;
    this.#cache.set(file, data);
    this.#bytes += data.length;
    for (const [old, buf] of this.#cache) {
      if (this.#bytes <= CACHE_BYTES) break;
      this.#cache.delete(old);
      this.#bytes -= buf.length;
    }
  }
}
