import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { afterEach } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');

const running = new Set<LinegateProcess>();

export interface SpawnOptions {
  readonly env?: Record<string, string>;
  /** Killed (SIGKILL, its whole group) when still running after this long; default 10 minutes, a bound for a test that forgot it. */
  readonly timeoutMs?: number;
  readonly cwd?: string;
}

/**
 * `linegate <args>` as a user runs it, in its own process group so that a test can kill it, and
 * everything it started, at once. For tests about the process (signals, exit codes, a peer killed);
 * behaviour is tested in-process (cli.ts). It runs the compiled build the test run made (see
 * test/setup/global.ts): no transpile per spawn. Every child still running is killed with its
 * group after each test (test/setup/each-file.ts), and at its time-out: none outlives its test.
 */
export class LinegateProcess {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #timer: NodeJS.Timeout;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: readonly string[], o: SpawnOptions | Record<string, string> = {}) {
    const opts: SpawnOptions = 'env' in o || 'timeoutMs' in o || 'cwd' in o ? (o as SpawnOptions) : { env: o as Record<string, string> };
    this.#child = spawn(process.execPath, [path.join(ROOT, 'bin/linegate.mjs'), ...args], {
      cwd: opts.cwd ?? ROOT,
      detached: true,
      env: { ...process.env, LINEGATE_LOG_LEVEL: 'info', ...opts.env },
    });
    this.#child.stdout.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.#child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.#child.on('close', (code, signal) => resolve({ code, signal })));
    this.#timer = setTimeout(() => this.killGroup(), opts.timeoutMs ?? 600_000);
    running.add(this);
    void this.exited.then(() => {
      clearTimeout(this.#timer);
      running.delete(this);
    });
  }

  /** Resolves with the first match of `re` in stderr (the log), polling; rejects after `ms`. */
  async waitFor(re: RegExp, ms = 20_000, from = 0): Promise<RegExpExecArray> {
    const end = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.stderr.slice(from));
      if (m !== null) return m;
      if (Date.now() > end) throw new Error(`timed out waiting for ${re} in the log of linegate ${this.#child.spawnargs.slice(2).join(' ')}:\n${this.stderr.slice(-3000)}`);
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) throw new Error(`linegate ${this.#child.spawnargs.slice(2).join(' ')} ended before ${re} appeared in its log:\n${this.stderr.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** How often `re` occurs in stderr. */
  count(re: RegExp): number {
    return [...this.stderr.matchAll(new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`))].length;
  }

  signal(sig: NodeJS.Signals): void {
    this.#child.kill(sig);
  }

  /** SIGKILL to the whole process group: the PLC pulled from the wall. */
  killGroup(): void {
    try {
      process.kill(-this.#child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  /** The last line of stdout as JSON (the summary or report line). */
  lastJson<T>(): T {
    return JSON.parse(this.stdout.trim().split('\n').at(-1) ?? 'null') as T;
  }
}

/** Whatever a test left running is killed with its group. */
export async function killAll(): Promise<void> {
  const left = [...running];
  for (const p of left) p.killGroup();
  await Promise.all(left.map((p) => p.exited));
}

// Also registered here for suites without test/setup/each-file.ts (the fault suite).
if (process.env.VITEST !== undefined) afterEach(killAll);
// A worker that ends (a run cancelled, a file timed out) takes its children with it.
process.once('exit', () => {
  for (const p of running) p.killGroup();
});
