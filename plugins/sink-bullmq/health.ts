import type { Health } from '../../runtime/contract.js';
import type { ImageArchive } from './archive.js';
import type { Forwarder } from './forwarder.js';
import type { Spool } from './spool.js';

/** What the queue sink's health is read from. */
export interface QueueSinkState {
  /** The Redis URL without its password. */
  readonly where: string;
  readonly forwarder: Forwarder;
  readonly spool: Spool;
  /** The spool refused a record for its size limit, and has not drained under half since. */
  readonly spoolFull: boolean;
  readonly archive: ImageArchive | undefined;
  /** Why images are not being archived now, if they are not. */
  readonly archiveFault: string | undefined;
  readonly skippedByQuota: number;
}

/**
 * `down` when results cannot reach Redis without someone acting (the disk is full, the spool is
 * full, Redis refuses the password); `degraded` while the sink works around a fault that passes
 * by itself (Redis away, a spool read that is retried, images not archived); the cause in
 * `detail`, with its code, and the counts in `data`.
 */
export function queueSinkHealth(s: QueueSinkState): Health {
  const { forwarder, spool, where } = s;
  const pending = spool.pendingBytes;
  const ageS = Math.round(spool.oldestPendingAgeS() * 1000) / 1000;
  const data = {
    redis: where,
    state: forwarder.state,
    spool: spool.dir,
    pendingBytes: pending,
    // 0 with nothing waiting, rather than absent: an alert on "older than N s" needs no special case for an empty spool.
    oldestPendingAgeS: ageS,
    archivedImages: s.archive?.count ?? 0,
    skippedByQuota: s.skippedByQuota,
    ...(spool.writeFault === undefined ? {} : { spoolWrite: spool.writeFault.code }),
    ...(forwarder.spoolFault === undefined ? {} : { spoolRead: forwarder.spoolFault }),
    ...(s.archiveFault === undefined ? {} : { archive: s.archiveFault }),
  };
  const fault = spool.writeFault;
  if (fault !== undefined) {
    return { status: 'down', detail: `spool cannot write (${fault.code}: ${fault.message}): results are refused until it can; ${pending} bytes wait in ${spool.dir}`, data };
  }
  if (s.spoolFull) return { status: 'down', detail: `spool full (${pending} bytes): new records are refused until Redis at ${where} takes the backlog`, data };
  if (forwarder.state === 'refused') {
    return { status: 'down', detail: `${forwarder.why}; ${pending} bytes spooled in ${spool.dir}, sent once Redis takes the password`, data };
  }
  if (forwarder.spoolFault !== undefined) return { status: 'degraded', detail: `spool ${spool.dir}: ${forwarder.spoolFault}; retrying`, data };
  if (forwarder.state === 'unreachable' || (forwarder.state !== 'up' && !spool.empty)) {
    return { status: 'degraded', detail: `Redis at ${where} unreachable (${forwarder.why || forwarder.state}): ${pending} bytes spooled in ${spool.dir}, the oldest for ${Math.round(ageS)} s, sent when it answers`, data };
  }
  if (s.archiveFault !== undefined) return { status: 'degraded', detail: `images are not archived (${s.archiveFault}); results and samples still go to Redis`, data };
  return { status: 'ok', detail: forwarder.state === 'up' ? `queues on ${where}` : `waiting for Redis at ${where}; nothing spooled`, data };
}
