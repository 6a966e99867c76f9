/**
 * node-opcua, loaded on first use, with its log output sent to linegate's log. Loaded lazily
 * because it costs a second to import (every CLI command would pay); re-routed because it prints
 * with its own loggers on stdout, which belongs to linegate's machine-readable output.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { format } from 'node:util';
import type { Logger } from '../../runtime/contract.js';

type NodeOpcua = typeof import('node-opcua');

/** W27 warns about RSA PKCS#1 v1.5 (Basic128Rsa15), a policy linegate never offers or uses. */
const IRRELEVANT = /NODE-OPCUA-W27|--security-revert=CVE-2023-46809/;

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

let target: Logger | undefined;

/**
 * Where node-opcua's warnings and errors go from now on: the log of the station or command that
 * uses OPC UA (node-opcua's loggers are global to the process, so the last one set wins). Unset,
 * they go to console.warn / console.error, which the CLI routes into its own log.
 */
export function opcuaLogsTo(log: Logger): void {
  target = log.child({ from: 'node-opcua' });
}

const forward =
  (level: 'warn' | 'error' | 'debug') =>
  (_context: unknown, ...args: unknown[]): void => {
    const text = format(...args)
      .replace(ANSI, '')
      .trim();
    if (text === '' || IRRELEVANT.test(text)) return;
    if (target !== undefined) target[level](text);
    else if (level === 'error') console.error(`node-opcua: ${text}`);
    else if (level === 'warn') console.warn(`node-opcua: ${text}`);
  };

/**
 * On Node 20, node-opcua-secure-channel runs a diagnostic when it loads: it generates a 4096-bit RSA
 * key (2.5 s of a core on a line-side PC) only to warn, with W27, that Basic128Rsa15 needs a Node
 * flag. linegate never uses that policy, so the diagnostic's module is given a no-op in its place,
 * before node-opcua is loaded. If the module is not where it was, nothing is replaced.
 */
export function skipRsa15Diagnostic(): void {
  const require = createRequire(import.meta.url);
  let file: string;
  try {
    file = path.join(path.dirname(require.resolve('node-opcua-secure-channel')), 'verify_pcks1.js');
  } catch {
    return;
  }
  if (!existsSync(file) || require.cache[file] !== undefined) return;
  const Module = require('node:module') as { new (id: string): NodeJS.Module };
  const stub = new Module(file);
  stub.filename = file;
  stub.loaded = true;
  stub.exports = { testRSAPKCS1V15_EncryptDecrypt: async (): Promise<void> => undefined };
  require.cache[file] = stub;
}

/** node-opcua-debug's loggers (global to the process) forward to opcuaLogsTo's target. */
export function routeOpcuaLoggers(): void {
  const debug = createRequire(import.meta.url)('node-opcua-debug') as typeof import('node-opcua-debug');
  debug.setWarningLogger(forward('warn'));
  debug.setErrorLogger(forward('error'));
  debug.setTraceLogger(forward('debug'));
  debug.setDebugLogger(forward('debug'));
}

let loading: Promise<NodeOpcua> | undefined;

/** node-opcua, required rather than imported: through import(), Node would first scan its hundreds of CommonJS files for their export names. */
export function loadOpcua(): Promise<NodeOpcua> {
  return (loading ??= (async () => {
    skipRsa15Diagnostic();
    routeOpcuaLoggers();
    return createRequire(import.meta.url)('node-opcua') as NodeOpcua;
  })());
}
