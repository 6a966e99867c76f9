import fs from 'node:fs/promises';
import { errnoOf } from '../lib/file-ops.js';

/*
 * The result ids already in a results file. A part re-inspected after a crash
 * (its source yields it again, under the same result id: see the contract's
 * FrameInput.key) must not become a second line. Only the tail is read: the
 * parts a crash can leave unsettled were written last, within the station's
 * settleQueueSize of the end.
 */

/** How much of each file's end is read for ids at start: far more than the parts a crash can leave unsettled. */
export const SEEN_SCAN_BYTES = 64 * 1024 * 1024;

const CHUNK = 1024 * 1024;
/** JSON.stringify writes the result's own `resultId` before any nested object that could hold another. */
const RESULT_ID = /"resultId":"([^"]+)"/;

/** Adds to `into` the result id of every complete line in the last `bytes` of `file` (none when it does not exist). */
export async function collectResultIds(file: string, into: Set<string>, bytes = SEEN_SCAN_BYTES): Promise<void> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return;
    throw e;
  }
  try {
    const { size } = await fh.stat();
    let at = Math.max(0, size - bytes);
    let carry = '';
    // Starting mid-file, the first piece is part of a line whose head was not read: skip it.
    let skipFirst = at > 0;
    while (at < size) {
      const buf = Buffer.alloc(Math.min(CHUNK, size - at));
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      if (bytesRead === 0) break;
      at += bytesRead;
      const lines = (carry + buf.subarray(0, bytesRead).toString('utf8')).split('\n');
      carry = lines.pop() ?? '';
      for (const line of skipFirst ? lines.slice(1) : lines) {
        const m = RESULT_ID.exec(line);
        if (m !== null) into.add(m[1]!);
      }
      if (lines.length > 0) skipFirst = false;
    }
  } finally {
    await fh.close();
  }
}
