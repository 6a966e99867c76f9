/**
 * Wakes whoever waits for "something changed" (a slot freed, a part finished, a queued frame
 * expired), so a waiter re-checks its own condition instead of each event having its own promise.
 */
export class Wake {
  #waiters: (() => void)[] = [];

  /** Resolves at the next `notify()`. */
  next(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
