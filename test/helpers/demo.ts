import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { atFileEnd } from './cleanup.js';
import { REDIS_URL, dropPrefix, uniquePrefix } from './redis.js';
import { sharedPki, testRoot } from './roots.js';
import { ROOT } from './station.js';

export interface StepData {
  name: string;
  use: string;
  config?: Record<string, unknown>;
  critical?: boolean;
}

export interface StationData {
  station: Record<string, unknown>;
  plugins?: string[];
  source: StepData;
  stages: StepData[];
  sinks: StepData[];
}

export interface DemoCopy {
  /** The station file, in `<root>/stations/`: its relative paths resolve in the root. */
  readonly file: string;
  readonly root: string;
  /** The queue sink's prefix: this copy's own, its keys dropped when the test file is done. */
  readonly prefix: string;
}


/**
 * stations/demo.yaml as `npm start` runs it, in a test root of its own (its results, spool, archive
 * there), its queue on REDIS_URL under a prefix of its own, and its PLC link's PKI shared by the
 * test run (`freshPki` for one made on the spot). `edit` changes the station data before it is written.
 */
export function demoCopy(o: { readonly edit?: (s: StationData) => void; readonly freshPki?: boolean; readonly name?: string } = {}): DemoCopy {
  const root = testRoot('lg-demo-');
  const station = parse(readFileSync(path.join(ROOT, 'stations/demo.yaml'), 'utf8')) as StationData;
  const prefix = uniquePrefix();
  atFileEnd(() => dropPrefix(prefix));
  for (const sink of station.sinks) {
    if (sink.use === 'core/bullmq@1') Object.assign((sink.config ??= {}), { prefix, redis: { url: REDIS_URL } });
    if (sink.use === 'core/opcua-plc@1') (sink.config ??= {}).security = { pki: o.freshPki === true ? 'var/fresh-pki' : sharedPki() };
  }
  o.edit?.(station);
  const file = path.join(root, 'stations', o.name ?? 'demo.json');
  writeFileSync(file, JSON.stringify(station, null, 1));
  return { file, root, prefix };
}

/** The step of `station` named `name`. */
export function stepNamed(station: StationData, name: string): StepData {
  const step = [station.source, ...station.stages, ...station.sinks].find((s) => s.name === name);
  if (step === undefined) throw new Error(`no step ${name}`);
  return step;
}
