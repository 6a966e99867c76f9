import type { HistoryFilter, HistoryPage, HistoryReader } from '../history.js';
import type { InspectionResult } from '../result.js';

/**
 * The last `size` results in memory, as a HistoryReader: what `/api/results` serves when the
 * station keeps no history file. Bounded; lost at restart (the SQLite history keeps them).
 */
export class RecentResults implements HistoryReader {
  readonly #size: number;
  /** Oldest first; a ring would save the shift, but at API rates a bounded array is plenty. */
  readonly #items: InspectionResult[] = [];
  readonly #byId = new Map<string, InspectionResult>();

  constructor(size = 1000) {
    this.#size = size;
  }

  add(result: InspectionResult): void {
    if (this.#byId.has(result.resultId)) return;
    this.#items.push(result);
    this.#byId.set(result.resultId, result);
    while (this.#items.length > this.#size) this.#byId.delete(this.#items.shift()!.resultId);
  }

  async query(filter: HistoryFilter, page: { readonly limit: number; readonly cursor?: string }): Promise<HistoryPage> {
    let end = this.#items.length;
    if (page.cursor !== undefined) {
      const at = this.#items.findIndex((r) => r.resultId === page.cursor);
      // A cursor that fell out of the window: the page after it is gone too.
      end = at < 0 ? 0 : at;
    }
    const items: InspectionResult[] = [];
    let i = end - 1;
    for (; i >= 0 && items.length < page.limit; i--) {
      const r = this.#items[i]!;
      if (matches(r, filter)) items.push(r);
    }
    const more = items.length === page.limit && this.#items.slice(0, i + 1).some((r) => matches(r, filter));
    return more ? { items, next: items.at(-1)!.resultId } : { items };
  }

  async get(resultId: string): Promise<InspectionResult | undefined> {
    return this.#byId.get(resultId);
  }

  async stats(): Promise<{ rows: number; bytes: number; oldest?: string; newest?: string }> {
    const oldest = this.#items[0]?.time.decidedAt;
    const newest = this.#items.at(-1)?.time.decidedAt;
    return { rows: this.#items.length, bytes: 0, ...(oldest === undefined ? {} : { oldest }), ...(newest === undefined ? {} : { newest }) };
  }

  async close(): Promise<void> {
    this.#items.length = 0;
    this.#byId.clear();
  }
}

/** The filter as the history applies it (runtime/history.ts). */
export function matches(r: InspectionResult, f: HistoryFilter): boolean {
  if (f.partId !== undefined && r.partId !== f.partId) return false;
  if (f.verdict !== undefined && r.verdict !== f.verdict) return false;
  if (f.rejectCode !== undefined && r.rejectCode !== f.rejectCode) return false;
  if (f.code !== undefined && !r.reasons.some((x) => x.code === f.code)) return false;
  if (f.label !== undefined && !r.defects.some((d) => d.label === f.label)) return false;
  const at = Date.parse(r.time.decidedAt);
  if (f.since !== undefined && at < Date.parse(f.since)) return false;
  if (f.until !== undefined && at >= Date.parse(f.until)) return false;
  return true;
}
