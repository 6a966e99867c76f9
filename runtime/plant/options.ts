import { z } from 'zod';
import { LinegateError } from '../errors.js';

/* `linegate plant`'s settings: validated once, then frozen. */

export const DEFAULT_PLANT_PORT = 8090;

export const PlantOptions = z
  .object({
    host: z.string().min(1).default('127.0.0.1').describe('address to listen on; loopback unless told otherwise'),
    port: z.number().int().min(0).max(65_535).default(DEFAULT_PLANT_PORT).describe('0 picks a free port (logged)'),
    redis: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' }).describe('the Redis the stations and the stats workers share'),
    // The workers' rule (plugins/sink-bullmq/workers/host.ts), restated: importing it would load BullMQ here.
    prefix: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[^\s{}]+$/, 'no spaces or braces')
      .default('linegate')
      .describe('the BullMQ prefix the stations and `linegate worker stats` use'),
    minutes: z.number().int().min(1).max(1440).default(60).describe('window of yield, parts and reject codes, in whole minutes'),
    staleMinutes: z.number().positive().max(1440).default(5).describe('a station with no result for this long is stale'),
    maxErrorRate: z.number().min(0).max(1).default(0.05).describe('share of error verdicts over the last 5 minutes above which a station is unhealthy'),
    refreshSeconds: z.number().min(1).max(3600).default(5).describe('how often the page asks again'),
  })
  .strict();
export type PlantSettings = z.infer<typeof PlantOptions>;

/** Validates once and freezes; a bad option is LG_ERR_PLANT_OPTIONS naming it. */
export function parsePlantOptions(input: Readonly<Record<string, unknown>>): Readonly<PlantSettings> {
  const parsed = PlantOptions.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.code === 'unrecognized_keys' ? issue.keys.join(', ') : (issue?.path.map(String).join('.') ?? '');
    const why = issue?.code === 'unrecognized_keys' ? 'not an option of the plant page' : (issue?.message ?? 'invalid');
    throw new LinegateError('LG_ERR_PLANT_OPTIONS', [field || '(options)', why], { path: field });
  }
  return Object.freeze(parsed.data);
}
