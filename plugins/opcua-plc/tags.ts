import { z } from 'zod';

/**
 * The PLC tag map: which OPC UA node holds each signal of the handshake.
 * NodeIds are strings as the PLC's server shows them, e.g. the Siemens quoted
 * form `ns=3;s="VisionDB"."Trigger"`. One map per station; the simulated PLC
 * serves the same map.
 */
const NodeIdString = z
  .string()
  .min(1)
  .regex(/^(ns=\d+;)?[isgb]=.+$/, 'an OPC UA NodeId such as ns=3;s="VisionDB"."Trigger" or ns=2;i=1001');

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

/** The tags linegate writes, and those it only reads. */
export const WRITTEN_TAGS: readonly TagName[] = ['resultPartId', 'verdict', 'rejectCode', 'score', 'resultCounter', 'modelVersion', 'resultValid', 'busy', 'visionReady', 'visionHeartbeat'];
export const READ_TAGS: readonly TagName[] = ['trigger', 'partId', 'triggerCounter', 'resultAck', 'plcHeartbeat'];

/** Verdict values on the wire (OPC 40001-101 ResultEvaluationEnum). */
export const VERDICT_CODE = { undefined: 0, pass: 1, fail: 2, error: 3 } as const;

/** The tag map of the simulated PLC and of the demo: a Siemens-style data block in namespace 1. */
export function defaultTagMap(ns = 1, db = 'VisionDB'): TagMap {
  const t = (name: string): string => `ns=${ns};s="${db}"."${name}"`;
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
