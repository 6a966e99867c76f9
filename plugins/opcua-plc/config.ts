import { z } from 'zod';
import type { StationTiming } from '../../runtime/contract.js';
import { IMAGE_EXTENSIONS } from '../source-folder/index.js';
import { TagBlock, TagMap, defaultTagMap } from './tags.js';

/* The PLC plugins' config, validated once at compile time, and the time limits they must fit in. */

export const Secret = z
  .object({
    env: z.string().optional().describe('name of an environment variable holding it'),
    file: z.string().optional().describe('file holding it (first line)'),
  })
  .strict()
  .refine((s) => (s.env === undefined) !== (s.file === undefined), 'give exactly one of env or file');
export type Secret = z.infer<typeof Secret>;

/** Room for the two writes of an answer on a loaded machine, on top of the wait for ResultAck. */
export const WRITE_MARGIN_MS = 200;

export const PlcConfig = z
  .object({
    endpoint: z.string().regex(/^opc\.tcp:\/\/.+/, 'an opc.tcp:// URL').optional().describe("the PLC's OPC UA server (not with simulate)"),
    simulate: z
      .object({
        triggerRateHz: z.number().min(0).max(100).default(2),
        addressSpace: z
          .enum(['minimal', 'standard'])
          .default('minimal')
          .describe("the simulated PLC's nodeset: minimal (node-opcua's base nodeset, all linegate reads; the server starts in a fraction of the time) or standard (the whole OPC UA standard nodeset, for browsing it with another client)"),
      })
      .strict()
      .optional()
      .describe('serve a simulated PLC in this process (loopback, a free port) and talk to it: the demo and trials without a PLC'),
    mode: z.enum(['plc', 'free-run']).default('plc').describe('plc: the PLC triggers each part (use core/opcua-trigger@1 as the source); free-run: results are a counted stream'),
    tags: z
      .union([TagMap, TagBlock])
      .default(defaultTagMap())
      .describe('every NodeId (ns= or nsu=), or a data block: { namespace: 3 or "urn:...", block: VisionDB, omit: [optional tags], nodes: { tag: NodeId } }'),
    security: z
      .object({
        mode: z.enum(['None', 'Sign', 'SignAndEncrypt']).default('None'),
        policy: z.enum(['None', 'Basic256Sha256', 'Aes128_Sha256_RsaOaep']).default('None'),
        pki: z.string().default('var/pki').describe("linegate's certificate and trust lists (created at first start)"),
      })
      .strict()
      .default({ mode: 'None', policy: 'None', pki: 'var/pki' })
      .refine((s) => (s.mode === 'None') === (s.policy === 'None'), 'mode None goes with policy None, and only with it'),
    user: z.object({ username: Secret, password: Secret }).strict().optional().describe('read from the environment or a file, never from the station file, never logged'),
    connectAttempts: z.number().int().min(1).max(100).default(5),
    connectDelayMs: z.number().int().min(10).max(60_000).default(500),
    sessionTimeoutMs: z.number().int().min(1000).max(600_000).default(20_000),
    deadlineMs: z
      .number()
      .int()
      .min(10)
      .max(600_000)
      .optional()
      .describe(`trigger -> verdict; past it the PLC gets "not decidable" (909). Between the station's cycleBudgetMs and cycleBudgetMs + ackTimeoutMs; default cycleBudgetMs + ${WRITE_MARGIN_MS}`),
    ackTimeoutMs: z.number().int().min(10).max(60_000).default(1000).describe('ResultValid -> ResultAck; past it the verdict counts as not delivered'),
    heartbeatMs: z.number().int().min(10).max(60_000).default(200),
    plcWatchdogMs: z.number().int().min(0).max(600_000).default(2000).describe("0: the PLC's heartbeat is not watched"),
    subscription: z
      .object({
        publishingIntervalMs: z.number().min(1).max(10_000).default(10).describe('how often the server may send changes; a trigger waits up to this long'),
        samplingIntervalMs: z.number().min(0).max(10_000).default(0).describe('0: every change as it happens, where the server can'),
      })
      .strict()
      .prefault({})
      .describe('asked of the PLC server; what it granted is logged at connect'),
  })
  .strict()
  .refine((c) => (c.endpoint === undefined) !== (c.simulate === undefined), { message: 'give either endpoint (a real PLC) or simulate', path: ['endpoint'] });
export type PlcConfig = z.infer<typeof PlcConfig>;

/** The deadline a station runs with: the configured one, or the cycle budget plus room for the writes. */
export const deadlineOf = (c: Pick<PlcConfig, 'deadlineMs' | 'ackTimeoutMs'>, t: Pick<StationTiming, 'cycleBudgetMs'>): number =>
  c.deadlineMs ?? t.cycleBudgetMs + Math.min(WRITE_MARGIN_MS, c.ackTimeoutMs);

/**
 * Limits that cannot work together, refused before the first frame:
 * - a deadline within the cycle budget gives a part the pipeline would still judge in time "not decidable";
 * - a deadline past budget + ack time-out is never needed by a working pipeline (the next trigger waits at
 *   most for the last ack, then gets its budget), so it only delays the fail-safe for a part linegate cannot inspect;
 * - a write to the PLC lasts until its ResultAck: a sink time-out shorter than the ack time-out (plus the
 *   writes) reports verdicts the PLC took as failed, and a close time-out shorter lets the last one go unanswered.
 */
export function checkPlcTiming(c: PlcConfig, t: StationTiming): string[] {
  if (c.mode === 'free-run') return [];
  const problems: string[] = [];
  const deadline = deadlineOf(c, t);
  if (deadline <= t.cycleBudgetMs) {
    problems.push(`deadlineMs ${deadline} is not longer than the station's cycleBudgetMs ${t.cycleBudgetMs}: a part still within its budget would get "not decidable" (909); leave deadlineMs out for ${deadlineOf({ ackTimeoutMs: c.ackTimeoutMs }, t)}`);
  }
  if (deadline > t.cycleBudgetMs + c.ackTimeoutMs) {
    problems.push(
      `deadlineMs ${deadline} is longer than cycleBudgetMs + ackTimeoutMs (${t.cycleBudgetMs} + ${c.ackTimeoutMs}): a working pipeline always answers within that, so the longer deadline only makes the PLC wait longer for the fail-safe of a part linegate cannot inspect`,
    );
  }
  if (t.sinkTimeoutMs < c.ackTimeoutMs + WRITE_MARGIN_MS) {
    problems.push(`the station's sinkTimeoutMs ${t.sinkTimeoutMs} must be at least ackTimeoutMs + ${WRITE_MARGIN_MS} (${c.ackTimeoutMs + WRITE_MARGIN_MS}): a write to the PLC lasts until its ResultAck, and a shorter sink time-out reports a verdict the PLC took as failed`);
  }
  if (t.closeTimeoutMs < c.ackTimeoutMs + WRITE_MARGIN_MS) {
    problems.push(`the station's closeTimeoutMs ${t.closeTimeoutMs} must be at least ackTimeoutMs + ${WRITE_MARGIN_MS} (${c.ackTimeoutMs + WRITE_MARGIN_MS}): at close the last trigger is answered and its ack awaited`);
  }
  return problems;
}

export const TriggerConfig = z
  .object({
    plc: z.string().min(1).describe('name of the core/opcua-plc@1 sink step whose link carries the triggers'),
    camera: z
      .object({ dir: z.string().min(1), extensions: z.array(z.string().regex(/^\.[a-z0-9]+$/i)).default(IMAGE_EXTENSIONS) })
      .strict()
      .describe('the fixture camera: each trigger takes the next image of this folder, round and round'),
  })
  .strict();
