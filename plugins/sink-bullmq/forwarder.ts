import { EventEmitter } from 'node:events';
import type { Logger } from '../../runtime/contract.js';
import { isLinegateError, messageOf } from '../../runtime/errors.js';
import { isAuthRefusal } from './redis-errors.js';
import type { Spool, SpoolBatch, SpoolRecord } from './spool.js';

/** Puts records on their queues in order; idempotent by record id; rejects when the broker cannot take them now. */
export interface Sender {
  send(records: readonly SpoolRecord[]): Promise<void>;
}

/** The broker link: `refused` is a password Redis would not take (LG_ERR_QUEUE_AUTH), which waiting does not fix. */
export type LinkState = 'connecting' | 'up' | 'unreachable' | 'refused';

export interface ForwarderEvents {
  state: [state: LinkState, why: string];
  /** The spool itself failed (reading it, moving its cursor), with why; undefined once it works again. */
  spool: [fault: string | undefined];
  /** `<queue>:<id>` of each record now on its queue. */
  forwarded: [keys: readonly string[]];
}

export interface ForwarderOptions {
  readonly batch: number;
  readonly retryMinMs: number;
  readonly retryMaxMs: number;
  /**
   * How long to let records gather before reading a batch that would not be full. Each batch
   * costs a read, one broker round trip and a durable cursor move whatever its size: at a part
   * every few ms a batch per part would spend more on that than on the records.
   */
  readonly lingerMs?: number;
  readonly log: Logger;
}

export const recordKey = (r: { queue: string; id: string }): string => `${r.queue}:${r.id}`;

/**
 * Drains the spool into the broker, oldest first, one batch at a time: send,
 * then move the spool's cursor. A crash between the two resends the batch,
 * which the broker drops by job id: at least once on the wire, once in the
 * queue. While the broker is away it retries with a capped back-off.
 */
export class Forwarder extends EventEmitter<ForwarderEvents> {
  readonly #spool: Spool;
  readonly #sender: Sender;
  readonly #o: ForwarderOptions;
  readonly #stop = new AbortController();
  #state: LinkState = 'connecting';
  #why = '';
  #spoolFault: string | undefined;
  /** Whether entering the current spool fault was logged: leaving it is logged only then. */
  #spoolFaultLogged = false;
  #wake: (() => void) | undefined;
  /** A wake that came while the loop was not paused (reading, sending): the next idle pause ends at once. */
  #woken = false;
  #running: Promise<void> | undefined;
  #idle: (() => void)[] = [];

  constructor(spool: Spool, sender: Sender, o: ForwarderOptions) {
    super();
    this.#spool = spool;
    this.#sender = sender;
    this.#o = o;
  }

  get state(): LinkState {
    return this.#state;
  }

  get why(): string {
    return this.#why;
  }

  /** Why the spool cannot be read or committed now (not a Redis problem), or undefined. */
  get spoolFault(): string | undefined {
    return this.#spoolFault;
  }

  /** Records cannot go now: Redis is away or refuses us, or the spool itself fails. */
  get stuck(): boolean {
    return this.#state === 'unreachable' || this.#state === 'refused' || this.#spoolFault !== undefined;
  }

  start(): void {
    this.#running ??= this.#run();
  }

  /** New records are in the spool. */
  wake(): void {
    if (this.#wake !== undefined) this.#wake();
    else this.#woken = true;
  }

  /** Resolves true once the spool is empty, false when the broker is away or `ms` passed first. */
  drained(ms: number): Promise<boolean> {
    if (this.#spool.empty) return Promise.resolve(true);
    if (this.stuck) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), ms);
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.#idle = this.#idle.filter((f) => f !== onIdle);
        this.off('state', onState);
        resolve(ok);
      };
      const onIdle = (): void => done(true);
      const onState = (s: LinkState): void => {
        if (s === 'unreachable' || s === 'refused') done(false);
      };
      this.#idle.push(onIdle);
      this.on('state', onState);
    });
  }

  /** Finishes the batch in flight and stops; what is left stays in the spool for the next start. Idempotent. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#running;
  }

  async #run(): Promise<void> {
    let delay = this.#o.retryMinMs;
    const signal = this.#stop.signal;
    const backOff = async (): Promise<void> => {
      await this.#pause(delay, false);
      delay = Math.min(delay * 2, this.#o.retryMaxMs);
    };
    // The local disk comes back the moment space is freed: a cursor that could not be moved is tried again
    // within a second, not after Redis's back-off (the records are in Redis already; only the cursor lags).
    const diskBackOff = async (): Promise<void> => {
      await this.#pause(Math.min(delay, LOCAL_RETRY_MAX_MS), false);
      delay = Math.min(delay * 2, this.#o.retryMaxMs);
    };
    const linger = this.#o.lingerMs ?? 0;
    let full = true;
    while (!signal.aborted) {
      if (!full && linger > 0) {
        await this.#pause(linger, false);
        if (signal.aborted) break;
      }
      full = true;
      // Three steps, three kinds of failure: a spool that cannot be read or committed is not "Redis unreachable".
      let batch: SpoolBatch | undefined;
      try {
        batch = await this.#spool.read(this.#o.batch);
      } catch (e) {
        this.#setSpoolFault(`cannot read the spool: ${messageOf(e)}`);
        await backOff();
        continue;
      }
      if (batch === undefined) {
        this.#setSpoolFault(undefined);
        // Records appended while this read ran are not in it: read again rather than call the spool drained.
        if (this.#woken) {
          this.#woken = false;
          continue;
        }
        for (const f of this.#idle.splice(0)) f();
        await this.#pause(Infinity, true);
        continue;
      }
      const { records, end } = batch;
      full = records.length >= this.#o.batch;
      if (records.length > 0) {
        try {
          await this.#sender.send(records);
        } catch (e) {
          this.#setState(isAuthRefusal(e) ? 'refused' : 'unreachable', isLinegateError(e) ? `${e.code}: ${e.message}` : messageOf(e));
          await backOff();
          continue;
        }
        this.#setState('up', '');
      }
      try {
        await this.#spool.commit(end);
      } catch (e) {
        // Sent but not committed: the batch goes again, and BullMQ drops the job ids it already holds.
        this.#setSpoolFault(`cannot move the spool's cursor: ${messageOf(e)}`, isDiskFull(e));
        await diskBackOff();
        continue;
      }
      this.#setSpoolFault(undefined);
      delay = this.#o.retryMinMs;
      if (records.length > 0) this.emit('forwarded', records.map(recordKey));
      // Drained now, whether or not the loop lingers before its next read.
      if (this.#spool.empty) for (const f of this.#idle.splice(0)) f();
    }
  }

  /**
   * Logs once when the spool starts failing and once when it works again; not at all while its
   * appends fail too (a full disk): the station already logged that state for this sink.
   */
  #setSpoolFault(fault: string | undefined, diskFull = false): void {
    if ((fault === undefined) === (this.#spoolFault === undefined)) {
      this.#spoolFault = fault;
      return;
    }
    this.#spoolFault = fault;
    if (fault !== undefined) {
      // A full disk is one alarm per sink: the lane raises it when the appends fail, and a cursor move that fails for
      // want of space is that same state (health still shows it), not a second alarm.
      this.#spoolFaultLogged = this.#spool.writeFault === undefined && !diskFull;
      if (this.#spoolFaultLogged) this.#o.log.error({ why: fault, pendingBytes: this.#spool.pendingBytes }, `queue spool fault: ${fault}; retrying (this is the local disk, not Redis)`);
    } else if (this.#spoolFaultLogged) this.#o.log.info({}, 'queue spool works again: spooled records are being sent');
    this.emit('spool', fault);
  }

  /** Sleeps until `ms` passed, stop(), or (when `wakeable`) new records arrive: a back-off is not cut short by traffic. */
  #pause(ms: number, wakeable: boolean): Promise<void> {
    const signal = this.#stop.signal;
    if (signal.aborted) return Promise.resolve();
    if (wakeable && this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(() => done(), ms) : undefined;
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#wake = undefined;
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      if (wakeable) this.#wake = done;
    });
  }

  #setState(state: LinkState, why: string): void {
    if (state === this.#state) return;
    const was = this.#state;
    this.#state = state;
    this.#why = why;
    if (state === 'up') this.#o.log.info({ was }, 'queue broker reachable: spooled records are being sent');
    else if (state === 'refused') this.#o.log.error({ code: 'LG_ERR_QUEUE_AUTH', why, pendingBytes: this.#spool.pendingBytes }, `${why}; records are kept in the local spool until Redis takes the password`);
    else this.#o.log.warn({ why, pendingBytes: this.#spool.pendingBytes }, 'queue broker unreachable: records are kept in the local spool and sent when it is back');
    this.emit('state', state, why);
  }
}

/** How soon a local-disk fault (the spool's cursor) is tried again at most. */
const LOCAL_RETRY_MAX_MS = 1000;

/** No space or no quota: what a full disk looks like to a write. */
function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  const cause = (e as { cause?: { code?: unknown } } | null)?.cause?.code;
  return [code, cause].some((c) => c === 'ENOSPC' || c === 'EDQUOT' || c === 'LG_ERR_DISK_FULL');
}
