import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { InspectionResult } from '../../runtime/result.js';
import { CASTING_STAGES_YAML, LinegateProcess, ROOT, cleanUp, freePort, killOnChange, note, tempRoot, waitUntil, writeStation } from './harness.js';
import { lastJsonLine, readJsonl, type RunLine } from './invariants.js';

/**
 * Fault 10: `linegate run` SIGKILLed (its whole process group) in the middle of a model deploy, at
 * the two moments that matter: while the upload is staged and checked (nothing journaled yet), and
 * the instant the activation reaches the journal (the switch may or may not have been made). After
 * each kill the station starts again on the same files. It must come back on the model the journal
 * names (the station file's when it names none), leave no half-written upload behind, name in every
 * result the model that judged it, and take a deploy again.
 */

afterEach(cleanUp);

const TOKEN = 'fault-deploy-token-0123456789abcdef';
const CASTING_2 = path.join(ROOT, 'models/casting-cls/2');

/** Posts the package folder to the station's deploy route; resolves with the HTTP status, or undefined when the station died under it. */
async function deploy(url: string): Promise<number | undefined> {
  const form = new FormData();
  for (const f of readdirSync(CASTING_2)) form.append('file', new Blob([readFileSync(path.join(CASTING_2, f))]), f);
  try {
    const res = await fetch(`${url}/api/models/deploy`, { method: 'POST', body: form, headers: { authorization: `Bearer ${TOKEN}` } });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return undefined;
  }
}

/** The kill came first; a deploy answered before it (refused, or done without the change watched for) fails the case at once, with the log. */
async function killedBeforeAnswer(killed: Promise<void>, sent: Promise<number | undefined>, run: LinegateProcess): Promise<void> {
  const first = await Promise.race([killed.then(() => 'killed' as const), sent]);
  if (first !== 'killed') {
    run.killGroup();
    throw new Error(`the deploy was answered (${first}) before the kill point:\n${run.stderr.slice(-3000)}`);
  }
}

/** The journal's whole lines (a kill may leave the last one torn, or the file empty). */
function journalOf(dir: string): { version: string; action: string }[] {
  const file = path.join(dir, 'journal.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as { version: string; action: string }];
      } catch {
        return [];
      }
    });
}

describe('fault: linegate killed (-9) in the middle of a model deploy', () => {
  it('comes back on the model the journal names, with no upload left half-written, every result naming its own model, and deploys again', async () => {
    const root = tempRoot('deploy');
    const results = path.join(root, 'results');
    const deployDir = path.join(root, 'deploy');
    const stationDir = path.join(deployDir, 'fault-deploy');
    const packages = path.join(stationDir, 'packages');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const file = writeStation(
      root,
      `station: { id: fault-deploy, root: ${ROOT}, cycleBudgetMs: 3000, maxInFlight: 1, queueSize: 2, deploy: { dir: ${deployDir} } }
source: { name: cam, use: core/folder-source@1, config: { dir: fixtures/casting, loop: true, rateHz: 20 } }
${CASTING_STAGES_YAML}sinks:
  - { name: results, use: core/jsonl-sink@1, config: { dir: ${results} } }
api: { host: 127.0.0.1, port: ${port} }
`,
    );
    const env = { LINEGATE_API_TOKEN: TOKEN, LINEGATE_API_PORT: String(port) };
    const resultCount = (): number => (existsSync(results) ? readJsonl(results).results.length : 0);
    /** A new run, once it is ready and has judged a part of its own. */
    const start = async (): Promise<LinegateProcess> => {
      const before = resultCount();
      const run = new LinegateProcess(['run', file, '--no-pretty'], env);
      await waitUntil(async () => (await fetch(`${url}/ready`).catch(() => undefined))?.status === 200 && resultCount() > before, 60_000, 'the station ready, judging parts', run);
      return run;
    };
    const activeVersion = async (): Promise<string | undefined> => ((await (await fetch(`${url}/api/models`)).json()) as { active: { version: string } | null }).active?.version;
    mkdirSync(packages, { recursive: true });

    // 1. Killed the instant the upload's staging folder appears: nothing can be journaled yet.
    {
      const run = await start();
      const killed = killOnChange(packages, run);
      const sent = deploy(url);
      await killedBeforeAnswer(killed, sent, run);
      expect((await run.exited).signal).toBe('SIGKILL');
      expect(await sent, 'the killed deploy got no answer').toBeUndefined();
    }
    expect(journalOf(stationDir), 'nothing journaled by a deploy killed while staging').toEqual([]);
    {
      const before = resultCount();
      const run = await start();
      expect(await activeVersion()).toBe('1');
      expect(readJsonl(results).results[before]?.model?.version, 'the first part after the restart').toBe('1');
      await waitUntil(() => readdirSync(packages).every((n) => !n.startsWith('.incoming-')), 10_000, 'the half-written upload removed at start', run);

      // 2. Killed the instant the journal file appears: the activation may be in it whole, or not at all.
      const killed = killOnChange(stationDir, run);
      const sent = deploy(url);
      await killedBeforeAnswer(killed, sent, run);
      expect((await run.exited).signal).toBe('SIGKILL');
      expect(await sent, 'the killed deploy got no answer').toBeUndefined();
    }
    const journaled = journalOf(stationDir);
    const expected = journaled.at(-1)?.version ?? '1';

    // 3. Started again: on the journal's model, the first part judged by it; a deploy and a rollback work after.
    const before = resultCount();
    const run = await start();
    expect(await activeVersion()).toBe(expected);
    expect(readJsonl(results).results[before]?.model?.version, 'the first part after the second restart').toBe(expected);
    expect(await deploy(url)).toBe(200);
    expect(await activeVersion()).toBe('2');
    const seen = resultCount();
    await waitUntil(() => resultCount() >= seen + 5, 30_000, 'five more parts', run);
    const back = await fetch(`${url}/api/models/rollback`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(back.status).toBe(200);
    expect(await activeVersion()).toBe('1');
    run.signal('SIGINT');
    const exit = await run.exited;
    expect(exit.code, run.stderr.slice(-2000)).toBe(0);
    const { summary } = lastJsonLine<RunLine>(run.stdout, 'linegate run');
    expect(summary.dropped).toBe(0);

    // Every line whole; every result names a model, each one of the two; no upload left half-written.
    const lines = readJsonl(results);
    expect(lines.broken, 'JSONL lines torn by the kills').toEqual([]);
    const versions = new Set(lines.results.map((r: InspectionResult) => r.model?.version));
    expect([...versions].every((v) => v === '1' || v === '2'), `versions seen: ${[...versions].join(', ')}`).toBe(true);
    expect(readdirSync(packages).filter((n) => n.startsWith('.incoming-'))).toEqual([]);
    note('deploy-crash', { journaledAtSecondKill: journaled.map((j) => `${j.action} ${j.version}`), journal: journalOf(stationDir).map((j) => `${j.action} ${j.version}`), results: lines.results.length });
  });
});
