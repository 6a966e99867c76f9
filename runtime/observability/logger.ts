import { createRequire } from 'node:module';
import { pino, type Logger as PinoLogger } from 'pino';

/** Where log lines go: anything with a `write`, e.g. process.stderr or a test's collector. */
export interface LogDestination {
  write(line: string): unknown;
  readonly isTTY?: boolean;
}

export interface LoggerOptions {
  readonly level?: string;
  /** Human-readable lines; default: when the destination is a terminal. */
  readonly pretty?: boolean;
  /** Default: the process's stderr. */
  readonly destination?: LogDestination;
  /** Read for LINEGATE_LOG_LEVEL; default: the process's environment. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Secrets never reach a log line, whatever a plugin puts in its bindings. */
const REDACT = ['password', 'passphrase', 'secret', 'token', '*.password', '*.passphrase', '*.secret', '*.token', 'config.auth', '*.config.auth'];

/** Logs go to stderr: stdout is kept for machine-readable output (the run summary, JSON reports). */
export function createLogger(options: LoggerOptions = {}): PinoLogger {
  const level = options.level ?? (options.env ?? process.env).LINEGATE_LOG_LEVEL ?? 'info';
  const base = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } };
  const dest = options.destination ?? process.stderr;
  if (options.pretty ?? dest.isTTY === true) {
    // Loaded only for a terminal: a service's JSON logs never pay for it.
    const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
    const format = prettyFactory({ colorize: dest.isTTY === true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' });
    return pino(base, { write: (line: string) => void dest.write(format(line)) });
  }
  // The process's own stderr gets pino's buffered writer: a log line never waits on a slow terminal or pipe.
  return pino(base, dest === process.stderr ? pino.destination({ dest: 2, sync: false }) : { write: (line: string) => void dest.write(line) });
}
