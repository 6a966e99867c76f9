import type { LogDestination } from '../observability/logger.js';

/** Where a CLI run reads its environment and writes its output: the process, or a test's collectors. */
export interface CliIo {
  /** Machine-readable output only (summaries, reports, JSON). */
  readonly stdout: LogDestination;
  /** The log stream: pino JSON lines, or pretty lines in a terminal. */
  readonly stderr: LogDestination;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Ends the process at once: a second SIGINT. main() itself never ends the process. */
  exit(code: number): void;
}

export const processIo = (): CliIo => ({ stdout: process.stdout, stderr: process.stderr, env: process.env, exit: (code) => process.exit(code) });

/** Exit codes: 0 success, 1 a run-time failure, 2 bad input (a station file, an argument, a missing folder), 3 a failed gate. */
export const EXIT = { ok: 0, runtime: 1, input: 2, gate: 3 } as const;
