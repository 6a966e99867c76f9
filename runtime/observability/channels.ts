import { channel } from 'node:diagnostics_channel';

/**
 * Timings are published on diagnostics channels, never logged per frame:
 * a subscriber (bench, metrics exporter) pays for them, nobody else does.
 */
export interface StageTiming {
  readonly station: string;
  readonly step: string;
  readonly sequence: number;
  readonly ms: number;
}
export interface PartTiming {
  readonly station: string;
  readonly sequence: number;
  readonly verdict: string;
  readonly ms: number;
}

export const stageChannel = channel('linegate:stage');
export const partChannel = channel('linegate:part');
