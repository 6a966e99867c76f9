import fs from 'node:fs/promises';
import path from 'node:path';
import { definePlugin, type FrameInput, type Logger, type PluginContext, type SourceInstance } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import { sleep } from '../../runtime/execute/bounded.js';
import type { InspectionResult } from '../../runtime/result.js';
import { HOT_FOLDER_ID, HotFolderConfig, resolveSettings, type HotFolderSettings } from './config.js';
import { errnoOf, fsyncDir, moveNoClobber } from './durable.js';
import { formatOf, isCandidateName, splitName } from './names.js';
import { StabilityTracker } from './stability.js';

/*
 * A file is always in exactly one of four places, and only a rename (atomic,
 * same file system, directory fsynced) moves it on:
 *   inbox       not taken yet: taken once it is complete
 *   processing  taken, result not final: yielded; yielded again once after a restart
 *   done/failed finished: never looked at again
 * A file is settled only once every durable sink holds its result; one
 * re-inspected after a crash gets the same result id (its `key`). See README.md.
 */

interface Listed {
  readonly name: string;
  readonly file: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
}

const byAgeThenName = (a: Listed, b: Listed): number => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** stat that answers undefined for a file that has gone. */
async function statIfThere(file: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await fs.stat(file);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return undefined;
    throw e;
  }
}

class HotFolder implements SourceInstance {
  readonly #s: HotFolderSettings;
  readonly #log: Logger;
  readonly #closed = new AbortController();
  /** Files of this instance in processing that were yielded and are not settled yet: a second frames() must not yield them again. */
  readonly #unsettled = new Set<string>();
  #inboxFailing = false;

  constructor(settings: HotFolderSettings, log: Logger) {
    this.#s = settings;
    this.#log = log;
  }

  async *frames(ctx: PluginContext): AsyncGenerator<FrameInput, void, undefined> {
    const signal = AbortSignal.any([ctx.signal, this.#closed.signal]);
    if (signal.aborted) return;

    // First what a previous run took but never finished, oldest first.
    for (const entry of await this.#listProcessing()) {
      if (signal.aborted) return;
      const frame = await this.#load(entry.file);
      if (frame !== undefined) yield frame;
    }

    const tracker = new StabilityTracker(this.#s.settleMs);
    while (!signal.aborted) {
      const { ready, wakeInMs } = await this.#scanInbox(tracker);
      for (const entry of ready) {
        if (signal.aborted) return;
        const frame = await this.#claim(entry, tracker);
        if (frame !== undefined) yield frame;
      }
      if (ready.length === 0) await sleep(wakeInMs, signal);
    }
  }

  async close(): Promise<void> {
    this.#closed.abort();
  }

  /** Regular, non-hidden files in processing that this instance is not already handling, oldest first. */
  async #listProcessing(): Promise<Listed[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.#s.processingDir);
    } catch (err) {
      this.#log.error({ err, dir: this.#s.processingDir }, 'cannot list the processing folder; files left there wait for the next start');
      return [];
    }
    const out: Listed[] = [];
    for (const name of names) {
      const file = path.join(this.#s.processingDir, name);
      if (name.startsWith('.') || this.#unsettled.has(file)) continue;
      const st = await statIfThere(file).catch(() => undefined);
      if (st?.isFile() === true) out.push({ name, file, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino });
    }
    if (out.length > 0) this.#log.info({ files: out.length }, 'taking up files a previous run took but did not finish');
    return out.sort(byAgeThenName);
  }

  /** One poll: stats every candidate, feeds the tracker; returns what is complete now, and how long to sleep otherwise. */
  async #scanInbox(tracker: StabilityTracker): Promise<{ ready: Listed[]; wakeInMs: number }> {
    const { dir, pollMs } = this.#s;
    let names: string[];
    try {
      names = await fs.readdir(dir);
      if (this.#inboxFailing) this.#log.info({ dir }, 'the hot folder can be listed again');
      this.#inboxFailing = false;
    } catch (err) {
      // A network share that drops out must not stop the station: keep polling, log once per outage.
      if (!this.#inboxFailing) this.#log.error({ err, dir }, 'cannot list the hot folder; polling on');
      this.#inboxFailing = true;
      return { ready: [], wakeInMs: pollMs };
    }
    const now = performance.now();
    const present = new Set<string>();
    const ready: Listed[] = [];
    let wakeInMs = pollMs;
    for (const name of names) {
      if (!isCandidateName(name, this.#s.extensions)) continue;
      const file = path.join(dir, name);
      const st = await statIfThere(file).catch(() => undefined);
      if (st === undefined || !st.isFile()) continue;
      present.add(name);
      tracker.observe(name, st, now);
      const wait = tracker.readyIn(name, now);
      if (wait === 0) ready.push({ name, file, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino });
      else if (wait !== undefined) wakeInMs = Math.min(wakeInMs, wait);
    }
    tracker.retain(present);
    return { ready: ready.sort(byAgeThenName), wakeInMs: Math.max(5, Math.ceil(wakeInMs)) };
  }

  /** Takes a complete inbox file into processing (rename, fsync) and loads it; undefined when it could not be taken. */
  async #claim(entry: Listed, tracker: StabilityTracker): Promise<FrameInput | undefined> {
    const { processingDir, failedDir, dir, maxFileBytes } = this.#s;
    let taken: string;
    try {
      // The batch may be a while old (the consumer paces us): the file must still be what was judged complete.
      const st = await statIfThere(entry.file);
      if (st === undefined) {
        tracker.forget(entry.name);
        this.#log.warn({ file: entry.file }, 'file vanished from the hot folder before it was taken; skipped');
        return undefined;
      }
      if (!tracker.matches(entry.name, st)) {
        tracker.observe(entry.name, st, performance.now());
        return undefined;
      }
      if (st.size > maxFileBytes) {
        const moved = await moveNoClobber(entry.file, failedDir);
        await this.#sync(failedDir, dir);
        tracker.forget(entry.name);
        const err = new LinegateError('LG_ERR_SOURCE_FILE', [entry.file, `${st.size} bytes is more than maxFileBytes ${maxFileBytes}; moved unread to ${moved}`]);
        this.#log.error({ err, file: entry.file, bytes: st.size }, err.message);
        return undefined;
      }
      taken = await moveNoClobber(entry.file, processingDir);
      this.#unsettled.add(taken);
    } catch (e) {
      const code = errnoOf(e);
      const err = new LinegateError('LG_ERR_SOURCE_FILE', [entry.file, messageOf(e)], { cause: e });
      if (code === 'ENOENT') {
        tracker.forget(entry.name);
        this.#log.warn({ err, file: entry.file }, 'file vanished from the hot folder before it was taken; skipped');
      } else {
        tracker.backoff(entry.name, performance.now());
        this.#log.warn({ err, file: entry.file }, `${err.message}; will try again`);
      }
      return undefined;
    }
    tracker.forget(entry.name);
    // Durable before anyone sees the frame: a crash from here on finds the file in processing.
    await this.#sync(processingDir, dir);
    return this.#load(taken, entry);
  }

  /** Reads a file in processing into a frame whose settle finishes it; undefined (logged) when it cannot be read. */
  async #load(file: string, claimedAs?: Listed): Promise<FrameInput | undefined> {
    const name = path.basename(file);
    this.#unsettled.add(file);
    let data: Buffer;
    let mtimeMs: number;
    let size: number;
    try {
      const st = await fs.stat(file);
      if (claimedAs !== undefined && (st.size !== claimedAs.size || st.mtimeMs !== claimedAs.mtimeMs)) {
        this.#log.warn({ file, before: claimedAs.size, after: st.size }, 'file changed while it was taken: is a writer still writing it? (raise settleMs, or upload under a .part name)');
      }
      if (st.size > this.#s.maxFileBytes) throw new Error(`${st.size} bytes is more than maxFileBytes ${this.#s.maxFileBytes}`);
      mtimeMs = st.mtimeMs;
      size = st.size;
      data = await fs.readFile(file);
    } catch (e) {
      this.#unsettled.delete(file);
      const err = new LinegateError('LG_ERR_SOURCE_FILE', [file, messageOf(e)], { cause: e });
      if (errnoOf(e) === 'ENOENT') {
        this.#log.warn({ err, file }, 'file vanished from the processing folder; skipped');
      } else {
        this.#log.error({ err, file }, err.message);
        await this.#finish(file, this.#s.failedDir).catch((e2: unknown) => this.#log.error({ err: e2, file }, 'could not move the unreadable file to the failed folder'));
      }
      return undefined;
    }
    let settling: Promise<void> | undefined;
    const format = formatOf(name);
    return {
      ref: file,
      // The file's identity while it is in processing (a rename keeps name, size and mtime): yielded again
      // after a crash it gets the same result id, so the durable sinks keep its result once.
      key: `${name}|${size}|${mtimeMs}`,
      partId: splitName(name).stem,
      image: format === undefined ? { kind: 'encoded', data } : { kind: 'encoded', data, format },
      capturedAt: new Date(mtimeMs),
      // Once per frame, however often it is called; works after close too (the runtime drains after the source stops).
      settle: (result: InspectionResult): Promise<void> => (settling ??= this.#settle(file, result)),
    };
  }

  async #settle(file: string, result: InspectionResult): Promise<void> {
    const { after, doneDir, failedDir, processingDir } = this.#s;
    try {
      if (result.verdict === 'error') await this.#finish(file, failedDir);
      else if (after === 'delete') {
        await fs.unlink(file);
        await this.#sync(processingDir);
      } else await this.#finish(file, doneDir);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') {
        this.#log.warn({ file }, 'file was no longer in the processing folder when its result was final');
        return;
      }
      throw new LinegateError('LG_ERR_SOURCE_FILE', [file, `could not finish it: ${messageOf(e)}; it stays in processing and is inspected again on the next start`], { cause: e });
    } finally {
      this.#unsettled.delete(file);
    }
  }

  /** processing -> `destDir`, never over an older file, durably. */
  async #finish(file: string, destDir: string): Promise<void> {
    const target = await moveNoClobber(file, destDir);
    await this.#sync(destDir, path.dirname(file));
    this.#log.debug({ file: target }, 'file finished');
  }

  /** fsync of directories; a failure is logged (the move itself happened) rather than thrown. */
  async #sync(...dirs: string[]): Promise<void> {
    await Promise.all(dirs.map((d) => fsyncDir(d).catch((err: unknown) => this.#log.error({ err, dir: d }, 'cannot fsync folder; a crash now may undo the last move'))));
  }
}

async function prepareFolders(s: HotFolderSettings, ctx: PluginContext): Promise<void> {
  const bad = (field: string, why: string): LinegateError => new LinegateError('LG_ERR_STATION_STEP_CONFIG', [ctx.step, HOT_FOLDER_ID, field, why], { step: ctx.step });
  const inbox = await statIfThere(s.dir);
  if (inbox === undefined) throw new LinegateError('LG_ERR_SOURCE_NOT_FOUND', [s.dir], { step: ctx.step });
  if (!inbox.isDirectory()) throw bad('dir', `${s.dir} is not a folder`);
  const own = { processingDir: s.processingDir, doneDir: s.doneDir, failedDir: s.failedDir } as const;
  for (const [field, d] of Object.entries(own)) {
    // A finished file put back into the inbox, or a done file taken as unfinished, would be inspected again and again.
    if (d === s.dir) throw bad(field, 'must not be the hot folder itself');
    if (field !== 'processingDir' && d === s.processingDir) throw bad(field, 'must not be the processing folder');
    await fs.mkdir(d, { recursive: true });
    // Only a rename inside one file system is atomic; across two it fails (EXDEV).
    if ((await fs.stat(d)).dev !== inbox.dev) throw bad(field, `${d} must be on the same file system as ${s.dir}`);
  }
}

export const hotFolderSource = definePlugin({
  manifest: {
    id: HOT_FOLDER_ID,
    kind: 'source',
    description: 'Takes each complete new image a camera or FTP server drops into a folder exactly once, and moves it to done or failed (or deletes it) once its result is final.',
    config: HotFolderConfig,
    produces: [{ type: 'image/encoded' }],
  },
  async init(config, ctx) {
    const settings = resolveSettings(config, ctx);
    await prepareFolders(settings, ctx);
    ctx.log.info({ dir: settings.dir, processingDir: settings.processingDir, after: settings.after, settleMs: settings.settleMs }, 'hot folder ready');
    return new HotFolder(settings, ctx.log);
  },
});
