import { EventEmitter } from 'node:events';
import type { Logger } from '../../runtime/contract.js';
import { messageOf } from '../../runtime/errors.js';
import type { Spool, SpoolRecord } from './spool.js';

/** Puts records on their queues in order; idempotent by record id; rejects when the broker cannot take them now. */
export interface Sender {
  send(records: readonly SpoolRecord[]): Promise<void>;
}

export type LinkState = 'connecting' | 'up' | 'unreachable';

export interface ForwarderEvents {
  state: [state: LinkState, why: string];
  /** `<queue>:<id>` of each record now on its queue. */
  forwarded: [keys: readonly string[]];
}

export interface ForwarderOptions {
  readonly batch: number;
  readonly retryMinMs: number;
  readonly retryMaxMs: number;
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
  #wake: (() => void) | undefined;
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

  start(): void {
    this.#running ??= this.#run();
  }

  /** New records are in the spool. */
  wake(): void {
    this.#wake?.();
  }

  /** Resolves true once the spool is empty, false when the broker is away or `ms` passed first. */
  drained(ms: number): Promise<boolean> {
    if (this.#spool.empty) return Promise.resolve(true);
    if (this.#state === 'unreachable') return Promise.resolve(false);
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
        if (s === 'unreachable') done(false);
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
    while (!signal.aborted) {
      try {
        const batch = await this.#spool.read(this.#o.batch);
        if (batch === undefined) {
          for (const f of this.#idle.splice(0)) f();
          await this.#pause(Infinity, true);
          continue;
        }
        if (batch.records.length > 0) await this.#sender.send(batch.records);
        await this.#spool.commit(batch.end);
        this.#setState('up', '');
        delay = this.#o.retryMinMs;
        if (batch.records.length > 0) this.emit('forwarded', batch.records.map(recordKey));
      } catch (e) {
        this.#setState('unreachable', messageOf(e));
        await this.#pause(delay, false);
        delay = Math.min(delay * 2, this.#o.retryMaxMs);
      }
    }
  }

  /** Sleeps until `ms` passed, stop(), or (when `wakeable`) new records arrive: a back-off is not cut short by traffic. */
  #pause(ms: number, wakeable: boolean): Promise<void> {
    const signal = this.#stop.signal;
    if (signal.aborted) return Promise.resolve();
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
    else this.#o.log.warn({ why, pendingBytes: this.#spool.pendingBytes }, 'queue broker unreachable: records are kept in the local spool and sent when it is back');
    this.emit('state', state, why);
  }
}
