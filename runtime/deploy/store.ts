import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import type { Logger, ModelDescription } from '../contract.js';
import { LinegateError, messageOf } from '../errors.js';
import { errnoOf, fsyncDir } from '../durable-fs.js';
import type { PackageFiles } from './types.js';

/** A package file name: flat (no folder), no leading dot, nothing a path could climb out with. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const MAX_FILES = 32;

/**
 * Uploaded model packages, one folder each under `<deploy dir>/<station>/packages/`, named by model,
 * version and the first 12 hex of the weights' sha256. A package is written to a hidden staging
 * folder, fsync'd, and renamed into place only once its model checked: a half-written upload is
 * never a package, and one already there (the same weights) is reused, not written twice.
 */
export class PackageStore {
  readonly dir: string;
  readonly #log: Logger;
  /** Uploads being written or checked now: a prune (at start, after a deploy) must not take them for a crash's leftovers. */
  readonly #open = new Set<string>();

  constructor(stationDir: string, log: Logger) {
    this.dir = path.join(stationDir, 'packages');
    this.#log = log;
  }

  /** Checks the file names and sizes, then writes the files to a staging folder (durable) and returns it. */
  async stage(files: PackageFiles, maxBytes: number): Promise<string> {
    const problems: string[] = [];
    if (files.size === 0) problems.push('it has no files');
    if (files.size > MAX_FILES) problems.push(`it has ${files.size} files; a package has at most ${MAX_FILES}`);
    let total = 0;
    for (const [name, data] of files) {
      if (!FILE_NAME.test(name) || name.includes('..')) problems.push(`file name ${JSON.stringify(name.slice(0, 140))} is not a plain file name (letters, digits, . _ -; no folders)`);
      total += data.byteLength;
    }
    if (!files.has('model.json')) problems.push('it has no model.json');
    if (total > maxBytes) problems.push(`it is ${total} bytes; deploy.maxPackageMiB allows ${maxBytes}`);
    if (problems.length > 0) throw new LinegateError('LG_ERR_DEPLOY_PACKAGE', [problems.join('; ')]);
    const staging = path.join(this.dir, `.incoming-${randomUUID()}`);
    this.#open.add(staging);
    try {
      await mkdir(staging, { recursive: true });
      for (const [name, data] of files) {
        const fh = await open(path.join(staging, name), 'wx');
        try {
          await fh.writeFile(data);
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      await fsyncDir(staging);
    } catch (e) {
      await this.discard(staging);
      // A full disk is worth trying again once there is room; anything else about writing it is not.
      const errno = errnoOf(e);
      if (errno === 'ENOSPC' || errno === 'EDQUOT') throw new LinegateError('LG_ERR_DISK_FULL', [this.dir, messageOf(e)], { cause: e });
      throw new LinegateError('LG_ERR_DEPLOY_PACKAGE', [`it could not be written to ${this.dir}: ${messageOf(e)}`], { cause: e });
    }
    return staging;
  }

  /** Moves a checked staging folder to its own name; the same weights already kept: that folder, and the staging one goes. */
  async keep(staging: string, model: ModelDescription): Promise<string> {
    const final = path.join(this.dir, `${safe(model.name)}@${safe(model.version)}-${model.sha256.slice(0, 12)}`);
    if (await exists(final)) {
      await this.discard(staging);
      // Used again now: the newest by the age a prune goes by.
      const now = new Date();
      await utimes(final, now, now).catch(() => undefined);
      return final;
    }
    await rename(staging, final);
    this.#open.delete(staging);
    await fsyncDir(this.dir);
    return final;
  }

  async discard(staging: string): Promise<void> {
    this.#open.delete(staging);
    await rm(staging, { recursive: true, force: true }).catch((e: unknown) => this.#log.warn({ err: e, dir: staging }, 'a staged package could not be removed'));
  }

  /**
   * Removes the oldest packages past `keep`, never one in `protect` (the active model and the one a
   * rollback returns to), and any staging folder a crash left behind.
   */
  async prune(keep: number, protect: ReadonlySet<string>): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    const dated = await Promise.all(
      names.map(async (n) => {
        const p = path.join(this.dir, n);
        return { p, staging: n.startsWith('.incoming-'), mtime: (await stat(p).catch(() => undefined))?.mtimeMs ?? 0 };
      }),
    );
    for (const d of dated.filter((x) => x.staging && !this.#open.has(x.p))) await this.discard(d.p);
    const kept = dated.filter((x) => !x.staging).sort((a, b) => b.mtime - a.mtime);
    for (const d of kept.slice(keep)) {
      if (protect.has(path.resolve(d.p))) continue;
      await rm(d.p, { recursive: true, force: true }).catch((e: unknown) => this.#log.warn({ err: e, dir: d.p }, 'an old deployed package could not be removed'));
    }
  }
}

const safe = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);

const exists = (p: string): Promise<boolean> =>
  stat(p).then(
    () => true,
    () => false,
  );
