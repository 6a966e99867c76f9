import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { LinegateError } from '../errors.js';
import type { Plan } from '../compile/compile.js';
import type { InspectionResult } from '../result.js';
import { sniffImageFormat } from '../image-format.js';

const SHA256 = /^[0-9a-f]{64}$/;
/** The extensions the image archive stores under (plugins/sink-bullmq/archive.ts). */
const ARCHIVE_EXTENSIONS = ['jpg', 'png', 'bmp', 'tif', 'webp', 'bin'];
const MAX_IMAGE_BYTES = 256 * 1024 * 1024;

const MIME: Readonly<Record<string, string>> = { jpeg: 'image/jpeg', png: 'image/png', bmp: 'image/bmp', tiff: 'image/tiff', webp: 'image/webp' };

export interface StoredImage {
  readonly data: Buffer;
  readonly contentType: string;
  readonly from: 'archive' | 'frame';
}

/**
 * Where a result's image is kept. Paths come only from the station's own records and config,
 * never from a client: the archive path is built from the result's sha256 (checked to be hex, and
 * the bytes hashed again), and a frame reference is used only when it resolves, links followed,
 * to a file inside the station root.
 */
export class ImageStore {
  readonly #archives: readonly string[];
  readonly #root: string;

  constructor(archives: readonly string[], root: string) {
    this.#archives = archives;
    this.#root = root;
  }

  /** The archive folders of the station's sinks: any sink whose config has `archive.dir` (the queue sink's content-addressed archive). */
  static fromPlan(plan: Plan): ImageStore {
    const dirs: string[] = [];
    for (const sink of plan.sinks) {
      const archive = (sink.config as { archive?: { dir?: unknown; images?: unknown } } | undefined)?.archive;
      if (archive !== undefined && typeof archive.dir === 'string' && archive.images !== 'none') dirs.push(path.resolve(plan.root, archive.dir));
    }
    return new ImageStore(dirs, plan.root);
  }

  async read(result: InspectionResult): Promise<StoredImage> {
    const sha = result.frame.sha256;
    if (sha !== undefined && SHA256.test(sha)) {
      for (const dir of this.#archives) {
        for (const ext of ARCHIVE_EXTENSIONS) {
          const data = await readFile(path.join(dir, sha.slice(0, 2), sha.slice(2, 4), `${sha}.${ext}`)).catch(() => undefined);
          if (data === undefined) continue;
          if (createHash('sha256').update(data).digest('hex') !== sha) throw new LinegateError('LG_ERR_ARCHIVE_CORRUPT', [`${sha}.${ext}`, sha]);
          return { data, contentType: mimeOf(data), from: 'archive' };
        }
      }
    }
    const fromRef = await this.#fromRef(result.frame.ref);
    if (fromRef !== undefined) return fromRef;
    throw new LinegateError('LG_ERR_API_NO_IMAGE', [result.resultId, sha === undefined ? 'it was not archived, and its frame is not kept inside the station root' : 'its sha256 is in no archive of the station, and its frame is not kept inside the station root']);
  }

  async #fromRef(ref: string): Promise<StoredImage | undefined> {
    if (!path.isAbsolute(ref) || ref.includes('\0')) return undefined;
    const real = await realpath(ref).catch(() => undefined);
    const root = await realpath(this.#root).catch(() => undefined);
    if (real === undefined || root === undefined) return undefined;
    const rel = path.relative(root, real);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
    const s = await stat(real).catch(() => undefined);
    if (s === undefined || !s.isFile() || s.size > MAX_IMAGE_BYTES) return undefined;
    const data = await readFile(real);
    // Only an image: a frame reference that points at something else is not served.
    return sniff(data) === undefined ? undefined : { data, contentType: mimeOf(data), from: 'frame' };
  }
}

/** The image's encoding from its bytes (one rule for the API, the HTTP source and the archive). */
export const sniff = sniffImageFormat;

const mimeOf = (data: Uint8Array): string => MIME[sniff(data) ?? ''] ?? 'application/octet-stream';
