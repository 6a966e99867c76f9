import path from 'node:path';
import { pino } from 'pino';
import { compileStation } from '../../runtime/compile/compile.js';
import type { Logger } from '../../runtime/contract.js';
import { Station } from '../../runtime/station.js';
import { testRegistry } from './probe-plugins.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const silentLog: Logger = pino({ level: 'silent' });

/** A logger that keeps what it was told, to assert on the warnings a plant operator would read. */
export function capturingLog(): { readonly log: Logger; readonly entries: () => Array<Record<string, unknown> & { msg?: string; level: number }> } {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  return { log, entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown> & { msg?: string; level: number }) };
}

/** A station from plain data, compiled against built-ins plus probe plugins, rooted at the repository. */
export function stationFrom(data: unknown, log: Logger = silentLog): Station {
  return new Station(compileStation(data, path.join(ROOT, 'stations', 'test.yaml'), testRegistry()), log);
}
