import { z } from 'zod';
import { LinegateError } from '../../runtime/errors.js';
import { SIM_TYPES, TagMap, defaultTagMap, type TagName } from './tags.js';

/* The simulated PLC's options, validated once, and the records it reports: no node-opcua here. */

export const TAG_NAMES = Object.keys(SIM_TYPES) as TagName[];
export const TypeName = z.enum(['Boolean', 'String', 'Byte', 'Int16', 'UInt16', 'Int32', 'UInt32', 'Float', 'Double']);
export type TypeName = z.infer<typeof TypeName>;
const BOOLEAN_TAGS: readonly TagName[] = ['trigger', 'resultAck', 'resultValid', 'busy', 'visionReady'];
const INTEGER_TAGS: readonly TagName[] = ['triggerCounter', 'plcHeartbeat', 'verdict', 'rejectCode', 'resultCounter', 'visionHeartbeat'];
/** Counters wrap where their type ends, as a PLC's would. */
export const WRAP: Partial<Record<TypeName, number>> = { Byte: 0x100, Int16: 0x8000, UInt16: 0x10000, Int32: 0x80000000, UInt32: 0x100000000 };

const SecurityOptions = z
  .object({
    allowAnonymous: z.boolean().default(true),
    users: z.array(z.object({ username: z.string().min(1), password: z.string().min(1) }).strict()).optional(),
    modes: z.array(z.enum(['None', 'Sign', 'SignAndEncrypt'])).min(1).default(['None', 'Sign', 'SignAndEncrypt']),
    // Basic128Rsa15 is left out on purpose: Node >= 20.11.1 cannot decrypt RSA PKCS#1 v1.5.
    policies: z.array(z.enum(['None', 'Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss'])).min(1).default(['None', 'Basic256Sha256', 'Aes128_Sha256_RsaOaep']),
    pkiDir: z.string().min(1).optional().describe('server PKI root; default a temp folder removed by stop()'),
    automaticallyAcceptUnknownCertificate: z.boolean().default(true),
  })
  .strict();

export const SimOptions = z
  .object({
    port: z.number().int().min(0).max(65_535).default(4840).describe('0 picks a free port; see SimulatedPlc.port'),
    host: z.string().min(1).default('127.0.0.1').describe('the address to listen on; loopback unless asked'),
    tags: TagMap.default(() => defaultTagMap()),
    types: z.partialRecord(z.enum(TAG_NAMES as [TagName, ...TagName[]]), TypeName).default({}).describe('per-tag DataType over SIM_TYPES'),
    triggerRateHz: z.number().min(0).max(100).default(2).describe('0: manual triggers only'),
    partIdPrefix: z.string().default('P'),
    resultTimeoutMs: z.number().int().positive().default(2000),
    triggerLowMs: z.number().int().min(0).max(10_000).default(100).describe('the least time Trigger stays low between two cycles'),
    triggerJitterMs: z
      .number()
      .min(0)
      .max(10_000)
      .default(0)
      .describe("up to this much more low time, at random: a line's parts come at no fixed phase to the server's publishing timer, and back-to-back cycles otherwise lock onto it"),
    heartbeatMs: z.number().int().min(0).default(200).describe('PlcHeartbeat period; 0: no PLC heartbeat'),
    visionWatchdogMs: z.number().int().positive().default(2000),
    minPublishingIntervalMs: z.number().int().min(1).max(1000).default(10).describe("the server's floor for a subscription's publishing interval (node-opcua: 50)"),
    minSamplingIntervalMs: z
      .number()
      .int()
      .min(0)
      .max(1000)
      .default(10)
      .describe("the server's floor for a monitored item's sampling interval, and the window over which it folds a tag's changes (node-opcua: 50; 0: every change)"),
    interlock: z.boolean().default(true).describe('raise Trigger only while VisionReady is true and VisionHeartbeat moved within visionWatchdogMs'),
    ackDelayMs: z.number().int().min(0).max(60_000).default(0).describe('ResultValid seen -> verdict latched and ResultAck raised: the PLC scan and task time'),
    reaskTimeoutMs: z.number().int().positive().max(600_000).default(30_000).describe('after a retentive restart, how long a cycle to be asked again waits for the interlock'),
    security: SecurityOptions.prefault({}),
    addressSpace: z
      .enum(['standard', 'minimal'])
      .default('standard')
      .describe("standard: the whole OPC UA standard nodeset, as a PLC's server has it; minimal: node-opcua's small base nodeset (the types, the Server object), 3-5 times cheaper to start, for tests that start many"),
  })
  .strict();
/** What `SimulatedPlc.start` accepts: every field has a default. */
export type SimOptionsInput = z.input<typeof SimOptions>;
export type SimSettings = Readonly<z.infer<typeof SimOptions>> & { readonly types: Readonly<Record<TagName, TypeName>> };

/** How a cycle ended: 'not-ready' is a part the PLC rejected on its own, without raising Trigger. */
export type CycleOutcome = 'ok' | 'timeout' | 'echo-mismatch' | 'not-ready';

export const RestartOptions = z
  .object({
    mode: z.enum(['fresh', 'retentive']).default('fresh').describe('fresh: every tag back to its initial value; retentive: the data block and the counter survive'),
    downMs: z.number().int().min(0).max(600_000).default(0).describe('how long the server stays down before it comes back'),
  })
  .strict();
export type RestartOptionsInput = z.input<typeof RestartOptions>;
export type RestartMode = z.infer<typeof RestartOptions>['mode'];

export const TriggerOptions = z
  .object({
    counter: z.number().int().min(0).optional().describe('replaces the next TriggerCounter'),
    ack: z.boolean().default(true).describe('false: latch the verdict, never raise ResultAck'),
    ackDelayMs: z.number().int().min(0).max(60_000).optional().describe("this cycle's ackDelayMs"),
    resultTimeoutMs: z.number().int().positive().max(600_000).optional().describe("this cycle's resultTimeoutMs: how long this PLC waits for the interlock, the answer and its drop"),
  })
  .strict();
export type TriggerOptionsInput = z.input<typeof TriggerOptions>;

/** One PLC cycle, trigger to the end of the handshake. */
export interface TriggerRecord {
  readonly partId: string;
  /** The TriggerCounter sent; on 'not-ready', the one the part would have had (not spent: the next part gets it). */
  readonly counter: number;
  readonly outcome: CycleOutcome;
  /** The verdict read from linegate (0 undefined, 1 OK, 2 NOK, 3 not decidable); 0 on a timeout and on 'not-ready'. */
  readonly verdict: number;
  readonly rejectCode: number;
  readonly score?: number;
  readonly modelVersion?: string;
  /** What linegate echoed (absent on a timeout and on 'not-ready'): differs from partId/counter on an echo mismatch. */
  readonly echo?: { readonly partId: string; readonly counter: number };
  /** Trigger raised -> ResultValid seen; the time waited on a timeout (and for the interlock, on 'not-ready'). */
  readonly latencyMs: number;
  /** ResultValid was still true resultTimeoutMs after ResultAck: the PLC dropped ResultAck anyway. */
  readonly validStuck?: true;
  /**
   * ResultValid rising edges while this cycle's Trigger was high (the last raising, for a retried cycle):
   * 1 is right; 0 with a latched verdict means ResultValid was already high when Trigger rose.
   */
  readonly answers: number;
  /** The PLC raised ResultAck (false with `ack: false`, on a timeout and on 'not-ready'). */
  readonly acked: boolean;
  /** Asked again, with the same PartId and counter, after a retentive restart. */
  readonly retried?: true;
  readonly at: string;
}

export interface HeartbeatLoss {
  /** How long VisionHeartbeat had not changed when the loss was noticed. */
  readonly silentMs: number;
  readonly at: string;
}

export interface SimReport {
  readonly endpoint: string;
  /** Cycles that raised Trigger (a re-ask after a retentive restart is counted in `reasks`, not here). */
  readonly triggers: number;
  /** Latched verdicts per code; timeouts and echo mismatches are never counted here. */
  readonly verdicts: { readonly 0: number; readonly 1: number; readonly 2: number; readonly 3: number };
  /** Echo correct but a verdict outside 0-3: the PLC treats the part as a reject. */
  readonly invalidVerdicts: number;
  readonly timeouts: number;
  readonly echoMismatches: number;
  readonly validStuck: number;
  readonly heartbeatLosses: number;
  readonly visionReady: boolean;
  /** Timer ticks skipped because a cycle was still running. */
  readonly skippedTicks: number;
  /** Timer ticks skipped because the interlock was closed: parts the PLC rejected on its own. */
  readonly notReadyTicks: number;
  /** Cycles that ended 'not-ready': the interlock did not open in time. */
  readonly notReady: number;
  /** ResultValid rising again within one raising of Trigger: a part answered twice. */
  readonly duplicateAnswers: number;
  /** ResultValid rising while Trigger was low: an answer that belongs to no part, or lands on the next. */
  readonly strayResults: number;
  /** Verdicts latched from a ResultValid already high when Trigger rose (no answer edge in that raising). */
  readonly staleLatches: number;
  /** Triggers raised again, with the same PartId and counter, after a retentive restart. */
  readonly reasks: number;
  /** VisionReady is true and VisionHeartbeat moved within visionWatchdogMs (always true with `interlock: false`). */
  readonly interlockOpen: boolean;
  readonly restarts: number;
  readonly restartsByMode: { readonly fresh: number; readonly retentive: number };
  /** Over the last 10 000 'ok' cycles; null before the first. */
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly n: number } | null;
  readonly lastCycles: readonly TriggerRecord[];
}

export interface SimEvents {
  cycle: [record: TriggerRecord];
  'heartbeat-lost': [loss: HeartbeatLoss];
  ready: [ready: boolean];
}

/** The namespace index of a tag NodeId string (no `ns=` means 0). */
export const namespaceOf = (nodeId: string): number => Number(/^ns=(\d+);/.exec(nodeId)?.[1] ?? 0);

export function percentile(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round((sorted[i] ?? 0) * 10) / 10;
}

/** Parses with `schema` or throws LG_ERR_PLC_SIM_CONFIG naming the field, under `prefix` (a method's name). */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, prefix = ''): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = [prefix, ...(issue?.path.map(String) ?? [])].filter((p) => p !== '').join('.');
  throw new LinegateError('LG_ERR_PLC_SIM_CONFIG', [field || '(options)', issue?.message ?? 'invalid'], { path: field });
}

/** Validates once, fills the defaults and freezes; a bad option is LG_ERR_PLC_SIM_CONFIG naming the field. */
export function parseSimOptions(input: SimOptionsInput = {}): SimSettings {
  const o = parseOrThrow(SimOptions, input);
  const types = { ...SIM_TYPES, ...o.types } as Record<TagName, TypeName>;
  const bad = (field: string, why: string): never => {
    throw new LinegateError('LG_ERR_PLC_SIM_CONFIG', [field, why], { path: field });
  };
  for (const tag of TAG_NAMES) {
    const t = types[tag];
    if (BOOLEAN_TAGS.includes(tag) !== (t === 'Boolean')) bad(`types.${tag}`, BOOLEAN_TAGS.includes(tag) ? 'must be Boolean' : `cannot be Boolean`);
    if (INTEGER_TAGS.includes(tag) && (t === 'String' || t === 'Float' || t === 'Double')) bad(`types.${tag}`, `must be an integer type, not ${t}`);
  }
  if (types.modelVersion !== 'String') bad('types.modelVersion', 'must be String');
  if (types.partId === 'Float' || types.partId === 'Double') bad('types.partId', 'must be String or an integer type');
  const seen = new Map<string, string>();
  for (const [tag, nodeId] of Object.entries(o.tags) as [TagName, string | undefined][]) {
    if (nodeId === undefined) continue;
    // Namespace 0 belongs to the OPC UA standard: a server cannot add nodes there.
    if (namespaceOf(nodeId) === 0) bad(`tags.${tag}`, `${nodeId} is in namespace 0; use ns=1 or higher`);
    const other = seen.get(nodeId);
    if (other !== undefined) bad(`tags.${tag}`, `${nodeId} is also the NodeId of ${other}`);
    seen.set(nodeId, tag);
  }
  const s = o.security;
  if (!s.allowAnonymous && (s.users?.length ?? 0) === 0) bad('security.users', 'anonymous sessions are refused and no users are given: nobody could log in');
  if (s.modes.some((m) => m !== 'None') && !s.policies.some((p) => p !== 'None')) bad('security.policies', 'Sign and SignAndEncrypt need a policy other than None');
  return Object.freeze({ ...o, types: Object.freeze(types), security: Object.freeze(s) });
}
