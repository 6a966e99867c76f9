import { format } from 'node:util';
import type { Logger } from '../contract.js';

type Level = 'debug' | 'info' | 'warn' | 'error';

const METHODS: Readonly<Record<'log' | 'info' | 'warn' | 'error' | 'debug' | 'trace', Level>> = { log: 'info', info: 'info', warn: 'warn', error: 'error', debug: 'debug', trace: 'debug' };

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * Sends what libraries print with console.* (node-opcua-pki's notices, node-opcua's server dumps)
 * through `log()`, one log line per call, colours stripped: stderr stays a log stream and stdout
 * stays machine-readable. linegate itself never prints with console. Returns what restores console.
 */
export function routeConsole(log: () => Logger, from = 'console'): () => void {
  const saved = Object.fromEntries(Object.keys(METHODS).map((m) => [m, console[m as keyof typeof METHODS]])) as Record<keyof typeof METHODS, (...a: unknown[]) => void>;
  for (const [method, level] of Object.entries(METHODS) as [keyof typeof METHODS, Level][]) {
    console[method] = (...args: unknown[]): void => {
      const text = format(...args)
        .replace(ANSI, '')
        .trim();
      if (text !== '') log()[level]({ from }, text);
    };
  }
  return () => {
    for (const [method, fn] of Object.entries(saved)) console[method as keyof typeof METHODS] = fn;
  };
}
