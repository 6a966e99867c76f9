import path from 'node:path';
import { pino } from 'pino';
import { compileStation } from '../../runtime/compile/compile.js';
import type { Logger } from '../../runtime/contract.js';
import { Station } from '../../runtime/station.js';
import { testRegistry } from './probe-plugins.js';
import { testRoot } from './roots.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const silentLog: Logger = pino({ level: 'silent' });

/** A logger that keeps what it was told, to assert on the warnings a plant operator would read. */
export function capturingLog(): { readonly log: Logger; readonly entries: () => Array<Record<string, unknown> & { msg?: string; level: number }> } {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  return { log, entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown> & { msg?: string; level: number }) };
}

/**
 * A station from plain data, compiled against built-ins plus probe plugins. Under vitest it has a
 * root of its own (models and fixtures from the repository, everything it writes in a temp folder);
 * for the benches, the repository.
 */
export function stationFrom(data: unknown, log: Logger = silentLog, root: string = process.env.VITEST === undefined ? ROOT : testRoot()): Station {
  return new Station(compileStation(data, path.join(root, 'stations', 'test.yaml'), testRegistry()), log);
}
