import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './station.js';

const running = new Set<LinegateProcess>();

/**
 * `linegate <args>` as a user runs it, in its own process group so that a
 * test can kill it, and everything it started, at once.
 */
export class LinegateProcess {
  readonly #child: ChildProcessWithoutNullStreams;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: readonly string[], env: Record<string, string> = {}) {
    this.#child = spawn(process.execPath, [path.join(ROOT, 'bin/linegate.mjs'), ...args], {
      cwd: ROOT,
      detached: true,
      env: { ...process.env, LINEGATE_LOG_LEVEL: 'info', ...env },
    });
    this.#child.stdout.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.#child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.#child.on('close', (code, signal) => resolve({ code, signal })));
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  /** Resolves with the first match of `re` in stderr (the log), polling; rejects after `ms`. */
  async waitFor(re: RegExp, ms = 20_000, from = 0): Promise<RegExpExecArray> {
    const end = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.stderr.slice(from));
      if (m !== null) return m;
      if (Date.now() > end) throw new Error(`timed out waiting for ${re} in the log of linegate ${this.#child.spawnargs.slice(2).join(' ')}:\n${this.stderr.slice(-3000)}`);
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

/** For afterEach: whatever a test left running is killed with its group. */
export async function killAll(): Promise<void> {
  const left = [...running];
  for (const p of left) p.killGroup();
  await Promise.all(left.map((p) => p.exited));
}
