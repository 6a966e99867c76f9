import { z } from 'zod';
import { PlantHierarchy } from '../result.js';

/**
 * The shape of a station file. Each step's `config` is left `unknown` here:
 * it is checked by the schema of the plugin the step names in `use`, so that
 * an error points at the exact step and field (see compile/).
 */

const StepName = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_-]{0,62}$/, 'a step name starts with a letter and holds only letters, digits, _ and -');

export const StepSpec = z
  .object({
    name: StepName,
    use: z.string().min(1).describe('plugin id, e.g. core/folder-source@1'),
    config: z.unknown().optional(),
  })
  .strict();
export type StepSpec = z.infer<typeof StepSpec>;

export const SinkSpec = StepSpec.extend({
  critical: z.boolean().optional().describe("await this sink inside the part's cycle; defaults to the plugin's own choice"),
}).strict();
export type SinkSpec = z.infer<typeof SinkSpec>;

export const DropPolicy = z.enum(['block', 'drop-oldest', 'drop-newest']);
export type DropPolicy = z.infer<typeof DropPolicy>;

/** The station's calibration: its file, or the file and whether one made for another model may be applied. */
export const CalibrationSetting = z
  .union([
    z.string().describe('calibration file'),
    z
      .object({
        file: z.string().optional().describe('calibration file; default: calibration/<id>.json under the root, when it exists'),
        allowModelMismatch: z
          .boolean()
          .default(false)
          .describe("apply a calibration whose provenance names another model's sha256 (a deliberate trial): logged at start and marked in every result; otherwise the station is refused"),
      })
      .strict(),
  ])
  .describe('calibration file (default: calibration/<id>.json under the root, when it exists), or { file, allowModelMismatch }');
export type CalibrationSetting = z.infer<typeof CalibrationSetting>;

/** The calibration setting in one shape, whichever the station file wrote. */
export function calibrationSetting(settings: { readonly calibration?: CalibrationSetting | undefined }): { readonly file?: string; readonly allowModelMismatch: boolean } {
  const c = settings.calibration;
  if (c === undefined) return { allowModelMismatch: false };
  if (typeof c === 'string') return { file: c, allowModelMismatch: false };
  return c.file === undefined ? { allowModelMismatch: c.allowModelMismatch } : { file: c.file, allowModelMismatch: c.allowModelMismatch };
}

export const DeploySettings = z
  .object({
    dir: z.string().min(1).default('var/deploy').describe('uploaded model packages and the journal of activations, per station, relative to the station root'),
    maxPackageMiB: z.number().positive().max(4096).default(256).describe('the largest package upload the API takes'),
    keep: z.number().int().min(2).max(1000).default(10).describe('uploaded packages kept on disk; the active one and the one a rollback would return to are never removed'),
  })
  .strict();
export type DeploySettings = z.infer<typeof DeploySettings>;

export const StationSettings = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
    name: z.string().optional(),
    line: z.string().optional(),
    hierarchy: PlantHierarchy.strict()
      .optional()
      .describe("the station's place in its plant (ISA-95): { site, area, line, cell }, all four; copied into every result, and the plant page (`linegate plant`) groups and filters by it"),
    goodLabels: z
      .array(z.string().min(1))
      .optional()
      .describe("ground-truth labels (a labelled folder's class names, e.g. MT_Free) that mean a good part: replay, compare and calibrate count them as good beside good, ok and pass"),
    calibration: CalibrationSetting.optional(),
    deploy: DeploySettings.prefault({}).describe('live model deployment through the API (`linegate models deploy`): where uploaded packages and the activation journal are kept'),
    root: z.string().optional().describe('folder that relative paths resolve against; default: the parent of stations/, or the file\'s folder'),
    cycleBudgetMs: z.number().int().min(1).max(600_000).default(1000).describe('time from frame arrival to verdict before the part becomes an error'),
    maxInFlight: z.number().int().min(1).max(64).default(1).describe('parts inspected at once'),
    queueSize: z.number().int().min(0).max(10_000).default(2).describe('frames waiting for a free slot'),
    dropPolicy: DropPolicy.default('block').describe('block: stop taking frames (files, replays); drop-oldest / drop-newest: live cameras'),
    sinkTimeoutMs: z.number().int().min(1).max(600_000).default(2000).describe('bound on one write to a sink'),
    sinkQueueSize: z.number().int().min(1).max(1_000_000).default(10_000).describe('results a background sink may fall behind'),
    settleQueueSize: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .optional()
      .describe('parts whose result waits for the durable sinks before the source may settle them; at this many, a block-policy source takes no new frame; default: 256, at most sinkQueueSize'),
    initTimeoutMs: z.number().int().min(1).max(600_000).default(30_000),
    closeTimeoutMs: z.number().int().min(1).max(600_000).default(10_000),
    hungAfterMs: z
      .number()
      .int()
      .min(1)
      .max(3_600_000)
      .optional()
      .describe('how long a step may keep running after its part\'s budget ran out before it is reported hung; default: 3 x cycleBudgetMs, at least 1000 ms'),
    healthWindowMs: z
      .number()
      .int()
      .min(10)
      .max(600_000)
      .default(5000)
      .describe('the frame loop logs drops at most once per window, and reports degraded until a whole window passes without a drop'),
  })
  .strict()
  .superRefine((s, ctx) => {
    // Two names for one line would put the station's results under two lines: the file says it once, or twice the same.
    if (s.hierarchy !== undefined && s.line !== undefined && s.line !== s.hierarchy.line) {
      ctx.addIssue({ code: 'custom', path: ['hierarchy', 'line'], message: `"${s.hierarchy.line}" is not station.line "${s.line}": give the line once (in hierarchy), or the same in both` });
    }
    // drop-oldest drops from the queue: with no queue there is nothing older to drop.
    if (s.dropPolicy === 'drop-oldest' && s.queueSize === 0) {
      ctx.addIssue({ code: 'custom', path: ['queueSize'], message: 'drop-oldest drops the oldest queued frame, and a queue of 0 holds none: set queueSize to 1 or more, or use drop-newest' });
    }
    // A durable sink's lane refuses results past sinkQueueSize: more parts waiting for it could never all be kept.
    if (s.settleQueueSize !== undefined && s.settleQueueSize > s.sinkQueueSize) {
      ctx.addIssue({ code: 'custom', path: ['settleQueueSize'], message: `must be at most sinkQueueSize (${s.sinkQueueSize})` });
    }
  });
export type StationSettings = z.infer<typeof StationSettings>;

/**
 * When a step still running past its part's budget counts as hung. A run a few budgets long is a
 * slow part (a cold cache, a GC pause, a busy CPU), not a fault: only one that has taken 4 budgets
 * in all (3 past the end of the first) is worth an operator's attention. The 1 s floor keeps short
 * budgets (a 50 ms line) from calling every scheduling hiccup of a small box a hang.
 */
export function hungAfterMs(settings: Pick<StationSettings, 'cycleBudgetMs' | 'hungAfterMs'>): number {
  return settings.hungAfterMs ?? Math.max(3 * settings.cycleBudgetMs, 1000);
}

/**
 * How many parts may wait for the durable sinks (their source not yet told the part is done). A
 * block-policy source (a hot folder) waits at this many, so a slow disk slows intake instead of
 * filling memory; never more than sinkQueueSize, or a durable sink's lane would refuse results.
 */
export function settleQueueSize(settings: Pick<StationSettings, 'sinkQueueSize' | 'settleQueueSize'>): number {
  return Math.min(settings.settleQueueSize ?? 256, settings.sinkQueueSize);
}

/**
 * The station's HTTP API (runtime/api/). The token is never in the station file: it comes from
 * LINEGATE_API_TOKEN or the file `tokenFile` names, so a station file can be shared and versioned.
 */
export const ApiSettings = z
  .object({
    host: z.string().min(1).default('127.0.0.1').describe('address to listen on; loopback unless told otherwise'),
    port: z.number().int().min(0).max(65_535).default(8080).describe('0 picks a free port (logged); `linegate run --api-port` overrides it'),
    tokenFile: z.string().min(1).optional().describe('file holding the bearer token (relative to the station root); LINEGATE_API_TOKEN wins when both are set'),
    generateToken: z.boolean().default(false).describe('when tokenFile does not exist, write a new random token into it (mode 0600) and log its path, never the token: for a first start'),
    auth: z.enum(['writes', 'all']).default('writes').describe('writes: only state-changing routes need the token; all: read routes too (GET /health never does)'),
    maxUploadMiB: z.number().positive().max(256).default(16).describe('largest image body POST /api/inspect and HTTP sources take'),
  })
  .strict();
export type ApiSettings = z.infer<typeof ApiSettings>;

/**
 * The traceability history: on for every station unless `false`. The compiler adds its sink step
 * (`core/history@1`, named `history`) with these fields; a station that lists that sink itself
 * configures it there instead. Defaults live in the plugin's schema.
 */
export const HistorySetting = z
  .union([
    z.literal(false),
    z
      .object({
        dir: z.string().min(1).optional().describe('folder of <station id>.sqlite, relative to the station root (default var/history)'),
        maxAgeDays: z.number().positive().max(36_500).optional().describe('results older than this are deleted (default 90)'),
        maxMiB: z.number().min(0).max(1_048_576).optional().describe('the oldest results are deleted past this size; 0: no limit (default 1024)'),
      })
      .strict(),
  ])
  .describe('the traceability history (an SQLite file per station, `linegate history`): on by default; false turns it off');
export type HistorySetting = z.infer<typeof HistorySetting>;

export const StationFile = z
  .object({
    station: StationSettings,
    plugins: z.array(z.string().min(1)).default([]).describe('third-party plugin modules: package names, or paths relative to the station file'),
    source: StepSpec,
    stages: z.array(StepSpec).min(1),
    sinks: z.array(SinkSpec).default([]),
    history: HistorySetting.optional(),
    api: z.union([z.literal(false), ApiSettings]).optional().describe('the HTTP API: on by default (127.0.0.1:8080), off with false; LINEGATE_API_PORT and `linegate run --api-port` move the port'),
  })
  .strict();
export type StationFile = z.infer<typeof StationFile>;
