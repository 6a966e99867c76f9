import { spawn } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InspectionResult } from '../../runtime/result.js';
import { ROOT } from '../helpers/station.js';
import { scratch } from '../helpers/scratch.js';

/** The CLI as a user runs it: a child process of bin/linegate.mjs. */
function linegate(args: string[], opts: { untilStdout?: RegExp; signal?: NodeJS.Signals } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/linegate.mjs'), ...args], { cwd: ROOT, env: { ...process.env, LINEGATE_LOG_LEVEL: 'info' } });
    let stdout = '';
    let stderr = '';
    let signalled = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (opts.untilStdout !== undefined && !signalled && opts.untilStdout.test(stderr)) {
        signalled = true;
        child.kill(opts.signal ?? 'SIGTERM');
      }
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function tempStation(yaml: string): string {
  const dir = scratch('lg-cli-');
  const file = path.join(dir, 'station.yaml');
  writeFileSync(file, `${yaml.trim()}\n`);
  return file;
}

const lastLine = (s: string): string => s.trim().split('\n').at(-1) ?? '';

/** The demo station, rooted at the repository wherever the copy is written. */
const demo = (): string => readFileSync(path.join(ROOT, 'stations/demo.yaml'), 'utf8').replace('station:\n', `station:\n  root: ${ROOT}\n`);

describe('linegate CLI', () => {
  it('check exits 0 and prints the plan for the demo station', async () => {
    const r = await linegate(['check', 'stations/demo.yaml']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('station demo-01');
    expect(r.stdout).toContain('core/threshold-rules@1');
  });

  it('check exits 2 and names the step when a plugin id is misspelt', async () => {
    const file = tempStation(demo().replace('core/classify-decode@1', 'core/clasify-decode@1'));
    const r = await linegate(['check', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('LG_ERR_PLUGIN_UNKNOWN (step "classify", stages[2].use)');
    expect(r.stderr).toContain('did you mean core/classify-decode@1');
  });

  it('check --json prints the coded errors as JSON on stderr', async () => {
    const file = tempStation('station: { id: x }\nsource: { name: cam, use: core/folder-source@1 }\nstages: [{ name: v, use: core/threshold-rules@1, config: { rules: [] } }]');
    const r = await linegate(['check', '--json', file]);
    expect(r.code).toBe(2);
    const { errors } = JSON.parse(lastLine(r.stderr)) as { errors: { code: string; path: string }[] };
    expect(errors.map((e) => [e.code, e.path])).toEqual([
      ['LG_ERR_STATION_STEP_CONFIG', 'source.config.dir'],
      ['LG_ERR_STATION_STEP_CONFIG', 'stages[0].config.rules'],
    ]);
  });

  it('run --max-frames 50 exits 0 and ends stdout with the one summary line', async () => {
    const r = await linegate(['run', 'stations/demo.yaml', '--max-frames', '50', '--no-pretty']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const { summary } = JSON.parse(lines[0]!) as { summary: Record<string, unknown> };
    expect(Object.keys(summary)).toEqual(['frames', 'pass', 'fail', 'error', 'dropped', 'undelivered', 'fps', 'latencyMs']);
    expect(summary).toMatchObject({ frames: 50, dropped: 0, undelivered: 0, latencyMs: { p50: expect.any(Number), p95: expect.any(Number), p99: expect.any(Number) } });
    // logs are pino JSON on stderr
    for (const line of r.stderr.trim().split('\n').filter((l) => l.startsWith('{'))) expect(JSON.parse(line)).toHaveProperty('level');
    // the demo's simulated PLC triggered every part and got exactly one verdict per trigger, each with the right echo
    const sim = r.stderr
      .split('\n')
      .filter((l) => l.includes('what the simulated PLC saw'))
      .map((l) => (JSON.parse(l) as { plcSim: { triggers: number; verdicts: Record<string, number>; echoMismatches: number } }).plcSim)[0]!;
    const verdicts = Object.values(sim.verdicts).reduce((a, b) => a + b, 0);
    expect(sim.echoMismatches).toBe(0);
    expect(verdicts).toBeGreaterThanOrEqual(50);
    expect((sim.verdicts['0'] ?? 0) + (sim.verdicts['3'] ?? 0)).toBe(0);
    expect(sim.triggers - verdicts).toBeLessThanOrEqual(1); // at most the trigger raised as the station stopped
  }, 30_000);

  it('drains and exits 0 with a summary on SIGTERM', async () => {
    const r = await linegate(['run', 'stations/demo.yaml', '--no-pretty'], { untilStdout: /station started/ });
    expect(r.code).toBe(0);
    const { summary } = JSON.parse(lastLine(r.stdout)) as { summary: { frames: number; pass: number; fail: number; error: number; dropped: number; undelivered: number } };
    expect(summary.pass + summary.fail + summary.error + summary.dropped + summary.undelivered).toBe(summary.frames);
    expect(r.stderr).toContain('draining');
  }, 30_000);

  it('exits 2 for a station file that does not exist, and 2 for a bad argument', async () => {
    expect((await linegate(['run', 'stations/nope.yaml'])).code).toBe(2);
    expect((await linegate(['run', 'stations/demo.yaml', '--max-frames', 'many'])).code).toBe(2);
  });

  it('exits 2 when the source folder is missing: bad input found at start', async () => {
    const file = tempStation(demo().replace('dir: fixtures/casting', 'dir: /nonexistent/camera/drop'));
    const r = await linegate(['run', file]);
    expect(r.stderr).toContain('LG_ERR_SOURCE_NOT_FOUND (step "cam0")');
    expect(r.code).toBe(2);
  });

  it('exits 1 when a step fails to start for a run-time reason', async () => {
    const file = tempStation(
      demo()
        .replace('sinks:', 'plugins: [./broken.mjs]\nsinks:\n  - { name: broken, use: acme/broken@1 }'),
    );
    writeFileSync(
      path.join(path.dirname(file), 'broken.mjs'),
      `import { z } from '${import.meta.resolve('zod')}';
export const plugin = { manifest: { id: 'acme/broken@1', kind: 'sink', description: 'cannot reach its server', config: z.object({}) },
  async init() { throw new Error('connect ECONNREFUSED 127.0.0.1:1'); } };`,
    );
    const r = await linegate(['run', file]);
    expect(r.stderr).toContain('LG_ERR_PLUGIN_INIT (step "broken")');
    expect(r.stderr).toContain('ECONNREFUSED');
    expect(r.code).toBe(1);
  });

  it('schema result prints a JSON Schema that accepts a real result record', async () => {
    const r = await linegate(['schema', 'result']);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout) as { type: string; required: string[] };
    expect(schema.type).toBe('object');
    expect(schema.required).toEqual(expect.arrayContaining(['resultId', 'partId', 'verdict', 'rejectCode', 'defects', 'timings', 'delivery']));
    expect(InspectionResult.shape.verdict.options).toEqual(['pass', 'fail', 'error']);
  });

  it('prints help for every command with exit 0', async () => {
    for (const args of [['--help'], ['run', '--help'], ['check', '--help'], ['schema', '--help'], ['plugins', '--help']]) {
      const r = await linegate(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toContain('Usage: linegate');
    }
  });
});
