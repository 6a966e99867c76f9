import { EventEmitter } from 'node:events';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../runtime/contract.js';
import { LinegateError } from '../../runtime/errors.js';
import { nodeFileOps, type FileOps } from '../lib/file-ops.js';
import { LineFile, repairTail, writeError } from '../lib/line-file.js';
import { releaseLock, takeLock } from './spool-lock.js';
import { appendedAt, scan, type Scan, type SegmentView } from './spool-read.js';

/*
 * The durable spool between the station and Redis: an append-only log of JSON
 * lines in numbered segment files, fsync'd before an append resolves, read in
 * order by the forwarder, which moves a cursor (written atomically) past what
 * Redis has taken. An append is kept whole or not at all: a failed or short
 * write is cut back, so a full disk costs the records it refused and nothing
 * after. A kill -9 can tear only the last line of the last segment; opening
 * repairs that. A line that is not a record is quarantined once and skipped.
 * Bounded by size, with an alarm before it is full.
 */

export interface SpoolRecord {
  readonly queue: string;
  readonly id: string;
  readonly data: unknown;
  /**
   * When append() took it (ms since the epoch), written first on its line. It travels with the
   * record so that the age of the oldest waiting record stays true across restarts.
   */
  readonly at?: number;
}

/** The largest record an append takes by default (its JSON line): an image inlined at the 4 MiB limit fits. */
export const DEFAULT_MAX_RECORD_BYTES = 8 * 1024 * 1024;

export interface SpoolOptions {
  readonly maxBytes: number;
  /** A new segment starts past this size; consumed segments are deleted whole. */
  readonly segmentBytes?: number;
  /** The longest record line append() takes; the reader reads lines up to this long. */
  readonly maxRecordBytes?: number;
  readonly log: Logger;
  /** What appends, the cursor and the quarantine are written through (a test hands in a failing disk). */
  readonly ops?: FileOps;
}

export interface Position {
  readonly segment: number;
  readonly offset: number;
}

export interface SpoolBatch {
  readonly records: readonly SpoolRecord[];
  /** Commit this once the records are safe elsewhere (at once when there are none: a bad line was quarantined). */
  readonly end: Position;
}

export interface SpoolEvents {
  /** Filling up: `alarm` past 80 %, `full` when a record was refused, `clear` back under 50 %. */
  level: [state: 'alarm' | 'full' | 'clear', pendingBytes: number];
  /** Appends fail (`failing`, with the cause: a full disk) or work again (`ok`). */
  writes: [state: 'failing' | 'ok', cause: LinegateError | undefined];
}

const SEGMENT_BYTES = 8 * 1024 * 1024;
const segName = (n: number): string => `${String(n).padStart(12, '0')}.jsonl`;

const isPosition = (v: unknown): v is Position =>
  typeof v === 'object' && v !== null && Number.isInteger((v as Position).segment) && Number.isInteger((v as Position).offset) && (v as Position).offset >= 0;

export class Spool extends EventEmitter<SpoolEvents> {
  readonly dir: string;
  readonly #o: Required<SpoolOptions>;
  #segments: number[] = [];
  /** Kept bytes of each segment but the one being written (its writer knows its own). */
  readonly #sizes = new Map<number, number>();
  #cursor: Position = { segment: 1, offset: 0 };
  #writer: { readonly segment: number; readonly file: LineFile } | undefined;
  #waiting: { line: string; at: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  #waitingBytes = 0;
  #flushing: Promise<void> | undefined;
  #level: 'clear' | 'alarm' | 'full' = 'clear';
  #writeFault: LinegateError | undefined;
  #quarantine: LineFile | undefined;
  /** Lines quarantined by this process (segment:offset): each goes to quarantine.jsonl once, however often it is read. */
  readonly #quarantined = new Set<string>();
  #closing: Promise<void> | undefined;
  /**
   * When the record at the cursor was appended; undefined exactly while nothing kept waits. Learnt
   * from the appends while the spool is empty and from one short read at the cursor after each
   * commit (and at open), never by scanning the backlog.
   */
  #oldestAt: number | undefined;

  private constructor(dir: string, o: SpoolOptions) {
    super();
    this.dir = dir;
    this.#o = { segmentBytes: SEGMENT_BYTES, maxRecordBytes: DEFAULT_MAX_RECORD_BYTES, ops: nodeFileOps, ...o };
  }

  static async open(dir: string, o: SpoolOptions): Promise<Spool> {
    const abs = path.resolve(dir);
    await mkdir(abs, { recursive: true });
    await takeLock(abs);
    const s = new Spool(abs, o);
    try {
      await s.#recover();
    } catch (e) {
      await s.close();
      throw e;
    }
    return s;
  }

  /** Bytes appended and not yet committed past. */
  get pendingBytes(): number {
    let bytes = (this.#writer?.file.size ?? 0) + this.#waitingBytes - this.#cursor.offset;
    for (const n of this.#segments) if (n !== this.#writer?.segment) bytes += this.#sizes.get(n) ?? 0;
    return bytes;
  }

  get empty(): boolean {
    return this.pendingBytes === 0;
  }

  /** When the oldest record not yet committed past was appended (ms since the epoch); undefined when none waits. */
  get oldestPendingAt(): number | undefined {
    return this.#oldestAt;
  }

  /** Seconds the oldest waiting record has waited; 0 when none waits (a clock set back never makes it negative). */
  oldestPendingAgeS(now = Date.now()): number {
    return this.#oldestAt === undefined ? 0 : Math.max(0, now - this.#oldestAt) / 1000;
  }

  /** Why appends fail now (a full disk), or undefined while they work. */
  get writeFault(): LinegateError | undefined {
    return this.#writeFault;
  }

  get maxRecordBytes(): number {
    return this.#o.maxRecordBytes;
  }

  /**
   * Resolves once the record is on disk (fsync'd); records from concurrent calls share one fsync.
   * A record longer than `maxRecordBytes` is refused here, never written: no reader would take it.
   */
  append(record: SpoolRecord): Promise<void> {
    if (this.#closing !== undefined) return Promise.reject(new LinegateError('LG_ERR_QUEUE_SPOOL_FULL', [this.dir, this.pendingBytes, this.#o.maxBytes, `${record.queue} ${record.id} (the spool is closed)`]));
    const at = record.at ?? Date.now();
    // `at` first: the age of a waiting record is read from the head of its line alone (appendedAt).
    const line = `${JSON.stringify({ at, queue: record.queue, id: record.id, data: record.data })}\n`;
    const bytes = Buffer.byteLength(line);
    if (bytes > this.#o.maxRecordBytes) return Promise.reject(new LinegateError('LG_ERR_QUEUE_RECORD_TOO_LARGE', [record.id, record.queue, bytes, this.#o.maxRecordBytes]));
    if (this.pendingBytes + bytes > this.#o.maxBytes) {
      this.#setLevel('full');
      return Promise.reject(new LinegateError('LG_ERR_QUEUE_SPOOL_FULL', [this.dir, this.pendingBytes, this.#o.maxBytes, `${record.queue} ${record.id}`]));
    }
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ line, at, resolve, reject });
      this.#waitingBytes += bytes;
      this.#flushing ??= this.#flush();
    });
  }

  /**
   * Up to `max` records after the cursor, oldest first; undefined when there are none. A line that
   * is not a record comes back as an empty batch past it, once it is quarantined: commit that.
   */
  async read(max: number): Promise<SpoolBatch | undefined> {
    const found = await scan(this.#view(), this.#cursor, max, this.#o.maxRecordBytes);
    if (found === undefined) return undefined;
    if (found.kind === 'records') return { records: found.records, end: found.end };
    await this.#quarantineLine(found);
    return { records: [], end: found.end };
  }

  /** Moves the cursor past a batch the forwarder has delivered, durably; deletes segments wholly behind it. */
  async commit(end: Position): Promise<void> {
    await this.#o.ops.replaceFile(path.join(this.dir, 'cursor.json'), JSON.stringify(end));
    // The rename is durable only once the folder is: without this a power loss could bring back the old cursor.
    await this.#o.ops.fsyncDir(this.dir);
    for (const n of this.#segments.filter((s) => s < end.segment)) {
      await rm(path.join(this.dir, segName(n)), { force: true });
      this.#sizes.delete(n);
    }
    this.#segments = this.#segments.filter((s) => s >= end.segment);
    this.#cursor = end;
    if (this.#level !== 'clear' && this.pendingBytes < this.#o.maxBytes / 2) this.#setLevel('clear');
    await this.#learnOldest();
  }

  /** Waits for appends in progress, then releases the folder; idempotent. */
  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      while (this.#flushing !== undefined) await this.#flushing;
      await this.#writer?.file.close();
      await this.#quarantine?.close();
      await releaseLock(this.dir);
    })());
  }

  /** Bytes kept on disk past the cursor (appends still being written left out). */
  #keptPending(): number {
    return this.pendingBytes - this.#waitingBytes;
  }

  /**
   * Reads when the record now at the cursor was appended: one short read. A line without `at`
   * (written by a linegate before it was recorded, or not a record at all) counts from its
   * segment file's creation time where the file system keeps one, else its last change: the
   * closest the disk knows.
   */
  async #learnOldest(): Promise<void> {
    if (this.#keptPending() === 0) {
      this.#oldestAt = undefined;
      return;
    }
    const found = await appendedAt(this.#view(), this.#cursor).catch(() => undefined);
    if (found === undefined) {
      this.#oldestAt ??= Date.now();
      return;
    }
    this.#oldestAt = found.at ?? (await stat(found.file).then((s) => Math.min(s.mtimeMs, s.birthtimeMs > 0 ? s.birthtimeMs : Infinity)).catch(() => this.#oldestAt ?? Date.now()));
  }

  #view(): SegmentView {
    return {
      segments: this.#segments,
      file: (n) => path.join(this.dir, segName(n)),
      // Only what was written whole and fsync'd: a reader never sees half an append.
      end: async (n) => (n === this.#writer?.segment ? this.#writer.file.size : (this.#sizes.get(n) ?? 0)),
    };
  }

  async #flush(): Promise<void> {
    try {
      while (this.#waiting.length > 0) {
        const batch = this.#waiting;
        this.#waiting = [];
        const data = Buffer.from(batch.map((w) => w.line).join(''));
        try {
          const w = this.#writer;
          if (w === undefined || w.file.size >= this.#o.segmentBytes || w.file.broken !== undefined) await this.#rotate();
          await this.#writer!.file.append(data);
          this.#waitingBytes -= data.byteLength;
          // Nothing kept was waiting before this batch (else #oldestAt is set): its first record is the oldest.
          this.#oldestAt ??= batch[0]!.at;
          this.#setWriteFault(undefined);
          for (const x of batch) x.resolve();
        } catch (e) {
          this.#waitingBytes -= data.byteLength;
          // Cut back to the last good offset by the line file: each caller learns its record is not kept, and nothing else is lost.
          const err = writeError(this.#writer?.file.file ?? this.dir, e);
          this.#setWriteFault(err);
          for (const x of batch) x.reject(err);
        }
        if (this.#level === 'clear' && this.pendingBytes > this.#o.maxBytes * 0.8) this.#setLevel('alarm');
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  /** Starts the next segment (also when the current one has a failed append it could not cut back). */
  async #rotate(): Promise<void> {
    const old = this.#writer;
    if (old !== undefined) {
      this.#sizes.set(old.segment, old.file.size);
      this.#writer = undefined;
      await old.file.close();
    }
    const next = (this.#segments.at(-1) ?? this.#cursor.segment - 1) + 1;
    const { file } = await LineFile.open(path.join(this.dir, segName(next)), this.#o.ops);
    this.#segments.push(next);
    this.#writer = { segment: next, file };
  }

  async #quarantineLine(found: Exclude<Scan, { kind: 'records' }>): Promise<void> {
    const key = `${found.at.segment}:${found.at.offset}`;
    if (this.#quarantined.has(key)) return;
    const where = { spool: this.dir, segment: segName(found.at.segment), offset: found.at.offset };
    // A line too long to copy whole is noted with its place, size and head: the quarantine stays one line per finding.
    const line = found.kind === 'bad' ? found.text : JSON.stringify({ quarantined: found.why, ...where, bytes: found.bytes, head: found.head });
    this.#quarantine ??= (await LineFile.open(path.join(this.dir, 'quarantine.jsonl'), this.#o.ops)).file;
    await this.#quarantine.append(Buffer.from(`${line}\n`));
    this.#quarantined.add(key);
    const err = new LinegateError('LG_ERR_QUEUE_SPOOL_CORRUPT', [this.dir, `${found.why} in ${where.segment} at ${where.offset}; moved to quarantine.jsonl and skipped`]);
    this.#o.log.error({ err, code: err.code, ...where, bytes: found.kind === 'bad' ? Buffer.byteLength(found.text) : found.bytes }, err.message);
  }

  /** Learns the segments and the cursor; trims torn tails; reopens the last segment for appends. */
  async #recover(): Promise<void> {
    const names = (await readdir(this.dir)).filter((n) => /^\d{12}\.jsonl$/.test(n)).sort();
    this.#segments = names.map((n) => Number(n.slice(0, 12)));
    const cursor = await this.#readCursor();
    if (cursor !== undefined) this.#cursor = cursor;
    else if (this.#segments.length > 0) this.#cursor = { segment: this.#segments[0]!, offset: 0 };
    if (!this.#segments.includes(this.#cursor.segment)) {
      // Its segment is gone: the next one that is there, or a fresh one after it (never one the cursor points into).
      const c = this.#cursor;
      this.#cursor = { segment: this.#segments.find((n) => n > c.segment) ?? (c.offset > 0 ? c.segment + 1 : c.segment), offset: 0 };
    }
    // Segments wholly behind the cursor were consumed; a crash between the cursor write and their removal leaves them.
    for (const n of this.#segments.filter((s) => s < this.#cursor.segment)) await rm(path.join(this.dir, segName(n)), { force: true });
    this.#segments = this.#segments.filter((s) => s >= this.#cursor.segment);
    for (const n of this.#segments) {
      const file = path.join(this.dir, segName(n));
      const { size, cut } = await repairTail(file);
      if (cut > 0) this.#o.log.warn({ file, cutBytes: cut }, 'spool segment ended in a torn line (the process died mid-append); it was cut off');
      this.#sizes.set(n, size);
    }
    const last = this.#segments.at(-1);
    if (last !== undefined) {
      const { file } = await LineFile.open(path.join(this.dir, segName(last)), this.#o.ops);
      this.#sizes.delete(last);
      this.#writer = { segment: last, file };
      const pending = this.pendingBytes;
      await this.#learnOldest();
      if (pending > 0) this.#o.log.info({ spool: this.dir, pendingBytes: pending, oldestAt: this.#oldestAt === undefined ? undefined : new Date(this.#oldestAt).toISOString() }, 'spool holds records from an earlier run; they are sent first');
    }
  }

  /** The committed position; undefined when there is none, or it is unreadable (that costs a resend, which BullMQ drops by job id, never a loss). */
  async #readCursor(): Promise<Position | undefined> {
    const text = await readFile(path.join(this.dir, 'cursor.json'), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      if (isPosition(parsed)) return parsed;
    } catch {
      // reported below
    }
    this.#o.log.error({ spool: this.dir, cursor: text.slice(0, 200) }, 'spool cursor is unreadable; sending again from the oldest segment');
    return undefined;
  }

  #setWriteFault(err: LinegateError | undefined): void {
    const was = this.#writeFault;
    if (err?.code === was?.code) return;
    this.#writeFault = err;
    // The refused appends reach the station as failed writes, which it logs once per state: no second line here.
    this.#o.log.debug({ err, spool: this.dir, was: was?.code }, err === undefined ? 'spool writes again' : 'spool cannot write');
    this.emit('writes', err === undefined ? 'ok' : 'failing', err);
  }

  #setLevel(level: 'alarm' | 'full' | 'clear'): void {
    if (level === this.#level) return;
    this.#level = level;
    const ctx = { spool: this.dir, pendingBytes: this.pendingBytes, maxBytes: this.#o.maxBytes };
    if (level === 'full') this.#o.log.error(ctx, 'SPOOL FULL: new queue records are refused until Redis takes the backlog');
    else if (level === 'alarm') this.#o.log.warn(ctx, 'spool is over 80 % full: Redis has been unreachable for a long time');
    else this.#o.log.info(ctx, 'spool is below 50 % again');
    this.emit('level', level, this.pendingBytes);
  }
}
