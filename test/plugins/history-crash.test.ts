import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HistoryReader } from '../../runtime/history.js';
import { InspectionResult } from '../../runtime/result.js';
import { historyReaderFactory } from '../../runtime/registry/builtins.js';
import { LinegateProcess } from '../helpers/child.js';
import { testRoot } from '../helpers/roots.js';
import { until } from '../helpers/until.js';

/** A light station (no model): the casting fixtures, looped and paced, judged on image quality. */
const STATION = `
station: { id: hist-crash, cycleBudgetMs: 2000 }
source: { name: cam, use: core/folder-source@1, config: { dir: fixtures/casting, loop: true, rateHz: 40 } }
stages:
  - { name: decode, use: core/image-decode@1, config: { color: GRAY } }
  - { name: quality, use: core/image-quality@1 }
  - name: verdict
    use: core/threshold-rules@1
    config: { rules: [{ label: blurred, minScore: 0.2, rejectCode: 11 }] }
`;

async function rows(file: string): Promise<number> {
  if (!existsSync(file)) return 0;
  // The writer thread may not have made its tables yet.
  const r = await historyReaderFactory(file).catch(() => undefined);
  if (r === undefined) return 0;
  try {
    return (await r.stats()).rows;
  } finally {
    await r.close();
  }
}

async function everyRow(reader: HistoryReader): Promise<InspectionResult[]> {
  const out: InspectionResult[] = [];
  let cursor: string | undefined;
  do {
    const page = await reader.query({}, { limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    out.push(...page.items);
    cursor = page.next;
  } while (cursor !== undefined);
  return out;
}

describe('the history file across a SIGKILL', () => {
  it('holds only whole results after the station is killed mid-run, and a restart appends to it', async () => {
    const root = testRoot();
    const station = path.join(root, 'stations', 'hist-crash.yaml');
    writeFileSync(station, STATION);
    const file = path.join(root, 'var', 'history', 'hist-crash.sqlite');

    const first = new LinegateProcess(['run', station], { cwd: root, timeoutMs: 60_000 });
    await until(async () => (await rows(file)) >= 30, { ms: 30_000, what: '30 results in the history file' });
    first.killGroup();
    expect((await first.exited).signal).toBe('SIGKILL');

    const reader = await historyReaderFactory(file);
    const kept = await everyRow(reader);
    await reader.close();
    expect(kept.length).toBeGreaterThanOrEqual(30);
    for (const r of kept) expect(InspectionResult.safeParse(r).error).toBeUndefined();
    expect(new Set(kept.map((r) => r.resultId)).size).toBe(kept.length);

    const second = new LinegateProcess(['run', station, '--max-frames', '10'], { cwd: root, timeoutMs: 60_000 });
    expect(await second.exited).toMatchObject({ code: 0 });
    const after = await historyReaderFactory(file);
    try {
      const all = await everyRow(after);
      expect(all).toHaveLength(kept.length + 10);
      // The old rows are untouched and the new ones are the newest.
      expect(all.slice(10).map((r) => r.resultId)).toEqual(kept.map((r) => r.resultId));
    } finally {
      await after.close();
    }
  }, 120_000);
});
