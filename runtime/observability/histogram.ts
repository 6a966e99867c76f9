/**
 * Latency percentiles over a whole run in constant memory: log-spaced buckets
 * 1% wide, so a percentile is within 1% of the exact value however long the
 * station runs (an HDR-histogram in miniature).
 */
const GROWTH = Math.log(1.01);
const MIN_MS = 0.001;

export class Histogram {
  readonly #buckets = new Map<number, number>();
  #count = 0;
  #max = 0;

  record(ms: number): void {
    const v = Math.max(ms, MIN_MS);
    const b = Math.floor(Math.log(v / MIN_MS) / GROWTH);
    this.#buckets.set(b, (this.#buckets.get(b) ?? 0) + 1);
    this.#count++;
    if (v > this.#max) this.#max = v;
  }

  get count(): number {
    return this.#count;
  }

  /** The q-quantile (0..1) in ms, 0 when nothing was recorded. */
  quantile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (const b of [...this.#buckets.keys()].sort((x, y) => x - y)) {
      seen += this.#buckets.get(b)!;
      if (seen >= rank) return Math.min(this.#max, MIN_MS * Math.exp((b + 0.5) * GROWTH));
    }
    return this.#max;
  }
}
