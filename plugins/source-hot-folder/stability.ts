/** What one `stat` of an inbox file says; a change in any of these restarts the settle clock. */
export interface Observation {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
}

interface Entry extends Observation {
  /** When these values were first seen (monotonic ms). */
  since: number;
  /** How many polls saw these values. */
  looks: number;
  /** No claim before this time (monotonic ms); set after a failed claim. */
  retryAt: number;
  failures: number;
}

const MAX_BACKOFF_MS = 30_000;

/**
 * Decides when an inbox file is complete: it is non-empty and at least two
 * polls, `settleMs` or more apart, saw the same size, mtime and inode. It is
 * the only defence against a writer that is still writing, so it never trusts
 * the file's own mtime against the wall clock (network shares skew it).
 */
export class StabilityTracker {
  readonly #settleMs: number;
  readonly #entries = new Map<string, Entry>();

  constructor(settleMs: number) {
    this.#settleMs = settleMs;
  }

  /** Records one poll's view of `name`. */
  observe(name: string, seen: Observation, now: number): void {
    const e = this.#entries.get(name);
    if (e !== undefined && e.size === seen.size && e.mtimeMs === seen.mtimeMs && e.ino === seen.ino) {
      e.looks++;
      return;
    }
    this.#entries.set(name, { size: seen.size, mtimeMs: seen.mtimeMs, ino: seen.ino, since: now, looks: 1, retryAt: e?.retryAt ?? 0, failures: e?.failures ?? 0 });
  }

  /** Whether `seen` is exactly what the tracker last recorded for `name`. */
  matches(name: string, seen: Observation): boolean {
    const e = this.#entries.get(name);
    return e !== undefined && e.size === seen.size && e.mtimeMs === seen.mtimeMs && e.ino === seen.ino;
  }

  /** 0 when `name` can be claimed now; else ms until it could be (if it stays unchanged); undefined when it cannot (empty, unknown). */
  readyIn(name: string, now: number): number | undefined {
    const e = this.#entries.get(name);
    if (e === undefined || e.size === 0) return undefined;
    const wait = Math.max(e.since + this.#settleMs - now, e.retryAt - now, 0);
    // A second look is always needed, even with settleMs 0: one stat proves nothing about a writer.
    return wait === 0 && e.looks < 2 ? undefined : wait;
  }

  /** A claim failed: wait longer before the next try (settleMs doubling, at most 30 s). */
  backoff(name: string, now: number): void {
    const e = this.#entries.get(name);
    if (e === undefined) return;
    e.failures++;
    e.retryAt = now + Math.min(Math.max(this.#settleMs, 50) * 2 ** (e.failures - 1), MAX_BACKOFF_MS);
  }

  forget(name: string): void {
    this.#entries.delete(name);
  }

  /** Drops every name not in `present` (taken by someone else, or renamed). */
  retain(present: ReadonlySet<string>): void {
    for (const name of this.#entries.keys()) if (!present.has(name)) this.#entries.delete(name);
  }
}
