import path from 'node:path';
import { pino } from 'pino';
import { compileStation } from '../../runtime/compile/compile.js';
import type { Logger } from '../../runtime/contract.js';
import { Station } from '../../runtime/station.js';
import { testRegistry } from './probe-plugins.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const silentLog: Logger = pino({ level: 'silent' });

/** A station from plain data, compiled against built-ins plus probe plugins, rooted at the repository. */
export function stationFrom(data: unknown, log: Logger = silentLog): Station {
  return new Station(compileStation(data, path.join(ROOT, 'stations', 'test.yaml'), testRegistry()), log);
}
