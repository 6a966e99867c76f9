/**
 * node-opcua, loaded on first use and told to log to stderr. Loaded lazily
 * because it costs seconds to import (every CLI command would pay), and
 * re-routed because it prints its warnings on stdout, which belongs to
 * linegate's machine-readable output (the run summary).
 */
type NodeOpcua = typeof import('node-opcua');

let loading: Promise<NodeOpcua> | undefined;

export function loadOpcua(): Promise<NodeOpcua> {
  return (loading ??= (async () => {
    const debug = await import('node-opcua-debug');
    const toStderr = (...args: unknown[]): void => {
      const text = args.filter((a) => typeof a !== 'object' || a === null).map(String).join(' ');
      if (text.trim() !== '') process.stderr.write(`node-opcua: ${text}\n`);
    };
    debug.setWarningLogger(toStderr);
    debug.setErrorLogger(toStderr);
    debug.setTraceLogger(toStderr);
    debug.setDebugLogger(toStderr);
    return import('node-opcua');
  })());
}
