import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../../runtime/execute/outcome.js';
import { InspectionResult } from '../../runtime/result.js';
import { historySink } from '../../plugins/history-sqlite/index.js';
import { linegate } from '../helpers/cli.js';
import { testRoot } from '../helpers/roots.js';
import { contextFor, sampleResult } from '../helpers/samples.js';

const STATION = (id: string, extra = ''): string => `
station: { id: ${id} }
source: { name: cam, use: core/folder-source@1, config: { dir: fixtures/casting } }
stages:
  - { name: decode, use: core/image-decode@1 }
  - { name: quality, use: core/image-quality@1 }
  - { name: verdict, use: core/threshold-rules@1, config: { rules: [{ label: blurred, minScore: 0.2, rejectCode: 11 }] } }
${extra}`;

const now = Date.now();
const ago = (min: number): string => new Date(now - min * 60_000).toISOString();

/** Six results over the last five hours: parts A (twice), B, C, D, E; B and D fail on a crack. */
const RESULTS: InspectionResult[] = [
  ['A', 300, 'pass'],
  ['B', 240, 'fail'],
  ['C', 180, 'pass'],
  ['D', 90, 'fail'],
  ['E', 30, 'pass'],
  ['A', 10, 'pass'],
].map(([part, min, verdict]) =>
  sampleResult({
    resultId: uuidv7(now - Number(min) * 60_000),
    station: { id: 'cli-hist' },
    partId: String(part),
    time: { capturedAt: ago(Number(min)), decidedAt: ago(Number(min)) },
    verdict: verdict as 'pass' | 'fail',
    rejectCode: verdict === 'fail' ? 5 : 0,
    reasons: verdict === 'fail' ? [{ code: 'crack-rule', message: 'crack', rejectCode: 5 }] : [],
    defects: verdict === 'fail' ? [{ label: 'crack', score: 0.8, rule: 'crack-rule' }] : [],
    model: { name: 'casting-cls', version: '1', sha256: 'b'.repeat(64) },
  }),
);

let root: string;
let station: string;

beforeAll(async () => {
  root = testRoot();
  station = path.join(root, 'stations', 'cli-hist.yaml');
  writeFileSync(station, STATION('cli-hist'));
  const ctx = { ...contextFor(new AbortController().signal, root), stationId: 'cli-hist', step: 'history' };
  const sink = await historySink.init(historySink.manifest.config.parse({}), ctx);
  for (const r of RESULTS) await sink.write(r, ctx);
  await sink.close?.();
});

const parts = (stdout: string): string[] => stdout.trim().split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as InspectionResult).partId);

describe('linegate history', () => {
  it('prints the newest results first as a table: time, part, verdict, codes, labels, model', async () => {
    const run = await linegate(['history', station]);
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^time\s+part\s+verdict\s+codes\s+labels\s+model$/);
    expect(lines).toHaveLength(7);
    expect(lines[1]).toContain(RESULTS[5]!.time.decidedAt);
    expect(lines.find((l) => / D /.test(l))).toMatch(/fail 5\s+crack-rule\s+crack\s+casting-cls@1$/);
  });

  it('prints JSON lines that validate as results with --json, and filters by part, verdict, code, label and time', async () => {
    const json = await linegate(['history', station, '--json']);
    expect(json.code).toBe(0);
    for (const line of json.stdout.trim().split('\n')) expect(InspectionResult.safeParse(JSON.parse(line)).success).toBe(true);
    expect(parts(json.stdout)).toEqual(['A', 'E', 'D', 'C', 'B', 'A']);
    expect(parts((await linegate(['history', station, '--json', '--part', 'A'])).stdout)).toEqual(['A', 'A']);
    expect(parts((await linegate(['history', station, '--json', '--verdict', 'fail'])).stdout)).toEqual(['D', 'B']);
    expect(parts((await linegate(['history', station, '--json', '--code', 'crack-rule', '--since', '2h'])).stdout)).toEqual(['D']);
    expect(parts((await linegate(['history', station, '--json', '--label', 'crack', '--until', ago(100)])).stdout)).toEqual(['B']);
    expect(parts((await linegate(['history', station, '--json', '--reject-code', '5', '--limit', '1'])).stdout)).toEqual(['D']);
    expect(parts((await linegate(['history', station, '--json', '--since', ago(200), '--until', ago(20)])).stdout)).toEqual(['E', 'D', 'C']);
  });

  it('says LG_ERR_HISTORY_MISSING (exit 2) for a station that has no history file, or keeps none', async () => {
    const other = path.join(root, 'stations', 'never-ran.yaml');
    writeFileSync(other, STATION('never-ran'));
    const missing = await linegate(['history', other]);
    expect(missing.code).toBe(2);
    expect(missing.logs().some((l) => l.code === 'LG_ERR_HISTORY_MISSING')).toBe(true);
    expect(missing.stdout).toBe('');
    const off = path.join(root, 'stations', 'no-history.yaml');
    writeFileSync(off, STATION('cli-hist', 'history: false\n'));
    expect((await linegate(['history', off])).logs().some((l) => l.code === 'LG_ERR_HISTORY_MISSING')).toBe(true);
  });

  it.each([
    [['history'], 'no station'],
    [['history', 'S', '--verdict', 'maybe'], 'a verdict that is none'],
    [['history', 'S', '--limit', '0'], 'a limit of 0'],
    [['history', 'S', '--limit', '5000'], 'a limit past 1000'],
    [['history', 'S', '--since', 'yesterday'], 'a since that is neither an instant nor a duration'],
    [['history', 'S', '--until', '2h'], 'an until that is a duration'],
    [['history', 'S', '--reject-code', 'x'], 'a reject code that is no number'],
    [['history', 'S', '--frobnicate'], 'an unknown option'],
  ])('refuses %j (%s) with LG_ERR_CLI_USAGE, exit 2', async (args) => {
    const run = await linegate(args.map((a) => (a === 'S' ? station : a)));
    expect(run.code).toBe(2);
    expect(run.logs().some((l) => l.code === 'LG_ERR_CLI_USAGE')).toBe(true);
    expect(run.stdout).toBe('');
  });
});
