import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LinegateProcess } from '../helpers/child.js';
import { demoCopy } from '../helpers/demo.js';
import { testRoot } from '../helpers/roots.js';
import { ROOT } from '../helpers/station.js';

/**
 * `linegate` as a process, where the process is the point: a signal, and what a real process
 * writes on stderr (node-opcua's global loggers and console output included). It runs the
 * compiled build the test run made; the child is killed with its group if it outlives the test.
 */

describe('linegate run as a process', () => {
  it('drains and exits 0 with a summary on SIGTERM, and every line on its stderr is a JSON log line, node-opcua\'s included', async () => {
    // A PKI of its own: linegate makes its certificate here, which node-opcua announces on its own logger.
    const { file } = demoCopy({ freshPki: true });
    const run = new LinegateProcess(['run', file, '--no-pretty'], { timeoutMs: 45_000 });
    await run.waitFor(/"msg":"station started"/, 40_000);
    run.signal('SIGTERM');
    const { code } = await run.exited;
    expect(code, run.stderr.slice(-2000)).toBe(0);
    const { summary } = run.lastJson<{ summary: { frames: number; pass: number; fail: number; error: number; dropped: number; undelivered: number } }>();
    expect(summary.pass + summary.fail + summary.error + summary.dropped + summary.undelivered).toBe(summary.frames);
    const lines = run.stderr.trim().split('\n');
    const notJson = lines.filter((l) => {
      try {
        return typeof (JSON.parse(l) as { level?: unknown }).level !== 'number';
      } catch {
        return true;
      }
    });
    expect(notJson).toEqual([]);
    expect(run.stderr).toContain('draining');
    expect(run.stderr).toMatch(/"from":"node-opcua".*Creating default certificate/);
  }, 60_000);
});

describe('bin/linegate.mjs and the build', () => {
  /** The repository's code in a folder of its own (node_modules linked), built as npm install builds it. */
  async function builtCopy(): Promise<string> {
    const dir = testRoot('lg-build-');
    for (const d of ['bin', 'runtime', 'plugins']) cpSync(path.join(ROOT, d), path.join(dir, d), { recursive: true });
    for (const f of ['package.json', 'tsconfig.json']) cpSync(path.join(ROOT, f), path.join(dir, f));
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    const build = spawnSync(process.execPath, [path.join(dir, 'bin/build.mjs')], { encoding: 'utf8' });
    expect(build.status, build.stderr).toBe(0);
    return dir;
  }

  const help = (dir: string): { status: number | null; stdout: string; stderr: string } =>
    spawnSync(process.execPath, [path.join(dir, 'bin/linegate.mjs'), '--help'], { encoding: 'utf8', env: { ...process.env, LINEGATE_LOG_LEVEL: 'info' } });

  it('runs the compiled build while it is the build of the sources, and the sources through tsx, saying why, once one changed: never stale code', async () => {
    const dir = await builtCopy();
    const compiled = help(dir);
    expect(compiled.status).toBe(0);
    expect(compiled.stdout).toContain('Usage: linegate');
    expect(compiled.stderr).toBe('');
    // An edit since the build, as a developer makes one: the build no longer stands for the sources.
    const cli = path.join(dir, 'runtime/cli.ts');
    writeFileSync(cli, readFileSync(cli, 'utf8').replace("'Station-side AI vision inspection:", "'Edited: station-side AI vision inspection:"));
    const edited = help(dir);
    expect(edited.status).toBe(0);
    expect(edited.stdout).toContain('Edited: station-side');
    expect(JSON.parse(edited.stderr.trim())).toMatchObject({ level: 40, msg: expect.stringContaining('through tsx (slower start): runtime/cli.ts changed since the build') });
    // Rebuilt (npm start and npm test do so first): compiled again, with the edit.
    expect(spawnSync(process.execPath, [path.join(dir, 'bin/build.mjs')]).status).toBe(0);
    const rebuilt = help(dir);
    expect([rebuilt.stderr, rebuilt.stdout.includes('Edited: station-side')]).toEqual(['', true]);
    // A module deleted since: the next build removes its JavaScript, which could otherwise still be imported.
    writeFileSync(path.join(dir, 'runtime/gone-soon.ts'), 'export const gone = 1;\n');
    expect(spawnSync(process.execPath, [path.join(dir, 'bin/build.mjs')]).status).toBe(0);
    expect(existsSync(path.join(dir, 'dist/runtime/gone-soon.js'))).toBe(true);
    rmSync(path.join(dir, 'runtime/gone-soon.ts'));
    expect(spawnSync(process.execPath, [path.join(dir, 'bin/build.mjs')]).status).toBe(0);
    expect([existsSync(path.join(dir, 'dist/runtime/gone-soon.js')), existsSync(path.join(dir, 'dist/runtime/gone-soon.js.map'))]).toEqual([false, false]);
  }, 60_000);

  it('takes a touched but unchanged source, or a build file someone altered, for what it is', async () => {
    const dir = await builtCopy();
    const source = path.join(dir, 'runtime/errors.ts');
    utimesSync(source, new Date(), new Date(Date.now() + 60_000)); // a checkout: newer, same bytes
    expect(help(dir).stderr).toBe('');
    writeFileSync(path.join(dir, 'dist/runtime/errors.js'), `${readFileSync(path.join(dir, 'dist/runtime/errors.js'), 'utf8')}\n// altered\n`);
    expect(help(dir).stderr).toContain('dist/runtime/errors.js is not what the build wrote');
  }, 60_000);
});
