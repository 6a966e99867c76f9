import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { definePlugin, type PluginContext, type SinkInstance } from '../../runtime/contract.js';
import { LinegateError, messageOf } from '../../runtime/errors.js';
import { PlcConfig, checkPlcTiming, deadlineOf, type Secret } from './config.js';
import { Handshake, TRIGGERS } from './handshake.js';
import { PlcLink } from './link.js';
import { loadOpcua, opcuaLogsTo } from './opcua.js';
import { omittedTags, tagMapOf } from './tags.js';

export { opcuaTrigger } from './trigger-source.js';
export { TRIGGERS } from './handshake.js';

async function secret(s: Secret, ctx: PluginContext, what: string): Promise<string> {
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
    description: 'Gives the PLC every verdict over OPC UA: one state machine per trigger (echo, ResultValid, ResultAck), heartbeat and Ready, a fail-safe reject at the deadline, automatic reconnection.',
    config: PlcConfig,
    critical: true,
    provides: [TRIGGERS],
    checkTiming: checkPlcTiming,
  },
  async init(config, ctx) {
    const tags = tagMapOf(config.tags);
    opcuaLogsTo(ctx.log);
    // The simulated PLC is loaded only when asked for (it pulls in the OPC UA server side). Its server
    // certificate is kept beside linegate's own: a new one at every start would cost seconds.
    const simPki = path.join(ctx.resolvePath(config.security.pki), 'plc-sim');
    const sim =
      config.simulate === undefined
        ? undefined
        : await loadOpcua().then(async () => (await import('./sim.js')).SimulatedPlc.start({ port: 0, triggerRateHz: config.simulate!.triggerRateHz, addressSpace: config.simulate!.addressSpace, tags, security: { pkiDir: simPki } }));
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

async function connect(config: PlcConfig, ctx: PluginContext, endpoint: string, sim: { report(): unknown; stop(): Promise<void> } | undefined): Promise<SinkInstance> {
  const tags = tagMapOf(config.tags);
  for (const { tag, without } of omittedTags(tags)) ctx.log.warn({ tag }, `the tag map has no ${tag}: linegate runs without ${without}`);
  const user =
    config.user === undefined ? undefined : { username: await secret(config.user.username, ctx, 'username'), password: await secret(config.user.password, ctx, 'password') };
  const link = await PlcLink.open({
    endpoint,
    tags,
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
  const deadlineMs = deadlineOf(config, ctx.timing);
  const handshake = new Handshake(link, {
    step: ctx.step,
    mode: config.mode,
    deadlineMs,
    ackTimeoutMs: config.ackTimeoutMs,
    heartbeatMs: config.heartbeatMs,
    plcWatchdogMs: tags.plcHeartbeat === undefined ? 0 : config.plcWatchdogMs,
    log: ctx.log,
  });
  let granted;
  try {
    granted = await link.watch(config.subscription);
  } catch (e) {
    await link.close();
    throw e;
  }
  if (config.mode === 'plc' && granted.publishingIntervalMs + granted.samplingIntervalMs >= deadlineMs) {
    ctx.log.error({ granted, deadlineMs }, "the PLC's server sends changes no faster than the deadline: every part will get \"not decidable\"; lower its publishing and sampling intervals or raise the deadline");
  }
  ctx.log.info({ endpoint, mode: config.mode, security: `${config.security.mode}/${config.security.policy}`, deadlineMs, ackTimeoutMs: config.ackTimeoutMs }, 'PLC link up');
  let closing: Promise<void> | undefined;
  return {
    service: (name) => (name === TRIGGERS ? handshake : undefined),
    started: () => handshake.start(),
    stopping: () => handshake.stopping(),
    async write(result, run) {
      run.signal.throwIfAborted();
      await handshake.deliver(result);
      return 'delivered' as const;
    },
    health: () => handshake.health(),
    close: () =>
      (closing ??= (async () => {
        await handshake.close();
        await link.close();
        if (sim !== undefined) {
          ctx.log.info({ plcSim: sim.report() }, 'what the simulated PLC saw');
          await sim.stop();
        }
      })()),
  };
}
