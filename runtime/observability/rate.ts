import { performance } from 'node:perf_hooks';

const BUCKETS = 10;

/**
 * How many events happened in the last window, in constant memory whatever the event rate: the
 * window is cut into 10 buckets, so a count is at most a tenth of the window stale.
 */
export class RecentCount {
  readonly #windowMs: number;
  readonly #bucketMs: number;
  readonly #counts = new Array<number>(BUCKETS).fill(0);
  readonly #since: number;
  #head = 0;
  #headStart: number;

  constructor(windowMs: number, now = performance.now()) {
    this.#windowMs = windowMs;
    this.#bucketMs = windowMs / BUCKETS;
    this.#since = now;
    this.#headStart = now;
  }

  add(now = performance.now()): void {
    this.#advance(now);
    this.#counts[this.#head]! += 1;
  }

  count(now = performance.now()): number {
    this.#advance(now);
    return this.#counts.reduce((a, b) => a + b, 0);
  }

  /** Events per second over the window (over the time since the start, while that is shorter). */
  perSecond(now = performance.now()): number {
    const spanMs = Math.min(this.#windowMs, Math.max(now - this.#since, this.#bucketMs));
    return this.count(now) / (spanMs / 1000);
  }

  #advance(now: number): void {
    const steps = Math.floor((now - this.#headStart) / this.#bucketMs);
    if (steps <= 0) return;
    for (let i = 0; i < Math.min(steps, BUCKETS); i++) {
      this.#head = (this.#head + 1) % BUCKETS;
      this.#counts[this.#head] = 0;
    }
    this.#headStart += steps * this.#bucketMs;
  }
}

/**
 * Lets a repeated report through at once the first time, then at most once per interval: a storm
 * becomes one line per interval that counts it, instead of a line per event that buries the rest
 * of the log (and costs the CPU the frames need).
 */
export class Throttle {
  readonly #intervalMs: number;
  readonly #report: () => void;
  #lastAt = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;

  /** `report` writes the line for everything noted since the last one. */
  constructor(intervalMs: number, report: () => void) {
    this.#intervalMs = intervalMs;
    this.#report = report;
  }

  /** Something happened: report now if the interval since the last report has passed, else once it has. */
  note(): void {
    if (this.#timer !== undefined) return;
    const wait = this.#lastAt + this.#intervalMs - performance.now();
    if (wait <= 0) return this.#fire();
    this.#timer = setTimeout(() => this.#fire(), wait);
    // A pending summary line must not keep the process alive after the station is done.
    this.#timer.unref();
  }

  /** Reports what is pending now (at the end of a run), and stops the timer. */
  flush(): void {
    if (this.#timer !== undefined) this.#fire();
  }

  #fire(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#lastAt = performance.now();
    this.#report();
  }
}
