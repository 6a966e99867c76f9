import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { LinegateError } from '../../runtime/errors.js';
import { errnoOf } from '../lib/file-ops.js';

/*
 * One spool, one process. A PID alone does not name a process for long: after
 * a reboot a live process (anything) can have the PID the dead station had,
 * and a station that trusted it would refuse to start for good. So the lock
 * names the process by PID, boot id and start time (from /proc), the way
 * systemd and procps tell processes apart; a lock whose holder is not that
 * exact process is stale and taken over.
 */

export interface LockHolder {
  readonly pid: number;
  /** /proc/sys/kernel/random/boot_id when the lock was taken: another boot means a dead holder. */
  readonly bootId?: string;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot): a reused PID starts at another time. */
  readonly startTime?: string;
}

/** Spools open in this process: a second open of the same folder is refused like another process's. */
const openHere = new Set<string>();

export function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined; // not Linux: the PID check alone
  }
}

/** The start time of process `pid`, or undefined when it does not exist or /proc is not there. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoOf(e) === 'EPERM';
  }
}

/** This process, as a lock names it. */
export function self(): LockHolder {
  const b = bootId();
  const t = startTimeOf(process.pid);
  return { pid: process.pid, ...(b === undefined ? {} : { bootId: b }), ...(t === undefined ? {} : { startTime: t }) };
}

/** Whether the process a lock names is still the one running: same PID, same boot, same start. */
export function holds(h: LockHolder, bootedAtMs: number | undefined, lockMtimeMs: number): boolean {
  if (!Number.isInteger(h.pid) || h.pid <= 0 || h.pid === process.pid || !alive(h.pid)) return false;
  if (h.bootId !== undefined) {
    const now = bootId();
    if (now !== undefined && now !== h.bootId) return false;
  } else if (bootedAtMs !== undefined && lockMtimeMs < bootedAtMs) {
    return false; // a bare-PID lock (an older linegate) written before this boot
  }
  if (h.startTime !== undefined) {
    const now = startTimeOf(h.pid);
    if (now !== undefined && now !== h.startTime) return false;
  }
  return true;
}

function bootedAtMs(): number | undefined {
  try {
    const up = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    return Number.isFinite(up) ? Date.now() - up * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function parse(text: string): LockHolder {
  const t = text.trim();
  if (/^\d+$/.test(t)) return { pid: Number(t) }; // the older format: the PID alone
  try {
    const h = JSON.parse(t) as Partial<LockHolder>;
    return { pid: Number(h.pid), ...(typeof h.bootId === 'string' ? { bootId: h.bootId } : {}), ...(typeof h.startTime === 'string' ? { startTime: h.startTime } : {}) };
  } catch {
    return { pid: 0 }; // torn or foreign: nobody holds it
  }
}

/**
 * Takes `<dir>/lock` for this process: created exclusively (two stations starting at once cannot
 * both win), or taken over when the holder it names is gone.
 */
export async function takeLock(dir: string): Promise<void> {
  if (openHere.has(dir)) throw new LinegateError('LG_ERR_QUEUE_SPOOL_LOCKED', [dir, process.pid]);
  const file = path.join(dir, 'lock');
  const me = `${JSON.stringify(self())}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await fs.open(file, 'wx');
      try {
        await fh.writeFile(me);
        await fh.sync();
      } finally {
        await fh.close();
      }
      openHere.add(dir);
      return;
    } catch (e) {
      if (errnoOf(e) !== 'EEXIST') throw e;
    }
    const [text, st] = await Promise.all([fs.readFile(file, 'utf8').catch(() => ''), fs.stat(file).catch(() => undefined)]);
    const holder = parse(text);
    if (st !== undefined && holds(holder, bootedAtMs(), st.mtimeMs)) throw new LinegateError('LG_ERR_QUEUE_SPOOL_LOCKED', [dir, holder.pid]);
    // A dead holder (kill -9, a reboot): its lock goes, and the exclusive create is tried again.
    await fs.rm(file, { force: true });
  }
  throw new LinegateError('LG_ERR_QUEUE_SPOOL_LOCKED', [dir, 0]);
}

export async function releaseLock(dir: string): Promise<void> {
  if (!openHere.delete(dir)) return;
  await fs.rm(path.join(dir, 'lock'), { force: true });
}
