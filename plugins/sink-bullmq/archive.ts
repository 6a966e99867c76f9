import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import type { ArchivedImage } from './jobs.js';
import { sniffImageFormat } from '../../runtime/image-format.js';

/*
 * The station's image archive: each image once, under its sha256, in the
 * encoding the camera gave it. Jobs carry the key and the hash, never the
 * bytes, so a queue stays small however large the images are. Retention is by
 * total size and by age, oldest use first.
 */

const EXTENSION: Readonly<Record<string, string>> = { jpeg: 'jpg', jpg: 'jpg', png: 'png', bmp: 'bmp', tiff: 'tif', tif: 'tif', webp: 'webp' };

/** The encoding from the bytes themselves: a file's extension can lie. */
export const sniffFormat = sniffImageFormat;

export const sha256Of = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** `<aa>/<bb>/<sha256>.<ext>`: two levels of fan-out keep every folder small. */
export function archiveKey(sha256: string, format: string): string {
  return `${sha256.slice(0, 2)}/${sha256.slice(2, 4)}/${sha256}.${EXTENSION[format] ?? 'bin'}`;
}

/**
 * The bytes of an archived image: inline when the job carries them, else from
 * the archive folder (a share when the worker runs elsewhere). The hash is
 * checked either way: a retraining set must not hold a torn or swapped file.
 */
export async function readArchivedImage(archiveDir: string | undefined, image: ArchivedImage): Promise<Buffer> {
  let data: Buffer;
  if (image.inline !== undefined) data = Buffer.from(image.inline, 'base64');
  else if (archiveDir === undefined) throw new LinegateError('LG_ERR_ARCHIVE_MISSING', [image.sha256, '(no archive folder given)']);
  else {
    try {
      data = await readFile(path.join(archiveDir, image.key));
    } catch {
      throw new LinegateError('LG_ERR_ARCHIVE_MISSING', [image.sha256, archiveDir]);
    }
  }
  if (sha256Of(data) !== image.sha256) throw new LinegateError('LG_ERR_ARCHIVE_CORRUPT', [image.key, image.sha256]);
  return data;
}

export interface ArchiveOptions {
  readonly maxBytes: number;
  /** Images unused for longer are removed; 0 keeps them until the size limit. */
  readonly maxAgeMs: number;
  readonly inlineMaxBytes: number;
  readonly log: Logger;
  /** How often retention runs besides after a put over the size limit: images pass their age on an idle line too. Default 1 h. */
  readonly sweepEveryMs?: number;
}

const SWEEP_EVERY_MS = 3_600_000;

interface Entry {
  readonly file: string;
  readonly bytes: number;
  mtimeMs: number;
}

export class ImageArchive {
  readonly dir: string;
  readonly #o: ArchiveOptions;
  /** Every stored image, for retention without rescanning the disk. */
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #lastUse = 0;
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<{ removed: number; bytes: number }> | undefined;

  private constructor(dir: string, o: ArchiveOptions) {
    this.dir = dir;
    this.#o = o;
  }

  /** Opens (creating) the folder and learns what it holds; applies retention now and then every `sweepEveryMs`. */
  static async open(dir: string, o: ArchiveOptions): Promise<ImageArchive> {
    const a = new ImageArchive(dir, o);
    await mkdir(dir, { recursive: true });
    for (const file of await walk(dir)) {
      if (file.endsWith('.tmp')) {
        await rm(file, { force: true }); // a write cut short by a crash
        continue;
      }
      const s = await stat(file);
      a.#entries.set(path.basename(file), { file, bytes: s.size, mtimeMs: s.mtimeMs });
      a.#bytes += s.size;
    }
    await a.sweep();
    a.#timer = setInterval(() => void a.sweep().catch((err: unknown) => o.log.error({ err, archive: dir }, 'archive retention failed; tried again at the next period')), o.sweepEveryMs ?? SWEEP_EVERY_MS);
    // Retention must not keep a station that is done from exiting.
    a.#timer.unref();
    return a;
  }

  /** Stops the periodic retention; idempotent. */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get count(): number {
    return this.#entries.size;
  }

  /**
   * Stores the image unless it is there already (then it only counts as used
   * now). Written to a temporary name, flushed, then renamed: a crash never
   * leaves a half image under a real key.
   */
  async put(data: Uint8Array, format: string | undefined, sha256 = sha256Of(data)): Promise<ArchivedImage> {
    const fmt = sniffFormat(data) ?? format ?? 'bin';
    const key = archiveKey(sha256, fmt);
    const file = path.join(this.dir, key);
    const name = path.basename(key);
    // Strictly increasing: two uses in one millisecond must still order for least-recently-used.
    const now = (this.#lastUse = Math.max(Date.now(), this.#lastUse + 1));
    const known = this.#entries.get(name);
    try {
      if (known !== undefined) {
        known.mtimeMs = now;
        await utimes(file, now / 1000, now / 1000);
      } else {
        await mkdir(path.dirname(file), { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        await writeFile(tmp, data, { flush: true });
        await rename(tmp, file);
        this.#entries.set(name, { file, bytes: data.byteLength, mtimeMs: now });
        this.#bytes += data.byteLength;
        if (this.#bytes > this.#o.maxBytes) await this.sweep();
      }
    } catch (e) {
      throw new LinegateError('LG_ERR_ARCHIVE_WRITE', [key, this.dir, messageOf(e)], { cause: e });
    }
    const inline = data.byteLength <= this.#o.inlineMaxBytes ? Buffer.from(data).toString('base64') : undefined;
    return { sha256, format: fmt, bytes: data.byteLength, key, ...(inline === undefined ? {} : { inline }) };
  }

  /** Removes images past the age limit, then the least recently used until the size fits; one sweep at a time. */
  sweep(now = Date.now()): Promise<{ removed: number; bytes: number }> {
    return (this.#sweeping ??= this.#sweep(now).finally(() => (this.#sweeping = undefined)));
  }

  async #sweep(now: number): Promise<{ removed: number; bytes: number }> {
    const byAge = [...this.#entries.entries()].sort((a, b) => a[1].mtimeMs - b[1].mtimeMs);
    let removed = 0;
    let freed = 0;
    for (const [name, e] of byAge) {
      const old = this.#o.maxAgeMs > 0 && now - e.mtimeMs > this.#o.maxAgeMs;
      if (!old && this.#bytes <= this.#o.maxBytes) break;
      if (this.#entries.get(name) !== e) continue; // gone (or stored again) while this sweep ran
      await rm(e.file, { force: true });
      this.#entries.delete(name);
      this.#bytes -= e.bytes;
      removed++;
      freed += e.bytes;
    }
    if (removed > 0) this.#o.log.info({ removed, freedBytes: freed, keptBytes: this.#bytes, archive: this.dir }, 'archive retention removed images');
    return { removed, bytes: freed };
  }
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}
