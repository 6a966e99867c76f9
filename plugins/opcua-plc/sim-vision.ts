import type { DataValue, UAVariable } from 'node-opcua';
import type { SimSettings } from './sim-options.js';
import type { TagName } from './tags.js';

/*
 * What the simulated PLC knows of the vision side: VisionReady, whether its
 * heartbeat moves (the interlock and the watchdog), and every ResultValid
 * rising edge, charged to the raising of Trigger it answers or counted as a
 * stray. It follows one server at a time; a restart attaches it to the next.
 */

export type Wait = 'ok' | 'timeout' | 'aborted';

/** One raising of Trigger, and the answers (ResultValid rising edges) it got. */
export interface Raising {
  answers: number;
}

export interface VisionHooks {
  ready(ready: boolean): void;
  heartbeatLost(silentMs: number): void;
  duplicateAnswer(): void;
  strayResult(): void;
}

/**
 * Resolves 'ok' once `pred` holds for the tag's value (now or after a change),
 * 'timeout' after `ms`, 'aborted' when `signal` aborts: every wait is bounded.
 */
export function waitForValue(v: UAVariable, pred: (x: unknown) => boolean, ms: number, signal: AbortSignal): Promise<Wait> {
  if (signal.aborted) return Promise.resolve('aborted');
  if (pred(v.readValue().value.value)) return Promise.resolve('ok');
  return new Promise((resolve) => {
    const done = (r: Wait): void => {
      clearTimeout(timer);
      v.off('value_changed', onChange);
      signal.removeEventListener('abort', onAbort);
      resolve(r);
    };
    const onChange = (dv: DataValue): void => {
      if (pred(dv.value.value)) done('ok');
    };
    const onAbort = (): void => done('aborted');
    const timer = setTimeout(() => done('timeout'), ms);
    v.on('value_changed', onChange);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export class VisionWatch {
  readonly #o: SimSettings;
  readonly #hooks: VisionHooks;
  #ready = false;
  /** When VisionHeartbeat last took a new value on the current server; -Infinity: not yet. */
  #beatMovedAt = -Infinity;
  /** The watchdog's origin: the last heartbeat, or VisionReady rising. */
  #watchdogFrom = 0;
  #beatLost = false;
  #raising: Raising | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(o: SimSettings, hooks: VisionHooks) {
    this.#o = o;
    this.#hooks = hooks;
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** The interlock a PLC program puts before Trigger: VisionReady, and a heartbeat that moved within visionWatchdogMs. */
  interlockOpen(): boolean {
    if (!this.#o.interlock) return true;
    return this.#ready && performance.now() - this.#beatMovedAt <= this.#o.visionWatchdogMs;
  }

  /** Resolves 'ok' as soon as the interlock is open; bounded by `ms` and `signal`. */
  untilInterlock(ms: number, signal: AbortSignal): Promise<Wait> {
    if (signal.aborted) return Promise.resolve('aborted');
    if (this.interlockOpen()) return Promise.resolve('ok');
    return new Promise((resolve) => {
      const done = (r: Wait): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      };
      // Called from the tag's change event: Trigger goes up in the same turn as the heartbeat that opened the gate.
      const check = (): void => {
        if (this.interlockOpen()) done('ok');
      };
      const onAbort = (): void => done('aborted');
      const timer = setTimeout(() => done('timeout'), ms);
      this.#waiters.add(check);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** The answers from now on belong to `raising` (undefined: Trigger is low, an answer is a stray). */
  raise(raising: Raising | undefined): void {
    this.#raising = raising;
  }

  /**
   * Follows a new server's tags. VisionReady is read as the server holds it (a retentive restart keeps it),
   * but the heartbeat must move on this server: a kept VisionReady = true alone says nothing of the vision side now.
   */
  attach(vars: ReadonlyMap<TagName, UAVariable>): void {
    this.#beatMovedAt = -Infinity;
    // The start-up reset dropped Trigger.
    this.#raising = undefined;
    const ready = vars.get('visionReady');
    const heartbeat = vars.get('visionHeartbeat');
    const valid = vars.get('resultValid');
    this.#setReady(ready?.readValue().value.value === true);
    ready?.on('value_changed', (dv: DataValue) => this.#setReady(dv.value.value === true));
    let lastBeat: unknown = heartbeat?.readValue().value.value;
    heartbeat?.on('value_changed', (dv: DataValue) => {
      // A rewrite of the same number is a stuck counter, not a heartbeat (value_changed also fires on a new timestamp).
      if (dv.value.value === lastBeat) return;
      lastBeat = dv.value.value;
      this.#beatMovedAt = this.#watchdogFrom = performance.now();
      this.#beatLost = false;
      this.#wake();
    });
    // Registered before any cycle waits on ResultValid: an answer is charged before the cycle acts on it.
    let lastValid = valid?.readValue().value.value === true;
    valid?.on('value_changed', (dv: DataValue) => {
      const now = dv.value.value === true;
      const rising = now && !lastValid;
      lastValid = now;
      if (!rising) return;
      const r = this.#raising;
      if (r === undefined) return this.#hooks.strayResult();
      r.answers++;
      if (r.answers > 1) this.#hooks.duplicateAnswer();
    });
  }

  /** The server went down: the PLC no longer sees the vision side. */
  detach(): void {
    this.#raising = undefined;
    this.#setReady(false);
  }

  /** One watchdog check; a loss is latched until the heartbeat moves again: one loss, one event. */
  watchdog(): void {
    if (!this.#ready || this.#beatLost) return;
    const silentMs = performance.now() - this.#watchdogFrom;
    if (silentMs <= this.#o.visionWatchdogMs) return;
    this.#beatLost = true;
    this.#hooks.heartbeatLost(silentMs);
  }

  #setReady(ready: boolean): void {
    if (ready === this.#ready) return;
    this.#ready = ready;
    // Becoming ready starts the watchdog afresh: the first heartbeat is due one period from now.
    this.#watchdogFrom = performance.now();
    this.#beatLost = false;
    this.#hooks.ready(ready);
    this.#wake();
  }

  #wake(): void {
    for (const check of [...this.#waiters]) check();
  }
}
