import { pino, type Logger as PinoLogger } from 'pino';
import pretty from 'pino-pretty';

export interface LoggerOptions {
  readonly level?: string;
  /** Human-readable lines; default: when stderr is a terminal. */
  readonly pretty?: boolean;
}

/** Secrets never reach a log line, whatever a plugin puts in its bindings. */
const REDACT = ['password', 'passphrase', 'secret', 'token', '*.password', '*.passphrase', '*.secret', '*.token', 'config.auth', '*.config.auth'];

/** Logs go to stderr: stdout is kept for machine-readable output (the run summary, JSON reports). */
export function createLogger(options: LoggerOptions = {}): PinoLogger {
  const level = options.level ?? process.env.LINEGATE_LOG_LEVEL ?? 'info';
  const base = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } };
  if (options.pretty ?? process.stderr.isTTY) {
    return pino(base, pretty({ destination: 2, sync: true, colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' }));
  }
  return pino(base, pino.destination({ dest: 2, sync: false }));
}
