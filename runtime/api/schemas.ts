import { z } from 'zod';
import { ERRORS, type ErrorCode } from '../errors.js';
import { InspectionResult, PlantHierarchy, Verdict } from '../result.js';

/* The API's request and response schemas; the result record is the one runtime/result.ts defines. */

const CODES = Object.keys(ERRORS) as [ErrorCode, ...ErrorCode[]];

export const ErrorBody = z
  .object({
    error: z.object({
      code: z.enum(CODES).describe('an LG_ERR_* code from runtime/errors.md'),
      message: z.string(),
      retryable: z.boolean(),
      issues: z.array(z.string()).optional().describe('every problem found in the request'),
    }),
  })
  .describe('an error');
export type ErrorBody = z.infer<typeof ErrorBody>;

export const HealthRecord = z.object({
  status: z.enum(['ok', 'degraded', 'down']),
  detail: z.string(),
  data: z.record(z.string(), z.unknown()).optional(),
});

export const AliveBody = z.object({ alive: z.literal(true), station: z.string(), uptimeS: z.number().nonnegative() });

export const ReadyBody = z
  .object({
    ready: z.boolean().describe('true when the steps are up (READY or PLAYING), none is down, and the disk has room'),
    station: z.string(),
    status: z.enum(['ok', 'degraded', 'down']),
    state: z.string().describe('the station state machine: NULL, STARTING, READY, PLAYING, DRAINING, DRAINED, CLOSING, CLOSED, FAILED'),
    frames: HealthRecord.describe("the frame loop's health: in flight, queued, dropped, hung"),
    steps: z.record(z.string(), HealthRecord).describe('each step that reports a health of its own (PLC link, queue and spool), by step name'),
    models: z.array(z.object({ step: z.string(), name: z.string(), version: z.string(), sha256: z.string() })).describe('the models the station loaded'),
    disk: z.object({ path: z.string(), freeBytes: z.number().nonnegative(), totalBytes: z.number().nonnegative(), ok: z.boolean() }).optional().describe('the station root\'s file system'),
  })
  .describe("the station's health record");
export type ReadyBody = z.infer<typeof ReadyBody>;

const PlannedStepBody = z.object({ name: z.string(), use: z.string(), kind: z.string(), critical: z.boolean().optional(), config: z.unknown() });

export const StationBody = z
  .object({
    id: z.string(),
    file: z.string(),
    root: z.string(),
    settings: z.record(z.string(), z.unknown()).describe('the effective station settings, defaults applied'),
    source: PlannedStepBody,
    stages: z.array(PlannedStepBody),
    sinks: z.array(PlannedStepBody),
    models: z.array(z.object({ step: z.string(), name: z.string(), version: z.string(), sha256: z.string() })),
    calibration: z.record(z.string(), z.unknown()).optional(),
    api: z.object({ host: z.string(), port: z.number().int(), auth: z.enum(['writes', 'all']), writes: z.boolean().describe('whether a token is configured: state-changing routes are off without one'), maxUploadBytes: z.number().int() }),
  })
  .describe('the compiled plan and effective config; secrets (passwords, tokens, keys, credentials in URLs) redacted');

const IsoInstant = z.iso.datetime({ offset: true });

export const ResultsQuery = z
  .object({
    partId: z.string().min(1).max(200).optional(),
    verdict: Verdict.optional(),
    code: z.string().min(1).max(100).optional().describe('a reason code: a rule id or an LG_ERR_ code'),
    rejectCode: z.coerce.number().int().nonnegative().optional().describe("the PLC's numeric reject code"),
    label: z.string().min(1).max(100).optional().describe('a defect label on the result'),
    since: IsoInstant.optional().describe('decidedAt >= since'),
    until: IsoInstant.optional().describe('decidedAt < until'),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z.string().min(1).max(512).regex(/^[A-Za-z0-9_\-.=:]+$/).optional().describe('the `next` of the previous page'),
  })
  .strict();
export type ResultsQuery = z.infer<typeof ResultsQuery>;

export const ResultsPage = z.object({ items: z.array(InspectionResult).describe('newest first'), next: z.string().optional().describe('cursor of the next (older) page; absent on the last') });

export const IdParams = z.object({ id: z.uuid().describe('a result id (UUID)') }).strict();

export const ImageQuery = z.object({ overlay: z.enum(['0', '1', 'true', 'false']).optional().describe('1: the defects drawn on the image (PNG)') }).strict();

export const InspectQuery = z.object({ partId: z.string().min(1).max(200).regex(/^[\w.:#/-]+$/).optional() }).strict();

export const NoQuery = z.object({}).strict();


export const SummaryBody = z
  .object({
    station: z.object({ id: z.string(), name: z.string().optional(), line: z.string().optional(), cycleBudgetMs: z.number().int().positive(), hierarchy: PlantHierarchy.optional() }),
    generatedAt: z.iso.datetime(),
    ready: ReadyBody.describe('what GET /ready says, always with status 200 here'),
    window: z.object({
      since: z.iso.datetime().describe('the oldest decidedAt counted: an hour back, or later when the history holds less'),
      until: z.iso.datetime(),
      parts: z.number().int().nonnegative(),
      capped: z.boolean().describe('true: more parts were decided in the hour than the summary keeps; the oldest are left out'),
      newest: z.iso.datetime().nullable().describe('decidedAt of the newest part the history holds: a part streamed on /api/events before it is stored has no image route yet'),
    }),
    yield: z.object({
      pass: z.number().int().nonnegative(),
      fail: z.number().int().nonnegative(),
      error: z.number().int().nonnegative(),
      rate: z.number().min(0).max(1).nullable().describe('pass / parts; null with no part'),
      bucketS: z.number().int().positive(),
      buckets: z.array(z.object({ at: z.iso.datetime().describe('bucket start'), pass: z.number().int(), fail: z.number().int(), error: z.number().int() })).describe('oldest first'),
    }),
    pareto: z.object({
      byCode: z.array(z.object({ rejectCode: z.number().int(), code: z.string(), count: z.number().int().positive() })).describe('rejected parts by reject code and first reason, most first'),
      byLabel: z.array(z.object({ label: z.string(), count: z.number().int().positive() })).describe('rejected parts by the defect labels that fired, most first'),
    }),
    latency: z.object({
      budgetMs: z.number().positive(),
      bins: z.array(z.object({ fromMs: z.number().nonnegative(), toMs: z.number().positive().nullable().describe('null: past the budget'), count: z.number().int().nonnegative() })),
      overBudget: z.number().int().nonnegative(),
      p50Ms: z.number().nonnegative().nullable(),
      p95Ms: z.number().nonnegative().nullable(),
      maxMs: z.number().nonnegative().nullable(),
    }),
    thresholds: z.record(z.string(), z.number()).describe('the threshold per label of the newest part that says'),
    lanes: z.record(z.string(), z.number().int().nonnegative()).describe("results waiting in each background sink's lane"),
    events: z.object({ clients: z.number().int().nonnegative(), dropped: z.number().int().nonnegative() }),
    process: z.object({ rssBytes: z.number().nonnegative(), heapUsedBytes: z.number().nonnegative(), heapTotalBytes: z.number().nonnegative(), uptimeS: z.number().nonnegative() }),
  })
  .describe("the dashboard's aggregates over the last hour, from the history, plus the station's health");
export type SummaryBody = z.infer<typeof SummaryBody>;
