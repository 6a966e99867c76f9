import type { CommanderError } from 'commander';
import type { Logger } from '../contract.js';
import { LinegateError, LinegateErrors, isLinegateError } from '../errors.js';
import { EXIT } from './io.js';

/** A misuse of the command line as a coded error: commander's own words, without its "error: " prefix. */
export function usageError(e: CommanderError): LinegateError {
  const text = e.message
    .replace(/^error: /, '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ');
  const what = e.code === 'commander.help' ? 'a command is needed' : text;
  return new LinegateError('LG_ERR_CLI_USAGE', [`${what} (\`linegate --help\` lists the commands, \`linegate <command> --help\` its options)`], { cause: e });
}

/**
 * Coded errors to the log, one line each (`errors` in one line with --json), with their code, step
 * and path as fields; anything else as a fatal line with its stack. The exit code says whether the
 * input (every error a 4xx) or the run was at fault.
 */
export function report(e: unknown, log: Logger, json: boolean): number {
  const errors = e instanceof LinegateErrors ? e.errors : isLinegateError(e) ? [e] : undefined;
  if (errors === undefined) {
    log.fatal({ err: e }, `linegate: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT.runtime;
  }
  if (json) log.error({ errors: errors.map((x) => x.toJSON()) }, errors.length === 1 ? `${errors[0]!.code}: ${errors[0]!.message}` : `${errors.length} errors`);
  else
    for (const x of errors) {
      const where = [x.step === undefined ? '' : `step "${x.step}"`, x.path ?? ''].filter(Boolean).join(', ');
      log.error({ code: x.code, retryable: x.retryable, ...(x.step === undefined ? {} : { step: x.step }), ...(x.path === undefined ? {} : { path: x.path }) }, `${x.code}${where === '' ? '' : ` (${where})`}: ${x.message}`);
    }
  return errors.every((x) => x.httpStatus >= 400 && x.httpStatus < 500) ? EXIT.input : EXIT.runtime;
}
