import { EventEmitter } from 'node:events';
import type { ClientSession, ClientSubscription, DataValue, OPCUAClient, UserIdentityInfo, WriteValueOptions } from 'node-opcua';
import { loadOpcua } from './opcua.js';

type Ua = Awaited<ReturnType<typeof loadOpcua>>;

/** OPC UA built-in DataType ids (Part 6), the ones a PLC tag can have here. */
const DataType = { Null: 0, Boolean: 1, SByte: 2, Byte: 3, Int16: 4, UInt16: 5, Int32: 6, UInt32: 7, Int64: 8, UInt64: 9, Float: 10, Double: 11, String: 12 } as const;
type DataType = (typeof DataType)[keyof typeof DataType];
const typeName = (t: number): string => Object.entries(DataType).find(([, v]) => v === t)?.[0] ?? `DataType ${t}`;
import type { Logger } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import { READ_TAGS, type TagMap, type TagName } from './tags.js';

/** What each signal may be on the PLC side; the exact type is read from the server at start. */
const KIND: Record<TagName, 'bool' | 'int' | 'text-or-int' | 'number' | 'text'> = {
  trigger: 'bool',
  resultAck: 'bool',
  resultValid: 'bool',
  busy: 'bool',
  visionReady: 'bool',
  partId: 'text-or-int',
  resultPartId: 'text-or-int',
  triggerCounter: 'int',
  resultCounter: 'int',
  plcHeartbeat: 'int',
  visionHeartbeat: 'int',
  verdict: 'int',
  rejectCode: 'int',
  score: 'number',
  modelVersion: 'text',
};

const INT_RANGE: Partial<Record<number, [number, number]>> = {
  [DataType.SByte]: [-128, 127],
  [DataType.Byte]: [0, 255],
  [DataType.Int16]: [-32768, 32767],
  [DataType.UInt16]: [0, 65535],
  [DataType.Int32]: [-2147483648, 2147483647],
  [DataType.UInt32]: [0, 4294967295],
};

function fits(kind: (typeof KIND)[TagName], t: DataType): boolean {
  const isInt = INT_RANGE[t] !== undefined;
  switch (kind) {
    case 'bool':
      return t === DataType.Boolean;
    case 'int':
      return isInt;
    case 'number':
      return isInt || t === DataType.Float || t === DataType.Double;
    case 'text':
      return t === DataType.String;
    case 'text-or-int':
      return t === DataType.String || isInt;
  }
}

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

export interface LinkEvents {
  /** The session works again after a loss: the PLC may have restarted and forgotten what we wrote. */
  up: [];
  down: [reason: string];
  /** A read tag changed (from the subscription). */
  change: [tag: TagName, value: unknown];
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
  readonly #tags: TagMap;
  readonly #types: Map<TagName, DataType>;
  readonly #log: Logger;
  #subscription: ClientSubscription | undefined;
  #up = true;
  #closing: Promise<void> | undefined;

  private constructor(ua: Ua, client: OPCUAClient, session: ClientSession, tags: TagMap, types: Map<TagName, DataType>, log: Logger) {
    super();
    this.#ua = ua;
    this.#client = client;
    this.#session = session;
    this.#tags = tags;
    this.#types = types;
    this.#log = log;
    client.on('connection_lost', () => this.#setUp(false, 'connection lost'));
    client.on('connection_reestablished', () => this.#setUp(true));
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
      connectionStrategy: { initialDelay: o.connectDelayMs, maxDelay: Math.max(o.connectDelayMs, 2000), maxRetry: o.connectAttempts - 1 },
      ...(o.pkiDir === undefined ? {} : { clientCertificateManager: await certificateManager(ua, o.pkiDir) }),
    });
    try {
      await client.connect(o.endpoint);
    } catch (e) {
      await client.disconnect().catch(() => undefined);
      const why = messageOf(e);
      const hint = /BadCertificateUntrusted/.test(why) && o.pkiDir !== undefined ? `; the PLC's certificate is not trusted: linegate pki trust <its certificate> --pki ${o.pkiDir}` : '';
      throw new LinegateError('LG_ERR_PLC_CONNECT', [o.endpoint, o.connectAttempts, `${why}${hint}`], { cause: e });
    }
    // After the first connection, reconnect for as long as it takes.
    (client as unknown as { connectionStrategy: { maxRetry: number } }).connectionStrategy.maxRetry = -1;
    let session: ClientSession;
    try {
      const identity: UserIdentityInfo = o.user === undefined ? { type: UserTokenType.Anonymous } : { type: UserTokenType.UserName, userName: o.user.username, password: o.user.password };
      session = await client.createSession(identity);
    } catch (e) {
      await client.disconnect().catch(() => undefined);
      throw new LinegateError('LG_ERR_PLC_SESSION', [o.endpoint, messageOf(e)], { cause: e });
    }
    try {
      const types = await readTypes(ua, session, o.tags);
      return new PlcLink(ua, client, session, o.tags, types, o.log);
    } catch (e) {
      await session.close().catch(() => undefined);
      await client.disconnect().catch(() => undefined);
      throw e;
    }
  }

  get up(): boolean {
    return this.#up;
  }

  /** Watches the PLC's signals (sampling interval 0: a trigger is seen as soon as the server samples it). */
  async watch(): Promise<void> {
    const { ClientMonitoredItem, AttributeIds, TimestampsToReturn } = this.#ua;
    const sub = await this.#session.createSubscription2({ requestedPublishingInterval: 10, requestedLifetimeCount: 1000, requestedMaxKeepAliveCount: 10, publishingEnabled: true, priority: 10 });
    this.#subscription = sub;
    for (const tag of READ_TAGS) {
      const nodeId = this.#tags[tag];
      if (nodeId === undefined) continue;
      const item = ClientMonitoredItem.create(sub, { nodeId, attributeId: AttributeIds.Value }, { samplingInterval: 0, discardOldest: true, queueSize: 10 }, TimestampsToReturn.Neither);
      item.on('changed', (dv: DataValue) => this.emit('change', tag, dv.value.value as unknown));
    }
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

  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      this.#up = false;
      await this.#subscription?.terminate().catch(() => undefined);
      await this.#session.close().catch(() => undefined);
      await this.#client.disconnect().catch(() => undefined);
    })());
  }

  #requireUp(what: string): void {
    if (!this.#up || this.#closing !== undefined) throw new LinegateError('LG_ERR_PLC_DOWN', [what]);
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

/** Reads each mapped node's DataType once and checks it fits the signal: a wrong map fails at start, not at the first part. */
async function readTypes(ua: Ua, session: ClientSession, tags: TagMap): Promise<Map<TagName, DataType>> {
  const names = (Object.keys(tags) as TagName[]).filter((t) => tags[t] !== undefined);
  const results = await session.read(names.map((t) => ({ nodeId: tags[t]!, attributeId: ua.AttributeIds.DataType })));
  const types = new Map<TagName, DataType>();
  const problems: string[] = [];
  names.forEach((tag, i) => {
    const dv = results[i]!;
    if (dv.statusCode.isNotGood()) {
      problems.push(`${tag} (${tags[tag]}): ${dv.statusCode.name}`);
      return;
    }
    const id = (dv.value.value as { value: unknown; namespace: number }).value;
    const t = (typeof id === 'number' ? id : DataType.Null) as DataType;
    if (!fits(KIND[tag], t)) problems.push(`${tag} (${tags[tag]}) is ${typeName(t)} on the server; linegate needs ${KIND[tag]}`);
    else types.set(tag, t);
  });
  if (problems.length > 0) throw new LinegateError('LG_ERR_PLC_TAG_TYPE', [problems.join('; ')]);
  return types;
}

function coerce(tag: TagName, t: DataType, value: string | number | boolean): string | number | boolean {
  if (t === DataType.String) return String(value);
  if (t === DataType.Boolean) return Boolean(value);
  const range = INT_RANGE[t];
  if (range !== undefined) {
    const n = typeof value === 'number' ? Math.round(value) : Number.parseInt(String(value), 10);
    if (!Number.isFinite(n) || n < range[0] || n > range[1]) throw new LinegateError('LG_ERR_PLC_WRITE', [`${tag}: ${String(value)} does not fit ${typeName(t)}`]);
    return n;
  }
  return Number(value);
}

async function certificateManager(ua: Ua, pkiDir: string) {
  const cm = new ua.OPCUACertificateManager({ rootFolder: pkiDir, automaticallyAcceptUnknownCertificate: false });
  await cm.initialize();
  return cm;
}
