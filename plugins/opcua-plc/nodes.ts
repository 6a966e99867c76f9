import type { ClientSession } from 'node-opcua';
import { LinegateError } from '../../runtime/errors.js';
import type { loadOpcua } from './opcua.js';
import type { TagMap, TagName } from './tags.js';

/* The PLC's nodes as linegate needs them: each tag's DataType read and checked once, values coerced to it exactly, namespace URIs resolved. */

type Ua = Awaited<ReturnType<typeof loadOpcua>>;

/** OPC UA built-in DataType ids (Part 6), the ones a PLC tag can have here. */
export const DataType = { Null: 0, Boolean: 1, SByte: 2, Byte: 3, Int16: 4, UInt16: 5, Int32: 6, UInt32: 7, Int64: 8, UInt64: 9, Float: 10, Double: 11, String: 12 } as const;
export type DataType = (typeof DataType)[keyof typeof DataType];
const typeName = (t: number): string => Object.entries(DataType).find(([, v]) => v === t)?.[0] ?? `DataType ${t}`;

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

/** The standard node holding a server's namespace URIs (OPC UA Part 5: Server.NamespaceArray). */
const NAMESPACE_ARRAY = 'ns=0;i=2255';

/** `nsu=<uri>;...` NodeIds rewritten with the index the server gives that URI now. */
export async function resolveNamespaces(ua: Ua, session: ClientSession, tags: TagMap): Promise<TagMap> {
  const byUri = Object.values(tags).some((n) => n?.startsWith('nsu='));
  if (!byUri) return tags;
  const dv = await session.read({ nodeId: NAMESPACE_ARRAY, attributeId: ua.AttributeIds.Value });
  const uris = (dv.value.value as string[] | null) ?? [];
  const out: Record<string, string> = {};
  for (const [tag, nodeId] of Object.entries(tags) as [TagName, string | undefined][]) {
    if (nodeId === undefined) continue;
    const m = /^nsu=([^;]+);(.*)$/.exec(nodeId);
    if (m === null) {
      out[tag] = nodeId;
      continue;
    }
    const index = uris.indexOf(m[1]!);
    if (index < 0) throw new LinegateError('LG_ERR_PLC_NAMESPACE', [m[1]!, uris.map((u, i) => `${i}: ${u}`).join(', ')]);
    out[tag] = `ns=${index};${m[2]!}`;
  }
  return out as TagMap;
}

/** Reads each mapped node's DataType once and checks it fits the signal: a wrong map fails at start, not at the first part. */
export async function readTypes(ua: Ua, session: ClientSession, tags: TagMap): Promise<Map<TagName, DataType>> {
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

export function coerce(tag: TagName, t: DataType, value: string | number | boolean): string | number | boolean {
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

