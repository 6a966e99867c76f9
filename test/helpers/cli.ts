import { main } from '../../runtime/cli.js';

/** One line of the log a CLI run wrote on stderr (pino JSON). */
export type LogLine = Record<string, unknown> & { level: number; msg?: string; code?: string };

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stderr as log lines; fails the test on a line that is not JSON (stderr is a log stream). */
  logs(): LogLine[];
  /** The messages of the log lines, to look for words in. */
  messages(): string[];
  /** The last line of stdout as JSON (the summary or report line). */
  lastJson<T>(): T;
}

/**
 * `linegate <args>` run in this process through main(argv, io): the same code as the binary, without
 * a process to start, a transpile to pay or a child to kill. For behaviour; a test about the process
 * itself (signals, exit on SIGKILL of its peer) spawns it (see child.ts).
 */
export async function linegate(args: readonly string[], env: Record<string, string> = {}, onStderr?: (text: string) => void): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'linegate', ...args], {
    stdout: { write: (s: string) => void (stdout += s) },
    stderr: {
      write: (s: string) => {
        stderr += s;
        onStderr?.(stderr);
      },
      isTTY: false,
    },
    env: { ...process.env, LINEGATE_LOG_LEVEL: 'info', ...env },
    exit: (c) => {
      throw new Error(`linegate ${args.join(' ')} tried to end the process with ${c}`);
    },
  });
  const logs = (): LogLine[] =>
    stderr
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        try {
          return JSON.parse(l) as LogLine;
        } catch {
          throw new Error(`stderr line is not a JSON log line: ${l}`);
        }
      });
  return {
    code,
    stdout,
    stderr,
    logs,
    messages: () => logs().map((l) => l.msg ?? ''),
    lastJson: <T>() => JSON.parse(stdout.trim().split('\n').at(-1) ?? 'null') as T,
  };
}
