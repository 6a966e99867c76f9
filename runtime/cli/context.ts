import type { Logger } from '../contract.js';
import type { CliIo } from './io.js';

/** The log flags every command takes. */
export interface LogOptions {
  readonly logLevel?: string;
  readonly pretty?: boolean;
}

/** What a command's implementation gets from main(): the io, and its logger made from its own flags. */
export interface CommandContext {
  readonly io: CliIo;
  /** The command's logger, made once from its --log-level / --pretty flags (level default: LINEGATE_LOG_LEVEL, else `defaultLevel`). */
  logger(opts: LogOptions, defaultLevel?: string): Logger;
}
