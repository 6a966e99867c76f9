import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { definePlugin, type FrameInput, type PluginContext, type SinkInstance } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import { Handshake, type Trigger } from './handshake.js';
import { IMAGE_EXTENSIONS, listImages } from '../source-folder/index.js';
import { PlcLink } from './link.js';
import { loadOpcua } from './opcua.js';
import { TagMap, defaultTagMap } from './tags.js';

const Secret = z
  .object({
    env: z.string().optional().describe('name of an environment variable holding it'),
    file: z.string().optional().describe('file holding it (first line)'),
  })
  .strict()
  .refine((s) => (s.env === undefined) !== (s.file === undefined), 'give exactly one of env or file');

const Config = z
  .object({
    endpoint: z.string().regex(/^opc\.tcp:\/\/.+/, 'an opc.tcp:// URL').optional().describe("the PLC's OPC UA server (not with simulate)"),
    simulate: z
      .object({ triggerRateHz: z.number().min(0).max(100).default(2) })
      .strict()
      .optional()
      .describe('serve a simulated PLC in this process (loopback, a free port) and talk to it: the demo and trials without a PLC'),
    mode: z.enum(['plc', 'free-run']).default('plc').describe('plc: the PLC triggers each part (use core/opcua-trigger@1 as the source); free-run: results are a counted stream'),
    tags: TagMap.default(defaultTagMap()),
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
    deadlineMs: z.number().int().min(10).max(600_000).default(1000).describe('trigger -> verdict; past it the PLC gets "not decidable" (set it to the cycle budget plus a margin)'),
    ackTimeoutMs: z.number().int().min(10).max(60_000).default(1000),
    heartbeatMs: z.number().int().min(10).max(60_000).default(200),
    plcWatchdogMs: z.number().int().min(0).max(600_000).default(2000).describe("0: the PLC's heartbeat is not watched"),
  })
  .strict()
  .refine((c) => (c.endpoint === undefined) !== (c.simulate === undefined), { message: 'give either endpoint (a real PLC) or simulate', path: ['endpoint'] });

/** What the PLC sink offers the trigger source: the PLC's triggers, over the sink's own link. */
export const TRIGGERS = 'opcua-plc/triggers@1';

async function secret(s: z.infer<typeof Secret>, ctx: PluginContext, what: string): Promise<string> {
  if (s.env !== undefined) {
    const v = process.env[s.env];
    if (v === undefined) throw new LinegateError('LG_ERR_PLC_CREDENTIALS', [what, `environment variable ${s.env} is not set`]);
    return v;
  }
  try {
    return (await readFile(ctx.resolvePath(s.file!), 'utf8')).split(/\r?\n/)[0]!;
  } catch (e) {
    throw new LinegateError('LG_ERR_PLC_CREDENTIALS', [what, `cannot read ${s.file!}: ${messageOf(e)}`]);
  }
}

export const opcuaPlc = definePlugin({
  manifest: {
    id: 'core/opcua-plc@1',
    kind: 'sink',
    description: "Gives the PLC every verdict over OPC UA: handshake with id echo and acknowledge, heartbeat and Ready, a fail-safe reject at the deadline, automatic reconnection.",
    config: Config,
    critical: true,
    provides: [TRIGGERS],
  },
  async init(config, ctx) {
    // The simulated PLC is loaded only when asked for (it pulls in the OPC UA server side), and
    // only after loadOpcua() has sent node-opcua's console output to stderr.
    const sim =
      config.simulate === undefined
        ? undefined
        : await loadOpcua().then(async () => (await import('./sim.js')).SimulatedPlc.start({ port: 0, triggerRateHz: config.simulate!.triggerRateHz, tags: config.tags }));
    const endpoint = sim?.endpoint ?? config.endpoint!;
    if (sim !== undefined) ctx.log.info({ endpoint, triggerRateHz: config.simulate!.triggerRateHz }, 'simulated PLC serving');
    try {
      return await connect(config, ctx, endpoint, sim);
    } catch (e) {
      await sim?.stop();
      throw e;
    }
  },
});

async function connect(config: z.infer<typeof Config>, ctx: PluginContext, endpoint: string, sim: { report(): unknown; stop(): Promise<void> } | undefined): Promise<SinkInstance> {
  const user =
    config.user === undefined ? undefined : { username: await secret(config.user.username, ctx, 'username'), password: await secret(config.user.password, ctx, 'password') };
  const link = await PlcLink.open({
    endpoint,
    tags: config.tags,
    security: { mode: config.security.mode, policy: config.security.policy },
    ...(user === undefined ? {} : { user }),
    connectAttempts: config.connectAttempts,
    connectDelayMs: config.connectDelayMs,
    sessionTimeoutMs: config.sessionTimeoutMs,
    // Always our own PKI (node-opcua would otherwise make one under the user's home, even for mode None).
    pkiDir: ctx.resolvePath(config.security.pki),
    // One application instance per machine: one certificate in the PKI serves every station on it.
    applicationUri: `urn:${hostname()}:linegate`,
    log: ctx.log,
  });
  const handshake = new Handshake(link, {
    mode: config.mode,
    deadlineMs: config.deadlineMs,
    ackTimeoutMs: config.ackTimeoutMs,
    heartbeatMs: config.heartbeatMs,
    plcWatchdogMs: config.tags.plcHeartbeat === undefined ? 0 : config.plcWatchdogMs,
    log: ctx.log,
  });
  try {
    await link.watch();
  } catch (e) {
    await link.close();
    throw e;
  }
  ctx.log.info({ endpoint, mode: config.mode, security: `${config.security.mode}/${config.security.policy}` }, 'PLC link up');
  return {
    service: (name) => (name === TRIGGERS ? handshake : undefined),
    started: () => handshake.start(),
    stopping: () => handshake.stop(),
    async write(result, run) {
      run.signal.throwIfAborted();
      await handshake.deliver(result);
      return 'delivered' as const;
    },
    async close() {
      await handshake.stop();
      await link.close();
      if (sim !== undefined) {
        ctx.log.info({ plcSim: sim.report() }, 'what the simulated PLC saw');
        await sim.stop();
      }
    },
  };
}

const TriggerConfig = z
  .object({
    plc: z.string().min(1).describe('name of the core/opcua-plc@1 sink step whose link carries the triggers'),
    camera: z
      .object({ dir: z.string().min(1), extensions: z.array(z.string().regex(/^\.[a-z0-9]+$/i)).default(IMAGE_EXTENSIONS) })
      .strict()
      .describe('the fixture camera: each trigger takes the next image of this folder, round and round'),
  })
  .strict();

/** Frames on the PLC's command: each trigger takes one image, tagged with the PLC's part id. */
export const opcuaTrigger = definePlugin({
  manifest: {
    id: 'core/opcua-trigger@1',
    kind: 'source',
    description: "Takes a frame whenever the PLC raises its trigger; the part id is the PLC's.",
    config: TriggerConfig,
    produces: [{ type: 'image/encoded' }],
    requires: [{ field: 'plc', service: TRIGGERS }],
  },
  async init(config, ctx) {
    const handshake = ctx.dependency('plc');
    if (!(handshake instanceof Handshake)) throw new LinegateError('LG_ERR_STATION_DEPENDENCY', [ctx.step, 'core/opcua-trigger@1', TRIGGERS, 'plc', 'the step gave something else']);
    const dir = ctx.resolvePath(config.camera.dir);
    // The same listing as core/folder-source@1: stable byte order, hidden files skipped, links followed.
    const files = await listImages(dir, config.camera.extensions, true).then(
      (entries) => entries.map((e) => e.file),
      () => {
        throw new LinegateError('LG_ERR_SOURCE_NOT_FOUND', [dir], { step: ctx.step });
      },
    );
    if (files.length === 0) throw new LinegateError('LG_ERR_SOURCE_EMPTY', [dir, config.camera.extensions.join(' ')], { step: ctx.step });
    let next = 0;
    return {
      async *frames(run: PluginContext): AsyncGenerator<FrameInput> {
        const queue: Trigger[] = [];
        let wake: (() => void) | undefined;
        const onTrigger = (t: Trigger): void => {
          queue.push(t);
          wake?.();
        };
        const onAbort = (): void => wake?.();
        handshake.on('trigger', onTrigger);
        run.signal.addEventListener('abort', onAbort);
        // A trigger raised while the station was still starting is waiting: take it first.
        if (handshake.pending !== undefined) queue.push(handshake.pending);
        try {
          while (!run.signal.aborted) {
            const t = queue.shift();
            if (t === undefined) {
              await new Promise<void>((resolve) => {
                wake = resolve;
                if (run.signal.aborted || queue.length > 0) resolve();
              });
              wake = undefined;
              continue;
            }
            const file = path.join(dir, files[next++ % files.length]!);
            try {
              yield { partId: t.partId, ref: file, image: { kind: 'encoded', data: await readFile(file) }, capturedAt: new Date() };
            } catch (err) {
              // No frame: no result from the pipeline, so the link's deadline rejects the part.
              run.log.error({ err, partId: t.partId, file }, 'camera could not take the frame; the PLC gets a reject at the deadline');
            }
          }
        } finally {
          handshake.off('trigger', onTrigger);
          run.signal.removeEventListener('abort', onAbort);
        }
      },
    };
  },
});
