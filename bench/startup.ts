/**
 * How fast the CLI starts, as a user starts it: `linegate --help`, `linegate check` on the demo, and
 * the demo (`npm start`) until it is ready and until its first verdict, each a fresh process of
 * bin/linegate.mjs on the compiled build (dist/, built first if it is not fresh). For comparison,
 * `--help` with the TypeScript run through tsx, as every command ran before the build existed.
 *
 * The demo runs from a copy in a temp root (its results, spool and PKI there; the PKI kept across
 * its runs, as var/pki is across `npm start`s) with a queue prefix of its own.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { build } from '../bin/build.mjs';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin/linegate.mjs');

const r0 = (v: number): number => Math.round(v);
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Timed {
  readonly ms: number;
  readonly code: number | null;
}

/** Spawns node with `args` and resolves when it exits, or when `until(stderr, root)` says so (then kills it). */
function timed(args: readonly string[], o: { until?: () => boolean; onStderr?: (s: string) => void; timeoutMs?: number } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LINEGATE_LOG_LEVEL: 'info' } });
    let stderr = '';
    let done = false;
    const finish = (code: number | null): void => {
      if (done) return;
      done = true;
      clearInterval(poll);
      clearTimeout(limit);
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
      resolve({ ms: performance.now() - t0, code });
    };
    const poll = setInterval(() => {
      if (o.until?.() === true) finish(null);
    }, 5);
    const limit = setTimeout(() => {
      done = true;
      clearInterval(poll);
      process.kill(-child.pid!, 'SIGKILL');
      reject(new Error(`${args.slice(1).join(' ')} did not finish within ${o.timeoutMs ?? 60_000} ms:\n${stderr.slice(-2000)}`));
    }, o.timeoutMs ?? 60_000);
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      o.onStderr?.(stderr);
    });
    child.on('close', (code) => finish(code));
  });
}

/** stations/demo.yaml in a temp root: models and fixtures linked, its own queue prefix. */
function demoRoot(prefix: string): { root: string; file: string } {
  const root = mkdtempSync(path.join(os.tmpdir(), 'lg-bench-startup-'));
  for (const dir of ['models', 'fixtures']) symlinkSync(path.join(ROOT, dir), path.join(root, dir), 'dir');
  mkdirSync(path.join(root, 'stations'));
  const station = parse(readFileSync(path.join(ROOT, 'stations/demo.yaml'), 'utf8')) as { sinks: { use: string; config?: Record<string, unknown> }[] };
  for (const s of station.sinks) if (s.use === 'core/bullmq@1') s.config = { ...s.config, prefix };
  const file = path.join(root, 'stations/demo.json');
  writeFileSync(file, JSON.stringify(station));
  return { root, file };
}

/** The demo's queues gone from Redis again (none there: the demo kept everything in its spool, removed with its root). */
async function dropPrefix(prefix: string): Promise<void> {
  await (await import('../test/helpers/redis.js')).dropPrefix(prefix, process.env.LINEGATE_REDIS_URL ?? 'redis://127.0.0.1:6379');
}

/** A first line in var/results/: the first verdict, on disk. */
function firstResult(root: string): boolean {
  const dir = path.join(root, 'var/results');
  if (!existsSync(dir)) return false;
  return readdirSync(dir).some((f) => readFileSync(path.join(dir, f), 'utf8').includes('\n'));
}

export async function benchStartup(runs: number): Promise<Record<string, unknown>> {
  const built = await build();
  const help: number[] = [];
  const check: number[] = [];
  const tsxHelp: number[] = [];
  for (let i = 0; i < runs; i++) {
    help.push((await timed([BIN, '--help'])).ms);
    check.push((await timed([BIN, 'check', 'stations/demo.yaml'])).ms);
    tsxHelp.push((await timed(['--import', 'tsx', '-e', "const c = await import('./runtime/cli.ts'); process.exitCode = await c.main(process.argv);", '--', '--help'])).ms);
  }
  const prefix = `lg-bench-startup-${process.pid}`;
  const { root, file } = demoRoot(prefix);
  const ready: number[] = [];
  const firstVerdict: number[] = [];
  let throughTsx = 0;
  try {
    for (let i = 0; i < runs; i++) {
      rmSync(path.join(root, 'var/results'), { recursive: true, force: true });
      let readyAt: number | undefined;
      const t0 = performance.now();
      const r = await timed([BIN, 'run', file, '--no-pretty'], {
        until: () => firstResult(root),
        onStderr: (s) => {
          readyAt ??= s.includes('"msg":"station started"') ? performance.now() - t0 : undefined;
          // Someone edited a source during the bench: this run is not the compiled build's.
          if (s.includes('through tsx')) throughTsx++;
        },
      });
      if (readyAt !== undefined) ready.push(readyAt);
      firstVerdict.push(r.ms);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
    await dropPrefix(prefix);
  }
  const helpMs = r0(median(help));
  const demoFirstVerdictMs = r0(median(firstVerdict));
  return {
    runs,
    build: built.built ? `built now (${built.why})` : 'fresh',
    cpus: os.cpus().length,
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
    helpMs: { p50: helpMs, all: help.map(r0) },
    checkDemoMs: { p50: r0(median(check)), all: check.map(r0) },
    helpThroughTsxMs: { p50: r0(median(tsxHelp)), all: tsxHelp.map(r0) },
    demoReadyMs: { p50: r0(median(ready)), all: ready.map(r0) },
    demoFirstVerdictMs: { p50: demoFirstVerdictMs, all: firstVerdict.map(r0) },
    demoRunsThroughTsx: throughTsx,
    targets: { helpUnder1s: helpMs < 1000, demoFirstVerdictUnder6s: demoFirstVerdictMs < 6000 },
  };
}
