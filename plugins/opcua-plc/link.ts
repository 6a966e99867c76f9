import { EventEmitter } from 'node:events';
import type { ClientMonitoredItemGroup, ClientSession, ClientSubscription, DataValue, OPCUAClient, UserIdentityInfo, WriteValueOptions } from 'node-opcua';
import type { Logger } from '../../runtime/contract.js';
import { withTimeout } from '../../runtime/execute/bounded.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import { diagnoseConnect, diagnoseSession } from './diagnose.js';
import { coerce, readTypes, resolveNamespaces, type DataType } from './nodes.js';
import { loadOpcua } from './opcua.js';
import { READ_TAGS, type TagMap, type TagName } from './tags.js';

/** How often the PLC's server sends a keep-alive on an idle subscription. */
const KEEPALIVE_MS = 1000;

type Ua = Awaited<ReturnType<typeof loadOpcua>>;

export interface LinkSecurity {
  readonly mode: 'None' | 'Sign' | 'SignAndEncrypt';
  readonly policy: 'None' | 'Basic256Sha256' | 'Aes128_Sha256_RsaOaep';
}

export interface LinkOptions {
  readonly endpoint: string;
  readonly tags: TagMap;
  readonly security: LinkSecurity;
  readonly user?: { readonly username: string; readonly password: string };
  /** Tries at start before giving up with a clear error: a dead endpoint must not hang start-up. */
  readonly connectAttempts: number;
  readonly connectDelayMs: number;
  readonly sessionTimeoutMs: number;
  /** PKI root for linegate's own certificate and trust lists (secure modes). */
  readonly pkiDir?: string;
  readonly applicationUri: string;
  readonly log: Logger;
}

/** What the subscription asks of the PLC's server; the server may grant slower. */
export interface WatchOptions {
  readonly publishingIntervalMs: number;
  /** 0: every change as it happens (exception-based), where the server can. */
  readonly samplingIntervalMs: number;
}

/** What the server granted: a trigger can wait up to about publishing + sampling before linegate sees it. */
export interface Granted {
  readonly publishingIntervalMs: number;
  /** The slowest of the watched tags. */
  readonly samplingIntervalMs: number;
  /** Publishing intervals without a change before the server sends an empty keep-alive (about 1 s's worth asked). */
  readonly keepAliveCount: number;
  /** Publishing intervals without a publish request before the server drops the subscription. */
  readonly lifetimeCount: number;
}

/**
 * Values from one notification message, per tag in the order the server
 * queued them. A batch is the unit of consistency: a PartId and counter in
 * the same batch as a Trigger edge are the ones the PLC set for that trigger.
 */
export type Batch = ReadonlyMap<TagName, readonly unknown[]>;

export interface LinkEvents {
  /** The session works again after a loss: the PLC may have restarted and forgotten what we wrote. */
  up: [];
  down: [reason: string];
  batch: [values: Batch];
}

type Writable = Partial<Record<TagName, string | number | boolean>>;

/**
 * One long-lived OPC UA session to the PLC. Tag DataTypes are read once at
 * start and every write uses them exactly; writes are refused, not queued,
 * while the link is down (nothing piles up to flood the PLC on reconnect).
 */
export class PlcLink extends EventEmitter<LinkEvents> {
  readonly #ua: Ua;
  readonly #client: OPCUAClient;
  readonly #session: ClientSession;
  /** The map as configured (it may name namespaces by URI) and as resolved for the server now. */
  readonly #configured: TagMap;
  #tags: TagMap;
  #types: Map<TagName, DataType>;
  readonly #log: Logger;
  #subscription: ClientSubscription | undefined;
  #watching: WatchOptions | undefined;
  #granted: Granted | undefined;
  #pending: Map<TagName, unknown[]> | undefined;
  #up = true;
  #closing: Promise<void> | undefined;

  private constructor(ua: Ua, client: OPCUAClient, session: ClientSession, configured: TagMap, resolved: TagMap, types: Map<TagName, DataType>, log: Logger) {
    super();
    this.#ua = ua;
    this.#client = client;
    this.#session = session;
    this.#configured = configured;
    this.#tags = resolved;
    this.#types = types;
    this.#log = log;
    client.on('connection_lost', () => this.#setUp(false, 'connection lost'));
    client.on('connection_reestablished', () => void this.#reestablished());
    session.on('session_closed', () => this.#setUp(false, 'session closed'));
  }

  static async open(o: LinkOptions): Promise<PlcLink> {
    const ua = await loadOpcua();
    const { OPCUAClient, MessageSecurityMode, SecurityPolicy, UserTokenType } = ua;
    const client = OPCUAClient.create({
      applicationName: 'linegate',
      applicationUri: o.applicationUri,
      endpointMustExist: false,
      keepSessionAlive: true,
      requestedSessionTimeout: o.sessionTimeoutMs,
      securityMode: MessageSecurityMode[o.security.mode],
      securityPolicy: SecurityPolicy[o.security.policy],
      // Finite at start; node-opcua keeps the same strategy for reconnection after a loss, where we want it patient.
      connectionStrategy: { initialDelay: o.connectDelayMs, maxDelay: Math.max(o.connectDelayMs * 2, 2000), maxRetry: o.connectAttempts - 1 },
      ...(o.pkiDir === undefined ? {} : { clientCertificateManager: await certificateManager(ua, o.pkiDir) }),
    });
    try {
      await client.connect(o.endpoint);
    } catch (e) {
      await client.disconnect().catch(() => undefined);
      throw diagnoseConnect(e, { endpoint: o.endpoint, mode: o.security.mode, pkiDir: o.pkiDir, connectAttempts: o.connectAttempts });
    }
    // After the first connection, reconnect for as long as it takes.
    (client as unknown as { connectionStrategy: { maxRetry: number } }).connectionStrategy.maxRetry = -1;
    let session: ClientSession;
    try {
      const identity: UserIdentityInfo = o.user === undefined ? { type: UserTokenType.Anonymous } : { type: UserTokenType.UserName, userName: o.user.username, password: o.user.password };
      session = await client.createSession(identity);
    } catch (e) {
      await client.disconnect().catch(() => undefined);
      throw diagnoseSession(e, { endpoint: o.endpoint, mode: o.security.mode, pkiDir: o.pkiDir, connectAttempts: o.connectAttempts });
    }
    try {
      const resolved = await resolveNamespaces(ua, session, o.tags);
      const types = await readTypes(ua, session, resolved);
      return new PlcLink(ua, client, session, o.tags, resolved, types, o.log);
    } catch (e) {
      await session.close().catch(() => undefined);
      await client.disconnect().catch(() => undefined);
      throw e;
    }
  }

  get up(): boolean {
    return this.#up;
  }

  /** What the server granted the subscription; undefined before watch(). */
  get granted(): Granted | undefined {
    return this.#granted;
  }

  /**
   * Watches the PLC's signals in one subscription, all items created in one
   * request, and says what the server granted: a server that revises 10 ms to
   * 100 ms adds up to 100 ms to every trigger, and the operator must know.
   */
  async watch(options: WatchOptions): Promise<Granted> {
    this.#watching = options;
    const { AttributeIds, TimestampsToReturn } = this.#ua;
    // A keep-alive about once a second, whatever the interval: at 10 ms, a count of 10 had the PLC's server send ten
    // empty publish responses a second for nothing (the link learns of an outage from the PLC's heartbeat and the
    // session, not from these). The lifetime stays at least three keep-alives, as OPC UA requires.
    const keepAlive = Math.max(1, Math.round(KEEPALIVE_MS / options.publishingIntervalMs));
    const sub = await this.#session.createSubscription2({
      requestedPublishingInterval: options.publishingIntervalMs,
      requestedLifetimeCount: Math.max(1000, 3 * keepAlive),
      requestedMaxKeepAliveCount: keepAlive,
      publishingEnabled: true,
      priority: 10,
    });
    this.#subscription = sub;
    const tags = READ_TAGS.filter((t) => this.#tags[t] !== undefined);
    const group: ClientMonitoredItemGroup = await sub.monitorItems(
      tags.map((t) => ({ nodeId: this.#tags[t]!, attributeId: AttributeIds.Value })),
      // A queue per item keeps a low-high pulse inside one publishing interval as two values, not one.
      { samplingInterval: options.samplingIntervalMs, discardOldest: true, queueSize: 10 },
      TimestampsToReturn.Neither,
    );
    group.on('changed', (item, dv: DataValue, index: number) => this.#collect(tags[index]!, dv.value.value as unknown));
    this.#granted = {
      publishingIntervalMs: sub.publishingInterval,
      samplingIntervalMs: Math.max(0, ...group.monitoredItems.map((m) => m.monitoringParameters.samplingInterval)),
      keepAliveCount: sub.maxKeepAliveCount,
      lifetimeCount: sub.lifetimeCount,
    };
    this.#sayGranted();
    return this.#granted;
  }

  /**
   * node-opcua hands the items of one notification message over one after
   * another in the same tick: a microtask after the first closes the batch.
   */
  #collect(tag: TagName, value: unknown): void {
    if (this.#pending === undefined) {
      this.#pending = new Map();
      queueMicrotask(() => {
        const batch = this.#pending!;
        this.#pending = undefined;
        this.emit('batch', batch);
      });
    }
    const values = this.#pending.get(tag);
    if (values === undefined) this.#pending.set(tag, [value]);
    else values.push(value);
  }

  #sayGranted(): void {
    const asked = this.#watching;
    const g = this.#granted;
    if (asked === undefined || g === undefined) return;
    const slower = g.publishingIntervalMs > asked.publishingIntervalMs || g.samplingIntervalMs > Math.max(asked.samplingIntervalMs, asked.publishingIntervalMs);
    const data = { requested: asked, granted: g };
    if (slower) this.#log.warn(data, `the PLC's server granted a ${g.publishingIntervalMs} ms publishing and ${g.samplingIntervalMs} ms sampling interval, slower than asked: each trigger can reach linegate up to ${g.publishingIntervalMs + g.samplingIntervalMs} ms late`);
    else this.#log.info(data, 'PLC subscription granted');
  }

  async read(tags: readonly TagName[]): Promise<Partial<Record<TagName, unknown>>> {
    this.#requireUp('read');
    const present = tags.filter((t) => this.#tags[t] !== undefined);
    const values = await this.#session.read(present.map((t) => ({ nodeId: this.#tags[t]!, attributeId: this.#ua.AttributeIds.Value })));
    const out: Partial<Record<TagName, unknown>> = {};
    present.forEach((t, i) => {
      const dv = values[i]!;
      if (dv.statusCode.isNotGood()) throw new LinegateError('LG_ERR_PLC_READ', [t, this.#tags[t]!, dv.statusCode.name]);
      out[t] = dv.value.value as unknown;
    });
    return out;
  }

  /** One WriteRequest for all values, each with the tag's exact DataType; every node's status is checked. */
  async write(values: Writable): Promise<void> {
    this.#requireUp('write');
    const entries = Object.entries(values).filter(([t]) => this.#tags[t as TagName] !== undefined) as [TagName, string | number | boolean][];
    const nodes: WriteValueOptions[] = entries.map(([tag, value]) => ({
      nodeId: this.#tags[tag]!,
      attributeId: this.#ua.AttributeIds.Value,
      value: { value: { dataType: this.#types.get(tag)! as number, value: coerce(tag, this.#types.get(tag)!, value) } },
    }));
    const statuses = await this.#session.write(nodes);
    const bad = statuses.map((s, i) => [entries[i]![0], s] as const).filter(([, s]) => s !== this.#ua.StatusCodes.Good);
    if (bad.length > 0) throw new LinegateError('LG_ERR_PLC_WRITE', [bad.map(([t, s]) => `${t}: ${s.name}`).join(', ')]);
  }

  /**
   * Bounded whatever the link's state: while the PLC is away node-opcua's
   * subscription terminate never settles (it waits for the channel), so it is
   * skipped, and disconnect() also ends the reconnection attempts, whose
   * timers would otherwise keep the process alive.
   */
  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      const wasUp = this.#up;
      this.#up = false;
      const bounded = (work: Promise<unknown>): Promise<unknown> => withTimeout(work, CLOSE_STEP_MS, () => new Error('timed out')).catch(() => undefined);
      if (wasUp && this.#subscription !== undefined) await bounded(this.#subscription.terminate());
      if (wasUp) await bounded(this.#session.close());
      await bounded(this.#client.disconnect());
    })());
  }

  #requireUp(what: string): void {
    if (!this.#up || this.#closing !== undefined) throw new LinegateError('LG_ERR_PLC_DOWN', [what]);
  }

  /**
   * A restarted server may number its namespaces differently: resolve the
   * map again and, when it moved, read the types and watch the new nodes.
   */
  async #reestablished(): Promise<void> {
    try {
      const resolved = await resolveNamespaces(this.#ua, this.#session, this.#configured);
      if (JSON.stringify(resolved) !== JSON.stringify(this.#tags)) {
        this.#log.warn({ before: this.#tags, after: resolved }, "the PLC's server renumbered its namespaces: watching the tags at their new NodeIds");
        this.#types = await readTypes(this.#ua, this.#session, resolved);
        this.#tags = resolved;
        const old = this.#subscription;
        this.#subscription = undefined;
        await old?.terminate().catch(() => undefined);
        if (this.#watching !== undefined) await this.watch(this.#watching);
      } else if (this.#subscription !== undefined) {
        this.#granted = { ...this.#granted!, publishingIntervalMs: this.#subscription.publishingInterval };
      }
    } catch (e) {
      // node-opcua will not say "reestablished" again for this connection: try again while it lasts.
      this.#log.error({ err: messageOf(e), retryInMs: RETRY_MS }, 'the PLC is back but its tags cannot be resolved; the link stays down');
      setTimeout(() => {
        if (this.#closing === undefined && !this.#up && this.#client.isReconnecting !== true) void this.#reestablished();
      }, RETRY_MS).unref();
      return;
    }
    this.#setUp(true);
  }

  #setUp(up: boolean, reason = ''): void {
    if (this.#closing !== undefined || up === this.#up) return;
    this.#up = up;
    if (up) {
      this.#log.info('PLC link is back');
      this.emit('up');
    } else {
      this.#log.warn({ reason }, 'PLC link is down; writes are refused until it is back');
      this.emit('down', reason);
    }
  }
}

/** How long to wait before trying again what failed right after a reconnect. */
export const RETRY_MS = 1000;

/** Each step of a close may wait this long: a PLC that does not answer must not hold the station's exit. */
const CLOSE_STEP_MS = 2000;

async function certificateManager(ua: Ua, pkiDir: string) {
  const cm = new ua.OPCUACertificateManager({ rootFolder: pkiDir, automaticallyAcceptUnknownCertificate: false });
  await cm.initialize();
  return cm;
}
