import { z } from 'zod';

/**
 * The PLC tag map: which OPC UA node holds each signal of the handshake.
 * NodeIds are strings as the PLC's server shows them, e.g. the Siemens quoted
 * form `ns=3;s="VisionDB"."Trigger"`, or with the namespace's URI
 * (`nsu=http://www.siemens.com/simatic-s7-opcua;s="VisionDB"."Trigger"`),
 * which linegate resolves to an index at every connect: a server may number
 * its namespaces differently after an update or a restart. One map per
 * station; the simulated PLC serves the same map.
 */
export const NodeIdString = z
  .string()
  .min(1)
  .regex(/^(ns=\d+;|nsu=[^;]+;)?[isgb]=.+$/, 'an OPC UA NodeId such as ns=3;s="VisionDB"."Trigger", nsu=<namespace URI>;s=... or ns=2;i=1001');

export const TagMap = z
  .object({
    // Written by the PLC, read by linegate.
    trigger: NodeIdString.describe('Boolean: the PLC raises it to ask for an inspection'),
    partId: NodeIdString.describe('String or integer: the part the PLC asks about'),
    triggerCounter: NodeIdString.describe('integer: incremented by the PLC with every trigger; echoed in resultCounter'),
    resultAck: NodeIdString.describe('Boolean: the PLC latched the result'),
    plcHeartbeat: NodeIdString.optional().describe("integer: the PLC's own heartbeat counter, watched for a dead PLC"),
    // Written by linegate.
    resultPartId: NodeIdString.describe('echo of the part id the verdict belongs to'),
    verdict: NodeIdString.describe('integer: 0 undefined, 1 OK, 2 NOK, 3 not decidable (OPC 40001-101 ResultEvaluationEnum)'),
    rejectCode: NodeIdString.describe('integer: 0 for OK, the rule or error code otherwise'),
    score: NodeIdString.optional().describe('float: the defect score'),
    resultCounter: NodeIdString.describe('integer: the trigger counter this result answers (free-run: linegate counts)'),
    modelVersion: NodeIdString.optional().describe('String: model name@version that judged the part'),
    resultValid: NodeIdString.describe('Boolean: raised after the payload is written, dropped after resultAck'),
    busy: NodeIdString.optional().describe('Boolean: linegate is inspecting the triggered part'),
    visionReady: NodeIdString.describe('Boolean: model and link are up'),
    visionHeartbeat: NodeIdString.describe('integer: linegate increments it every heartbeatMs'),
  })
  .strict();
export type TagMap = z.infer<typeof TagMap>;
export type TagName = keyof TagMap;

/** Tags a PLC may leave out, and what linegate cannot do without each (said at start). */
export const OPTIONAL_TAGS = {
  plcHeartbeat: "the PLC watchdog: a PLC in STOP whose OPC UA server still answers is not noticed",
  busy: 'Busy: the PLC cannot see that an inspection is running',
  score: 'the defect score with each verdict',
  modelVersion: 'the model version with each verdict',
} as const satisfies Partial<Record<TagName, string>>;
export type OptionalTag = keyof typeof OPTIONAL_TAGS;

/**
 * The map as PLCs have it: one data block whose variables carry the default
 * names, in one namespace (an index, or a URI resolved at connect), with the
 * optional tags it lacks listed and the odd NodeId given where it differs.
 */
export const TagBlock = z
  .object({
    namespace: z
      .union([z.number().int().min(1), z.string().min(1).regex(/^[^;]+$/, 'a namespace URI has no ";"')])
      .describe('namespace index (3 on a Siemens S7-1500) or URI (survives a server that renumbers its namespaces)'),
    block: z.string().min(1).default('VisionDB').describe('the data block that holds the handshake variables'),
    omit: z.array(z.enum(Object.keys(OPTIONAL_TAGS) as [OptionalTag, ...OptionalTag[]])).default([]).describe('optional tags this PLC does not have'),
    nodes: z.partialRecord(TagMap.keyof(), NodeIdString).default({}).describe('NodeIds that do not follow the block layout'),
  })
  .strict();
export type TagBlock = z.infer<typeof TagBlock>;

/** The tag map from either form a station file may use. */
export function tagMapOf(tags: TagMap | TagBlock): TagMap {
  if (!('block' in tags)) return tags;
  const map: Record<string, string> = { ...defaultTagMap(tags.namespace, tags.block), ...tags.nodes };
  for (const tag of tags.omit) delete map[tag];
  return TagMap.parse(map);
}

/** The optional tags a map leaves out, each with what goes missing: reported at start, never a silent switch. */
export function omittedTags(map: TagMap): { readonly tag: OptionalTag; readonly without: string }[] {
  return (Object.keys(OPTIONAL_TAGS) as OptionalTag[]).filter((t) => map[t] === undefined).map((tag) => ({ tag, without: OPTIONAL_TAGS[tag] }));
}

/** The tags linegate writes, and those it only reads. */
export const WRITTEN_TAGS: readonly TagName[] = ['resultPartId', 'verdict', 'rejectCode', 'score', 'resultCounter', 'modelVersion', 'resultValid', 'busy', 'visionReady', 'visionHeartbeat'];
export const READ_TAGS: readonly TagName[] = ['trigger', 'partId', 'triggerCounter', 'resultAck', 'plcHeartbeat'];

/** Verdict values on the wire (OPC 40001-101 ResultEvaluationEnum). */
export const VERDICT_CODE = { undefined: 0, pass: 1, fail: 2, error: 3 } as const;

/** The tag map of the simulated PLC and of the demo: a Siemens-style data block, in namespace 1 unless told (an index or a URI). */
export function defaultTagMap(ns: number | string = 1, db = 'VisionDB'): TagMap {
  const prefix = typeof ns === 'number' ? `ns=${ns}` : `nsu=${ns}`;
  const t = (name: string): string => `${prefix};s="${db}"."${name}"`;
  return {
    trigger: t('Trigger'),
    partId: t('PartId'),
    triggerCounter: t('TriggerCounter'),
    resultAck: t('ResultAck'),
    plcHeartbeat: t('PlcHeartbeat'),
    resultPartId: t('ResultPartId'),
    verdict: t('Verdict'),
    rejectCode: t('RejectCode'),
    score: t('Score'),
    resultCounter: t('ResultCounter'),
    modelVersion: t('ModelVersion'),
    resultValid: t('ResultValid'),
    busy: t('Busy'),
    visionReady: t('VisionReady'),
    visionHeartbeat: t('VisionHeartbeat'),
  };
}

/** The OPC UA DataType the simulated PLC gives each tag (a real PLC's map may differ: linegate reads it from the server). */
export const SIM_TYPES: Record<TagName, 'Boolean' | 'String' | 'Int16' | 'Int32' | 'UInt32' | 'Float'> = {
  trigger: 'Boolean',
  partId: 'String',
  triggerCounter: 'UInt32',
  resultAck: 'Boolean',
  plcHeartbeat: 'UInt32',
  resultPartId: 'String',
  verdict: 'Int16',
  rejectCode: 'Int32',
  score: 'Float',
  resultCounter: 'UInt32',
  modelVersion: 'String',
  resultValid: 'Boolean',
  busy: 'Boolean',
  visionReady: 'Boolean',
  visionHeartbeat: 'UInt32',
};
