import type { Logger } from '../contract.js';
import type { CliIo } from './io.js';

/** The first SIGINT/SIGTERM asks for a graceful stop; a second exits at once (130). Returns what removes the handlers. */
export function onStopSignals(log: Logger, io: CliIo, stopping: string, stop: () => void): () => void {
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (++signals === 1) {
      log.info({ signal: sig }, stopping);
      stop();
    } else {
      log.warn({ signal: sig }, 'second signal: exiting at once');
      io.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
