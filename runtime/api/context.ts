import type { Logger } from '../contract.js';
import type { HistoryReader } from '../history.js';
import type { ModelControl } from '../deploy/types.js';
import type { Station } from '../station.js';
import type { EventHub } from './events.js';
import type { ImageStore } from './images.js';
import type { StationMetrics } from './metrics.js';

/** The API settings in effect: the station file's `api:` block with defaults and `--api-port` applied. */
export interface EffectiveApiSettings {
  readonly host: string;
  readonly port: number;
  readonly tokenFile?: string;
  /** Write a new token into tokenFile when it does not exist. */
  readonly generateToken?: boolean;
  readonly auth: 'writes' | 'all';
  readonly maxUploadMiB: number;
}

/** What the routes are built from. */
export interface ApiContext {
  readonly station: Station;
  /** The station's live model deployment, when it offers one (modelControlOf). */
  readonly models?: ModelControl;
  readonly history: HistoryReader;
  /** The last results in memory, for what the history has not committed yet (a result just announced on the event stream). */
  readonly recent?: HistoryReader;
  readonly images: ImageStore;
  readonly metrics: StationMetrics;
  readonly events: EventHub;
  readonly settings: EffectiveApiSettings;
  /** Whether a token is configured (state-changing routes are on). */
  readonly writesOn: boolean;
  readonly log: Logger;
  readonly startedAt: number;
  /** The port the server listens on (the chosen one for port 0), or the configured one before it listens. */
  readonly boundPort: () => number;
}

/**
 * Whether the station offers live model deployment (runtime/station.ts implements ModelControl):
 * the API mounts the deploy routes either way, and answers 503 from a station that does not.
 */
export function hasModelControl(station: object): station is ModelControl {
  return 'deployModel' in station && typeof station.deployModel === 'function' && 'models' in station && typeof station.models === 'function';
}
