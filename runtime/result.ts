import { z } from 'zod';

/**
 * THE inspection result. The PLC link, the queues, the archive, the API and
 * the dashboard all speak this one record; nothing else defines its shape.
 * A change that breaks readers bumps `schemaVersion`.
 */

export const RESULT_SCHEMA_VERSION = 1 as const;

export const Verdict = z.enum(['pass', 'fail', 'error']).describe('pass: part is good; fail: a reject rule fired; error: linegate could not inspect the part (the PLC rejects it)');
export type Verdict = z.infer<typeof Verdict>;

export const Box = z
  .object({
    x: z.number().describe('left edge, source-image pixels'),
    y: z.number().describe('top edge, source-image pixels'),
    w: z.number().nonnegative(),
    h: z.number().nonnegative(),
  })
  .describe('axis-aligned box in source-image pixels');
export type Box = z.infer<typeof Box>;

export const Region = z
  .object({
    areaPx: z.number().nonnegative(),
    areaMm2: z.number().nonnegative().optional().describe('present when calibration gives a scale'),
    box: Box,
    polygon: z.array(z.tuple([z.number(), z.number()])).optional().describe('outline in source-image pixels'),
  })
  .describe('a connected defect region from a segmentation or anomaly map');
export type Region = z.infer<typeof Region>;

export const Defect = z.object({
  label: z.string().min(1),
  score: z.number().min(0).max(1),
  box: Box.optional(),
  region: Region.optional(),
  rule: z.string().optional().describe('the reject rule this defect fired, if any'),
});
export type Defect = z.infer<typeof Defect>;

export const Reason = z.object({
  code: z.string().min(1).describe('LG_ERR_* for errors, or the rule id for a reject'),
  message: z.string(),
  rejectCode: z.number().int().nonnegative().optional(),
  step: z.string().optional(),
});
export type Reason = z.infer<typeof Reason>;

export const DeliveryStatus = z.enum(['delivered', 'spooled', 'failed', 'skipped', 'pending']);
export type DeliveryStatus = z.infer<typeof DeliveryStatus>;

export const Delivery = z.object({
  status: DeliveryStatus,
  critical: z.boolean(),
  at: z.iso.datetime().optional(),
  error: z.string().optional(),
});
export type Delivery = z.infer<typeof Delivery>;

export const ModelRef = z.object({
  name: z.string().min(1),
  version: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type ModelRef = z.infer<typeof ModelRef>;

/** One level's name: letters and digits first, then also space . _ - (no trailing space); safe in a URL query, a Redis value and a page. */
export const HierarchyName = z
  .string()
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?$/, 'starts with a letter or digit, then letters, digits, space, . _ - (at most 64, no trailing space)');

/**
 * Where a station stands in its plant: the ISA-95 equipment hierarchy (enterprise > site > area >
 * line > cell; the enterprise is the plant's Redis itself). All four or none: a station that is
 * placed in a plant knows each level, and a plant page groups by them.
 */
export const PlantHierarchy = z
  .object({
    site: HierarchyName.describe('ISA-95 site: the plant'),
    area: HierarchyName.describe('ISA-95 area: a hall or department of the site'),
    line: HierarchyName.describe('ISA-95 production line of the area'),
    cell: HierarchyName.describe('ISA-95 work cell of the line: this station\'s place'),
  })
  .describe("the station's place in its plant (ISA-95)");
export type PlantHierarchy = z.infer<typeof PlantHierarchy>;

export const InspectionResult = z
  .object({
    schemaVersion: z.literal(RESULT_SCHEMA_VERSION),
    resultId: z.string().uuid().describe('UUIDv7: unique, and sorts by time'),
    station: z.object({
      id: z.string().min(1),
      line: z.string().optional().describe("the station's line: station.line, else hierarchy.line"),
      hierarchy: PlantHierarchy.optional().describe("the station's place in the plant (ISA-95), when its file names one; absent in records written before it existed"),
    }),
    partId: z.string().min(1).describe('from the PLC trigger when there is one, else from the source'),
    sequence: z.number().int().nonnegative().describe('frame counter of this station run'),
    trigger: z
      .object({
        id: z.string().min(1).describe("linegate's id for the trigger: unique, even across PLC restarts that reuse counters"),
        counter: z.number().int().nonnegative().describe("the PLC's TriggerCounter, echoed with the verdict"),
        raisedAt: z.iso.datetime().describe('when linegate saw the trigger'),
      })
      .optional()
      .describe('the PLC trigger this part answers, when a PLC triggered it'),
    time: z.object({
      capturedAt: z.iso.datetime(),
      decidedAt: z.iso.datetime(),
    }),
    source: z.object({
      step: z.string(),
      plugin: z.string(),
      ref: z.string().describe('where the frame came from: a file path, a camera URI'),
      label: z.string().optional().describe('ground-truth label when the source knows one (e.g. its sub-folder)'),
    }),
    frame: z.object({
      ref: z.string().describe('reference to the stored image (path or archive key)'),
      sha256: z
        .string()
        .regex(/^[0-9a-f]{64}$/)
        .optional()
        .describe("sha256 of the frame's encoded bytes as the source gave them: the image archive's content address. Absent for a dropped frame, and for a raw frame (the queue sink's copy then carries the hash of the PNG it archived)"),
      width: z.number().int().positive().optional(),
      height: z.number().int().positive().optional(),
      format: z.string().optional(),
    }),
    model: ModelRef.nullable(),
    verdict: Verdict,
    rejectCode: z.number().int().nonnegative().describe('0 for pass; the rule code for fail; 900-999 for error'),
    reasons: z.array(Reason),
    defects: z.array(Defect),
    scores: z.record(z.string(), z.number()).describe('named scores, e.g. the image-level defect score'),
    thresholds: z.record(z.string(), z.number()).optional().describe('the score threshold each label was judged against, when the decision step says'),
    calibration: z
      .object({
        file: z.string().min(1).describe('the calibration file, relative to the station root when inside it'),
        model: ModelRef.nullable().describe('the model its thresholds were chosen for; null when the file does not say'),
        mismatch: z.boolean().describe("true: made for another model than the one that judged this part, applied only because the station sets calibration.allowModelMismatch"),
      })
      .optional()
      .describe('the calibration the part was judged with, when the station has one'),
    timings: z.object({
      totalMs: z.number().nonnegative(),
      stages: z.record(z.string(), z.number().nonnegative()).describe('per step name, in ms'),
    }),
    delivery: z.record(z.string(), Delivery).describe('per sink name'),
  })
  .describe('linegate inspection result');
export type InspectionResult = z.infer<typeof InspectionResult>;

/** JSON Schema (draft 2020-12) of the result, for other languages and tools. */
export function resultJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(InspectionResult, { target: 'draft-2020-12' }) as Record<string, unknown>;
}

/** The image-level defect score a decision rests on: the decoder's `defect` score, else the top defect's (0 with none). */
export function defectScore(r: Pick<InspectionResult, 'scores' | 'defects'>): number {
  return r.scores.defect ?? Math.max(0, ...r.defects.map((d) => d.score));
}

/** A label's score as the threshold rules judge it: its top defect, else the decoder's score for it, else 0. */
export function labelScore(r: Pick<InspectionResult, 'scores' | 'defects'>, label: string): number {
  const mine = r.defects.filter((d) => d.label === label).map((d) => d.score);
  return mine.length > 0 ? Math.max(...mine) : (r.scores[label] ?? 0);
}
