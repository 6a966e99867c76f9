import { z } from 'zod';
import { Defect, InspectionResult, ModelRef } from '../../runtime/result.js';

/*
 * What core/bullmq@1 puts on its queues, defined once: the station writes it,
 * the workers (dataset export, stats) and dashboards read it, on any machine
 * that reaches the same Redis.
 */

/** Queue names under the prefix (BullMQ keys are `<prefix>:<queue>:...`). */
export const QUEUES = { results: 'results', samples: 'samples' } as const;
export type QueueName = keyof typeof QUEUES;

/** BullMQ job names: one kind of job per queue. */
export const JOB_NAMES = { results: 'result', samples: 'sample' } as const;

export const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);

/** An image kept in the station's content-addressed archive. */
export const ArchivedImage = z.object({
  sha256: Sha256,
  /** The encoding as stored: the source's own bytes, never re-encoded. */
  format: z.string().min(1),
  bytes: z.number().int().nonnegative(),
  /** Path relative to the archive root: `<aa>/<bb>/<sha256>.<ext>`. */
  key: z.string().min(1),
  /** The bytes themselves, base64, when they are small enough to travel in the job (`archive.inlineMaxBytes`). */
  inline: z.string().optional(),
});
export type ArchivedImage = z.infer<typeof ArchivedImage>;

export const SampleReason = z.enum(['fail', 'error', 'near-threshold', 'random-pass', 'shadow']).describe('shadow: a shadow model (a candidate running beside the station) judged the frame otherwise');
export type SampleReason = z.infer<typeof SampleReason>;

/** A retraining candidate: the result, the image, and why it was chosen. */
export const SampleJob = z.object({
  result: InspectionResult,
  /** `good`, a defect label, or `error`. */
  label: z.string().min(1),
  /** `source`: ground truth the source knew (a labelled folder); `model`: the station's own verdict, to be reviewed. */
  labelSource: z.enum(['source', 'model']),
  reasons: z.array(SampleReason).min(1),
  /** One line per reason, e.g. "defect score 0.47 within 0.1 of the threshold 0.5". */
  why: z.array(z.string()),
  /** Absent when the frame could not be archived (the sample still says so in `why`). */
  image: ArchivedImage.optional(),
  /** Reason `shadow`: what the shadow model found on the same frame. */
  shadow: z
    .object({
      model: ModelRef.nullable(),
      verdict: z.string(),
      rejectCode: z.number().int().nonnegative(),
      scores: z.record(z.string(), z.number()),
      defects: z.array(Defect),
    })
    .optional(),
});
export type SampleJob = z.infer<typeof SampleJob>;

/** The `results` queue carries the shared record itself: its data parse with the result schema. */
export const ResultJob = InspectionResult;
