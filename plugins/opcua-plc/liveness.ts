import { EventEmitter } from 'node:events';
import type { Logger } from '../../runtime/contract.js';
import { messageOf } from '../../runtime/errors.js';
import type { PlcLink } from './link.js';

export interface LivenessEvents {
  'plc-heartbeat-lost': [silentMs: number];
  'plc-heartbeat-back': [];
}

/**
 * Heartbeats both ways: linegate's VisionHeartbeat counter, which the PLC's
 * watchdog reads, and a watch on the PLC's own heartbeat, for a PLC in STOP
 * whose OPC UA server still answers. Writes only while the link is up: a
 * timer that writes into a dead link piles up requests (node-opcua W21/W22).
 */
export class Liveness extends EventEmitter<LivenessEvents> {
  readonly #link: PlcLink;
  /** Whether the PLC may hear from us now: a heartbeat before the reconcile after a reconnect would open the PLC's interlock while a stale ResultValid is still up. */
  readonly #mayWrite: () => boolean;
  readonly #log: Logger;
  readonly #heartbeatMs: number;
  readonly #watchdogMs: number;
  #beat = 0;
  #beatTimer: NodeJS.Timeout | undefined;
  #watchTimer: NodeJS.Timeout | undefined;
  #plcSeenAt = Date.now();
  #plcLost = false;

  constructor(link: PlcLink, o: { readonly heartbeatMs: number; readonly plcWatchdogMs: number; readonly log: Logger; readonly mayWrite: () => boolean }) {
    super();
    this.#link = link;
    this.#mayWrite = o.mayWrite;
    this.#log = o.log;
    this.#heartbeatMs = o.heartbeatMs;
    this.#watchdogMs = o.plcWatchdogMs;
  }

  /** The counter as last written; re-asserted with VisionReady after a reconnect. */
  get beat(): number {
    return this.#beat;
  }

  get plcLost(): boolean {
    return this.#plcLost;
  }

  start(): void {
    if (this.#beatTimer !== undefined) return;
    this.#plcSeenAt = Date.now();
    this.#beatTimer = setInterval(() => this.#tick(), this.#heartbeatMs);
    if (this.#watchdogMs > 0) this.#watchTimer = setInterval(() => this.#check(), Math.max(50, this.#watchdogMs / 4));
  }

  stop(): void {
    clearInterval(this.#beatTimer);
    clearInterval(this.#watchTimer);
    this.#beatTimer = undefined;
    this.#watchTimer = undefined;
  }

  /** The PLC's heartbeat moved. */
  plcBeat(): void {
    this.#plcSeenAt = Date.now();
    if (!this.#plcLost) return;
    this.#plcLost = false;
    this.#log.info('PLC heartbeat is back');
    this.emit('plc-heartbeat-back');
  }

  #tick(): void {
    if (!this.#link.up || !this.#mayWrite()) return;
    this.#beat = (this.#beat + 1) % 2_147_483_647;
    this.#link.write({ visionHeartbeat: this.#beat }).catch((err: unknown) => this.#log.debug({ err: messageOf(err) }, 'heartbeat write failed'));
  }

  #check(): void {
    // While the link is down the PLC's heartbeat cannot arrive: that is the link's outage, not the PLC's.
    if (!this.#link.up) {
      this.#plcSeenAt = Date.now();
      return;
    }
    const silentMs = Date.now() - this.#plcSeenAt;
    if (this.#plcLost || silentMs <= this.#watchdogMs) return;
    this.#plcLost = true;
    this.#log.error({ silentMs }, 'PLC heartbeat lost: is the PLC running?');
    this.emit('plc-heartbeat-lost', silentMs);
  }
}
