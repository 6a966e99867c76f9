import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CASTING_STAGES_YAML, LinegateProcess, ROOT, cleanUp, sleep, tempRoot, writeHangPlugin, writeStation } from './harness.js';

/**
 * Fault 8: a third-party plugin whose init never resolves (a connect that
 * never answers, holding its socket: here a timer that ignores the abort).
 * `linegate run` must fail with LG_ERR_PLUGIN_INIT_TIMEOUT within the
 * station's initTimeoutMs, close what had started, and EXIT: a station that
 * hangs at start-up is a line that does not know it has no vision.
 */

afterEach(cleanUp);

const INIT_TIMEOUT_MS = 1500;
const CLOSE_TIMEOUT_MS = 1500;

describe('fault: a plugin init that never resolves', () => {
  it('fails with LG_ERR_PLUGIN_INIT_TIMEOUT naming the step within initTimeoutMs, and the process exits non-zero instead of hanging', async () => {
    const root = tempRoot('init-hang');
    const plugin = writeHangPlugin(root);
    const file = writeStation(
      root,
      `station: { id: fault-init-hang, root: ${ROOT}, cycleBudgetMs: 1000, initTimeoutMs: ${INIT_TIMEOUT_MS}, closeTimeoutMs: ${CLOSE_TIMEOUT_MS} }
plugins: [${plugin}]
source: { name: cam0, use: core/folder-source@1, config: { dir: fixtures/casting } }
${CASTING_STAGES_YAML}sinks:
  - { name: results, use: core/jsonl-sink@1, config: { dir: ${path.join(root, 'results')} } }
  - { name: hang, use: faults/hang@1 }
`,
    );
    const spawnedAt = Date.now();
    const run = new LinegateProcess(['run', file, '--no-pretty', '--log-level', 'debug']);
    let exitedAt: number | undefined;
    void run.exited.then(() => (exitedAt = Date.now()));
    // When the station began starting its steps (its debug line; else the spawn, start-up included), and when the time-out was reported.
    let startingAt: number | undefined;
    let reportedAt: number | undefined;
    const end = spawnedAt + 30_000 + INIT_TIMEOUT_MS + CLOSE_TIMEOUT_MS;
    while (exitedAt === undefined && Date.now() < end && (reportedAt === undefined || Date.now() < reportedAt + CLOSE_TIMEOUT_MS + 8000)) {
      if (startingAt === undefined && /station STARTING/.test(run.stderr)) startingAt = Date.now();
      if (reportedAt === undefined && /LG_ERR_PLUGIN_INIT_TIMEOUT/.test(run.stderr)) reportedAt = Date.now();
      await sleep(20);
    }
    if (reportedAt === undefined && /LG_ERR_PLUGIN_INIT_TIMEOUT/.test(run.stderr)) reportedAt = Date.now();
    const hung = exitedAt === undefined;
    if (hung) run.killGroup();
    const { code } = await run.exited;

    const tail = run.stderr.trim().split('\n').slice(-6).join('\n');
    expect(reportedAt, `LG_ERR_PLUGIN_INIT_TIMEOUT never reported; log tail:\n${tail}`).toBeDefined();
    expect(reportedAt! - (startingAt ?? spawnedAt), `time from ${startingAt === undefined ? 'the spawn' : '"station STARTING"'} to the time-out report`).toBeLessThan(INIT_TIMEOUT_MS + (startingAt === undefined ? 10_000 : 2000));
    const line = run.stderr.split('\n').find((l) => l.includes('LG_ERR_PLUGIN_INIT_TIMEOUT'))!;
    expect(line, 'the error names the step and its plugin').toMatch(/hang/);
    expect(line).toMatch(/faults\/hang@1/);
    expect(hung, `linegate run reported the time-out and then did not exit within ${CLOSE_TIMEOUT_MS + 8000} ms of the report (killed by the test); log tail:\n${tail}`).toBe(false);
    expect(exitedAt! - reportedAt!, 'time from the report to the exit').toBeLessThan(CLOSE_TIMEOUT_MS + 3000);
    expect(code, 'a start-up failure is a run-time failure: exit 1').toBe(1);
    expect(run.stdout, 'no summary: the station never ran').not.toMatch(/"summary"/);
  });
});
