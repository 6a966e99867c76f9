import { EventEmitter } from 'node:events';
import { appendFile, mkdir, open, readFile, readdir, rename, rm, stat, truncate, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';

/*
 * The durable spool between the station and Redis: an append-only log of JSON
 * lines in numbered segment files, fsync'd before an append resolves, read in
 * order by the forwarder, which moves a cursor (written atomically) past what
 * Redis has taken. A kill -9 can tear only the last line of the last segment;
 * opening repairs that. Bounded by size, with an alarm before it is full.
 */

export interface SpoolRecord {
  readonly queue: string;
  readonly id: string;
  readonly data: unknown;
}

export interface SpoolOptions {
  readonly maxBytes: number;
  /** A new segment starts past this size; consumed segments are deleted whole. */
  readonly segmentBytes?: number;
  readonly log: Logger;
}

export interface Position {
  readonly segment: number;
  readonly offset: number;
}

export interface SpoolBatch {
  readonly records: readonly SpoolRecord[];
  /** Commit this once the records are safe elsewhere. */
  readonly end: Position;
}

export interface SpoolEvents {
  /** Filling up: `alarm` past 80 %, `full` when a record was refused, `clear` back under 50 %. */
  level: [state: 'alarm' | 'full' | 'clear', pendingBytes: number];
}

const SEGMENT_BYTES = 8 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024;
const segName = (n: number): string => `${String(n).padStart(12, '0')}.jsonl`;
/** Spools open in this process: a second open of the same folder is refused like another process's. */
const openHere = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class Spool extends EventEmitter<SpoolEvents> {
  readonly dir: string;
  readonly #o: Required<SpoolOptions>;
  #segments: number[] = [];
  /** Bytes in the segments on disk; the first of them is consumed up to the cursor's offset. */
  #diskBytes = 0;
  #cursor: Position = { segment: 1, offset: 0 };
  #writer: FileHandle | undefined;
  #writerSize = 0;
  #waiting: { line: string; resolve: () => void; reject: (e: unknown) => void }[] = [];
  #waitingBytes = 0;
  #flushing: Promise<void> | undefined;
  #level: 'clear' | 'alarm' | 'full' = 'clear';
  #closing: Promise<void> | undefined;

  private constructor(dir: string, o: SpoolOptions) {
    super();
    this.dir = dir;
    this.#o = { segmentBytes: SEGMENT_BYTES, ...o };
  }

  static async open(dir: string, o: SpoolOptions): Promise<Spool> {
    const abs = path.resolve(dir);
    await mkdir(abs, { recursive: true });
    await lock(abs);
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
    return this.#diskBytes - this.#cursor.offset + this.#waitingBytes;
  }

  get empty(): boolean {
    return this.pendingBytes === 0;
  }

  /** Resolves once the record is on disk (fsync'd); records from concurrent calls share one fsync. */
  append(record: SpoolRecord): Promise<void> {
    if (this.#closing !== undefined) return Promise.reject(new LinegateError('LG_ERR_QUEUE_SPOOL_FULL', [this.dir, this.pendingBytes, this.#o.maxBytes, `${record.queue} ${record.id} (the spool is closed)`]));
    const line = `${JSON.stringify(record)}\n`;
    const bytes = Buffer.byteLength(line);
    if (this.pendingBytes + bytes > this.#o.maxBytes) {
      this.#setLevel('full');
      return Promise.reject(new LinegateError('LG_ERR_QUEUE_SPOOL_FULL', [this.dir, this.pendingBytes, this.#o.maxBytes, `${record.queue} ${record.id}`]));
    }
    return new Promise<void>((resolve, reject) => {
      this.#waiting.push({ line, resolve, reject });
      this.#waitingBytes += bytes;
      this.#flushing ??= this.#flush();
    });
  }

  /** Up to `max` records after the cursor, oldest first; undefined when there are none. */
  async read(max: number): Promise<SpoolBatch | undefined> {
    let pos = this.#cursor;
    const records: SpoolRecord[] = [];
    while (records.length < max) {
      if (!this.#segments.includes(pos.segment)) break;
      const file = path.join(this.dir, segName(pos.segment));
      const size = pos.segment === this.#segments.at(-1) ? this.#writerSize : (await stat(file)).size;
      if (pos.offset >= size) {
        const next = this.#segments.find((n) => n > pos.segment);
        if (next === undefined) break;
        pos = { segment: next, offset: 0 };
        continue;
      }
      const chunk = await readAt(file, pos.offset, Math.min(READ_CHUNK, size - pos.offset));
      let start = 0;
      for (let nl = chunk.indexOf(10); nl !== -1 && records.length < max; nl = chunk.indexOf(10, start)) {
        const text = chunk.subarray(start, nl).toString('utf8');
        start = nl + 1;
        const rec = await this.#parse(text, pos.segment);
        if (rec !== undefined) records.push(rec);
      }
      if (start === 0) throw new LinegateError('LG_ERR_QUEUE_SPOOL_CORRUPT', [this.dir, `a line in ${segName(pos.segment)} is longer than ${READ_CHUNK} bytes`]);
      pos = { segment: pos.segment, offset: pos.offset + start };
    }
    return records.length === 0 && pos === this.#cursor ? undefined : { records, end: pos };
  }

  /** Moves the cursor past a batch the forwarder has delivered, durably; deletes segments wholly behind it. */
  async commit(end: Position): Promise<void> {
    const tmp = path.join(this.dir, 'cursor.json.tmp');
    await writeFile(tmp, JSON.stringify(end), { flush: true });
    await rename(tmp, path.join(this.dir, 'cursor.json'));
    for (const n of this.#segments.filter((s) => s < end.segment)) {
      const file = path.join(this.dir, segName(n));
      this.#diskBytes -= (await stat(file)).size;
      await rm(file, { force: true });
    }
    this.#segments = this.#segments.filter((s) => s >= end.segment);
    this.#cursor = end;
    if (this.#level !== 'clear' && this.pendingBytes < this.#o.maxBytes / 2) this.#setLevel('clear');
  }

  /** Waits for appends in progress, then releases the folder; idempotent. */
  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      while (this.#flushing !== undefined) await this.#flushing;
      await this.#writer?.close().catch(() => undefined);
      this.#writer = undefined;
      openHere.delete(this.dir);
      await rm(path.join(this.dir, 'lock'), { force: true });
    })());
  }

  async #flush(): Promise<void> {
    try {
      while (this.#waiting.length > 0) {
        const batch = this.#waiting;
        this.#waiting = [];
        const data = batch.map((w) => w.line).join('');
        const bytes = Buffer.byteLength(data);
        try {
          if (this.#writer === undefined || this.#writerSize >= this.#o.segmentBytes) await this.#rotate();
          await this.#writer!.write(data);
          await this.#writer!.datasync();
          this.#writerSize += bytes;
          this.#diskBytes += bytes;
          this.#waitingBytes -= bytes;
          for (const w of batch) w.resolve();
        } catch (e) {
          this.#waitingBytes -= bytes;
          // A partly written batch leaves a torn line; the next open trims it. Each caller learns its record is not kept.
          const err = new LinegateError('LG_ERR_QUEUE_SPOOL_CORRUPT', [this.dir, `append failed: ${messageOf(e)}`], { cause: e });
          for (const w of batch) w.reject(err);
        }
        if (this.#level === 'clear' && this.pendingBytes > this.#o.maxBytes * 0.8) this.#setLevel('alarm');
      }
    } finally {
      this.#flushing = undefined;
    }
  }

  async #rotate(): Promise<void> {
    await this.#writer?.close();
    const next = (this.#segments.at(-1) ?? this.#cursor.segment - 1) + 1;
    this.#writer = await open(path.join(this.dir, segName(next)), 'a');
    this.#segments.push(next);
    this.#writerSize = 0;
  }

  /** Learns the segments and the cursor; trims a torn last line; reopens the last segment for appends. */
  async #recover(): Promise<void> {
    const names = (await readdir(this.dir)).filter((n) => /^\d{12}\.jsonl$/.test(n)).sort();
    this.#segments = names.map((n) => Number(n.slice(0, 12)));
    const cursorText = await readFile(path.join(this.dir, 'cursor.json'), 'utf8').catch(() => undefined);
    if (cursorText !== undefined) this.#cursor = JSON.parse(cursorText) as Position;
    else if (this.#segments.length > 0) this.#cursor = { segment: this.#segments[0]!, offset: 0 };
    // Segments wholly behind the cursor were consumed; a crash between the cursor write and their removal leaves them.
    for (const n of this.#segments.filter((s) => s < this.#cursor.segment)) await rm(path.join(this.dir, segName(n)), { force: true });
    this.#segments = this.#segments.filter((s) => s >= this.#cursor.segment);
    const first = this.#segments[0];
    if (first !== undefined && first !== this.#cursor.segment) this.#cursor = { segment: first, offset: 0 };
    this.#diskBytes = 0;
    for (const n of this.#segments) {
      const file = path.join(this.dir, segName(n));
      const size = await trimTornTail(file, this.#o.log);
      this.#diskBytes += size;
      if (n === this.#segments.at(-1)) this.#writerSize = size;
    }
    if (this.#segments.length > 0) {
      this.#writer = await open(path.join(this.dir, segName(this.#segments.at(-1)!)), 'a');
      const pending = this.pendingBytes;
      if (pending > 0) this.#o.log.info({ spool: this.dir, pendingBytes: pending }, 'spool holds records from an earlier run; they are sent first');
    }
  }

  async #parse(text: string, segment: number): Promise<SpoolRecord | undefined> {
    try {
      const r = JSON.parse(text) as SpoolRecord;
      if (typeof r.queue === 'string' && typeof r.id === 'string') return r;
    } catch {
      // fall through: quarantined below
    }
    // Not a record: kept aside for a human, never silently dropped, and the drain goes on.
    await appendFile(path.join(this.dir, 'quarantine.jsonl'), `${text}\n`, { flush: true });
    this.#o.log.error({ spool: this.dir, segment: segName(segment), bytes: text.length }, 'spool line is not a record; moved to quarantine.jsonl');
    return undefined;
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

async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** A crash mid-append leaves a last line without its newline: cut it off (its append never resolved). */
async function trimTornTail(file: string, log: Logger): Promise<number> {
  const data = await readFile(file);
  if (data.length === 0 || data[data.length - 1] === 10) return data.length;
  const keep = data.lastIndexOf(10) + 1;
  await truncate(file, keep);
  log.warn({ file, cutBytes: data.length - keep }, 'spool segment ended in a torn line (the process died mid-append); it was cut off');
  return keep;
}

async function lock(dir: string): Promise<void> {
  const file = path.join(dir, 'lock');
  if (openHere.has(dir)) throw new LinegateError('LG_ERR_QUEUE_SPOOL_LOCKED', [dir, process.pid]);
  const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) throw new LinegateError('LG_ERR_QUEUE_SPOOL_LOCKED', [dir, holder]);
  // No holder, or a dead one (kill -9 leaves its lock behind): take it.
  await writeFile(file, String(process.pid), { flush: true });
  openHere.add(dir);
}
