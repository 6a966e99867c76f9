import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { LinegateError } from '../errors.js';
import { raceAbort } from '../execute/bounded.js';
import type { SimOptionsInput } from '../../plugins/opcua-plc/sim.js';
import type { CommandContext, LogOptions } from './context.js';
import { EXIT } from './io.js';

export interface PlcSimOptions extends LogOptions {
  readonly port: number;
  readonly host: string;
  readonly rate: number;
  readonly users?: string;
  readonly secure?: boolean;
  readonly pki?: string;
  readonly duration?: number;
  readonly cycles?: number;
  readonly interlock: boolean;
  readonly minSamplingMs?: number;
  readonly minPublishingMs?: number;
  readonly ackDelayMs?: number;
  readonly triggerLowMs?: number;
  readonly triggerJitterMs?: number;
  readonly resultTimeoutMs?: number;
  readonly addressSpace?: 'standard' | 'minimal';
}

/** The longest a Node timer can wait: --cycles waits for the vision side as long as the run may last. */
const LONGEST_WAIT_MS = 2_147_483_647;

async function simOptions(opts: PlcSimOptions): Promise<SimOptionsInput> {
  let users: unknown;
  if (opts.users !== undefined) {
    try {
      users = JSON.parse(await readFile(opts.users, 'utf8'));
    } catch (e) {
      throw new LinegateError('LG_ERR_CLI_USAGE', [`--users ${opts.users}: cannot read a JSON list of {username, password}: ${e instanceof Error ? e.message : String(e)}`], { cause: e });
    }
  }
  if (opts.secure === true && users === undefined) throw new LinegateError('LG_ERR_CLI_USAGE', ['--secure refuses anonymous sessions: give --users FILE']);
  // Only the flags given: the sim's defaults hold for the others, and it names a bad value's field.
  const timing = Object.fromEntries(
    Object.entries({
      minSamplingIntervalMs: opts.minSamplingMs,
      minPublishingIntervalMs: opts.minPublishingMs,
      ackDelayMs: opts.ackDelayMs,
      triggerLowMs: opts.triggerLowMs,
      triggerJitterMs: opts.triggerJitterMs,
      resultTimeoutMs: opts.resultTimeoutMs,
    }).filter(([, v]) => v !== undefined),
  );
  return {
    port: opts.port,
    host: opts.host,
    triggerRateHz: opts.cycles === undefined ? opts.rate : 0,
    interlock: opts.interlock,
    ...(opts.addressSpace === undefined ? {} : { addressSpace: opts.addressSpace }),
    ...timing,
    security: {
      ...(users === undefined ? {} : { users: users as { username: string; password: string }[] }),
      ...(opts.secure === true ? { allowAnonymous: false, modes: ['Sign', 'SignAndEncrypt'], policies: ['Basic256Sha256', 'Aes128_Sha256_RsaOaep'] } : {}),
      ...(opts.pki === undefined ? {} : { pkiDir: opts.pki }),
    },
  };
}

/** `plc-sim`: serve the simulated PLC until --duration, --cycles or a signal; the report as one JSON line on stdout. */
export async function plcSimCommand(opts: PlcSimOptions, rateGiven: boolean, ctx: CommandContext): Promise<number> {
  const log = ctx.logger(opts);
  if (opts.cycles !== undefined && rateGiven) throw new LinegateError('LG_ERR_CLI_USAGE', ['--cycles runs its cycles back to back: leave out --rate']);
  const options = await simOptions(opts);
  const { opcuaLogsTo } = await import('../../plugins/opcua-plc/opcua.js');
  opcuaLogsTo(log);
  const { SimulatedPlc } = await import('../../plugins/opcua-plc/sim.js');
  const t0 = performance.now();
  const plc = await SimulatedPlc.start(options);
  const pace = opts.cycles === undefined ? { rateHz: opts.rate } : { cycles: opts.cycles };
  log.info({ endpoint: plc.endpoint, startMs: Math.round(performance.now() - t0), pkiDir: plc.pkiDir, certificate: plc.certificateFile, ...pace }, `simulated PLC listening on ${plc.endpoint}`);
  plc.on('ready', (ready) => log.info({ visionReady: ready }, ready ? 'vision ready' : 'vision not ready'));
  plc.on('heartbeat-lost', (loss) => log.warn(loss, 'vision heartbeat lost'));
  plc.on('cycle', (r) => (r.outcome === 'ok' ? log.debug(r, 'cycle') : log.warn(r, `cycle: ${r.outcome}`)));
  const stop = new AbortController();
  const done = (): void => stop.abort();
  const timer = opts.duration === undefined ? undefined : setTimeout(done, opts.duration * 1000);
  process.on('SIGINT', done);
  process.on('SIGTERM', done);
  try {
    if (opts.cycles === undefined) await once(stop.signal, 'abort');
    else {
      for (let i = 0; i < opts.cycles && !stop.signal.aborted; i++) {
        // The next cycle as soon as the interlock allows; the first waits for the vision side to start, however long.
        if (!(await plc.waitForInterlock({ timeoutMs: LONGEST_WAIT_MS, signal: stop.signal }))) break;
        try {
          await raceAbort(plc.trigger(), stop.signal);
        } catch (e) {
          if (stop.signal.aborted) break;
          throw e;
        }
      }
      if (!stop.signal.aborted) log.info({ cycles: opts.cycles }, 'cycles done');
    }
  } finally {
    clearTimeout(timer);
    process.off('SIGINT', done);
    process.off('SIGTERM', done);
    // Ends a cycle still running (SIGTERM, --duration): its record is not in the report.
    await plc.stop();
  }
  ctx.io.stdout.write(`${JSON.stringify({ plcSim: plc.report() })}\n`);
  return EXIT.ok;
}
