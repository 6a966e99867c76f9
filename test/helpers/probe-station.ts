import type { Logger } from '../../runtime/contract.js';
import type { StationSettings } from '../../runtime/config/station-schema.js';
import { Station } from '../../runtime/station.js';
import { silentLog, stationFrom } from './station.js';

export interface ProbeStationOptions {
  readonly station?: Record<string, unknown>;
  readonly source?: Record<string, unknown>;
  readonly stage?: Record<string, unknown>;
  readonly sinks?: readonly { readonly name: string; readonly critical?: boolean; readonly config?: Record<string, unknown> }[];
  /** Settings set after the schema check: for what the schema refuses but the loop must still survive. */
  readonly unchecked?: Partial<StationSettings>;
  readonly log?: Logger;
}

let n = 0;
const open: Station[] = [];

/**
 * A station of probe plugins (source `cam`, stages `work` and `verdict`, sinks as asked: by default a
 * critical `plc`) under a probe name of its own, so tests never share state. Sink probes are `<name>-<sink>`.
 */
export function probeStation(o: ProbeStationOptions = {}): { station: Station; name: string } {
  const name = `p${++n}-${process.pid}`;
  const data = {
    station: { id: 'loop-test', cycleBudgetMs: 1000, ...o.station },
    source: { name: 'cam', use: 'test/source@1', config: { probe: name, ...o.source } },
    stages: [
      { name: 'work', use: 'test/stage@1', config: { probe: name, ...o.stage } },
      { name: 'verdict', use: 'test/decide@1', config: { probe: name } },
    ],
    sinks: (o.sinks ?? [{ name: 'plc', critical: true }]).map((s) => ({ name: s.name, use: 'test/sink@1', critical: s.critical, config: { probe: `${name}-${s.name}`, ...s.config } })),
  };
  const log = o.log ?? silentLog;
  let station = stationFrom(data, log);
  if (o.unchecked !== undefined) station = new Station({ ...station.plan, settings: { ...station.plan.settings, ...o.unchecked } }, log);
  open.push(station);
  return { station, name };
}

/** Closes every probe station made so far (for afterEach). */
export async function closeProbeStations(): Promise<void> {
  await Promise.all(open.splice(0).map((s) => s.close()));
}
