import fs from 'node:fs/promises';
import type { Position, SpoolRecord } from './spool.js';

/*
 * Reading the spool's lines from a position, pure of any state: what the
 * forwarder gets next. A line that is not a record, or one longer than any
 * append may write, ends the scan at its start; the spool quarantines it and
 * moves past it.
 */

/** One kind of thing found at a position. */
export type Scan =
  | { readonly kind: 'records'; readonly records: readonly SpoolRecord[]; readonly end: Position }
  | { readonly kind: 'bad'; readonly at: Position; readonly end: Position; readonly text: string; readonly why: string }
  | { readonly kind: 'long'; readonly at: Position; readonly end: Position; readonly bytes: number; readonly head: string; readonly why: string };

export interface SegmentView {
  /** Segment numbers on disk, oldest first. */
  readonly segments: readonly number[];
  file(segment: number): string;
  /** Where the kept bytes of `segment` end: past this nothing was fsync'd as a whole append. */
  end(segment: number): Promise<number>;
}

const READ_CHUNK = 1024 * 1024;
/** How much of a line too long to be a record is kept in its quarantine note. */
const HEAD_BYTES = 4096;

export async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function parse(text: string): SpoolRecord | string {
  try {
    const r = JSON.parse(text) as Partial<SpoolRecord> | null;
    if (r !== null && typeof r === 'object' && typeof r.queue === 'string' && typeof r.id === 'string') return r as SpoolRecord;
    return 'not a spool record';
  } catch (e) {
    return `not JSON (${e instanceof Error ? e.message : String(e)})`;
  }
}

/**
 * Up to `max` records from `from` on, oldest first; stops before a bad or long line (returned on
 * its own when it comes first, so that it is dealt with once). Undefined when nothing is there.
 * A line may be up to `maxLine` bytes; the reader reads in 1 MiB chunks and only reads more for a
 * line that needs it.
 */
export async function scan(view: SegmentView, from: Position, max: number, maxLine: number): Promise<Scan | undefined> {
  let pos = from;
  const records: SpoolRecord[] = [];
  const done = (): Scan | undefined => (records.length === 0 && pos === from ? undefined : { kind: 'records', records, end: pos });
  while (records.length < max) {
    if (!view.segments.includes(pos.segment)) break;
    const end = await view.end(pos.segment);
    if (pos.offset >= end) {
      const next = view.segments.find((n) => n > pos.segment);
      if (next === undefined) break;
      pos = { segment: next, offset: 0 };
      continue;
    }
    const file = view.file(pos.segment);
    let chunk = await readAt(file, pos.offset, Math.min(READ_CHUNK, end - pos.offset));
    // A record larger than a chunk: read it whole, up to the longest line an append may write.
    if (chunk.indexOf(10) === -1 && chunk.length < end - pos.offset) chunk = await readAt(file, pos.offset, Math.min(maxLine + 1, end - pos.offset));
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1 && records.length < max; nl = chunk.indexOf(10, start)) {
      const text = chunk.subarray(start, nl).toString('utf8');
      const rec = parse(text);
      if (typeof rec === 'string') {
        if (records.length > 0) return { kind: 'records', records, end: { segment: pos.segment, offset: pos.offset + start } };
        return { kind: 'bad', at: pos, end: { segment: pos.segment, offset: pos.offset + nl + 1 }, text, why: rec };
      }
      records.push(rec);
      start = nl + 1;
    }
    if (start === 0) {
      if (records.length > 0) return done();
      // No newline within any record's length (or none before the kept end): not a record; skip to its end.
      const stop = await lineEnd(file, pos.offset + chunk.length, end);
      const why = chunk.length > maxLine ? `a line longer than ${maxLine} bytes` : 'bytes without a newline before the end of the kept data';
      return { kind: 'long', at: pos, end: { segment: pos.segment, offset: stop }, bytes: stop - pos.offset, head: chunk.subarray(0, HEAD_BYTES).toString('utf8'), why };
    }
    pos = { segment: pos.segment, offset: pos.offset + start };
  }
  return done();
}

/** The offset just past the next newline at or after `from`, or `end` when there is none before it. */
async function lineEnd(file: string, from: number, end: number): Promise<number> {
  for (let at = from; at < end; ) {
    const chunk = await readAt(file, at, Math.min(READ_CHUNK, end - at));
    if (chunk.length === 0) break;
    const nl = chunk.indexOf(10);
    if (nl !== -1) return at + nl + 1;
    at += chunk.length;
  }
  return end;
}

/** Enough of a line's head to hold `{"at":<ms>,`. */
const HEAD_AT_BYTES = 64;
const AT = /^\{"at":(\d{1,15})[,}]/;

/**
 * When the record at `pos` was appended, from the head of its line: undefined `at` for a line
 * that does not start with it (an older spool, a bad line); undefined when no kept line is there.
 */
export async function appendedAt(view: SegmentView, pos: Position): Promise<{ readonly at: number | undefined; readonly file: string } | undefined> {
  for (let p: Position | undefined = pos; p !== undefined; ) {
    if (!view.segments.includes(p.segment)) return undefined;
    const end = await view.end(p.segment);
    if (p.offset >= end) {
      const segment: number = p.segment;
      const next: number | undefined = view.segments.find((n) => n > segment);
      p = next === undefined ? undefined : { segment: next, offset: 0 };
      continue;
    }
    const file = view.file(p.segment);
    const head = (await readAt(file, p.offset, Math.min(HEAD_AT_BYTES, end - p.offset))).toString('latin1');
    const m = AT.exec(head);
    return { at: m === null ? undefined : Number(m[1]), file };
  }
  return undefined;
}
