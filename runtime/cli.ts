import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import type { Logger } from './contract.js';
import { LinegateError, LinegateErrors, isLinegateError } from './errors.js';
import { resultJsonSchema } from './result.js';
import { compileStationFile, describePlan } from './compile/compile.js';
import { createLogger } from './observability/logger.js';
import { builtinRegistry } from './registry/builtins.js';
import { Station } from './station.js';
import { printPlan } from './cli-format.js';
import { raceAbort } from './execute/bounded.js';
import { addReplayCommands } from './cli-replay.js';
import { draftManifest, formatInspection, inspectModel, modelFileSize, type Draft } from '../plugins/model-onnx/inspect.js';
import type { SimOptionsInput } from '../plugins/opcua-plc/sim.js';

/** Exit codes: 0 success, 1 runtime failure, 2 bad input (a station file, an argument). */
const EXIT = { ok: 0, runtime: 1, input: 2 } as const;

const positiveInt = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
};

const sizeArg = (v: string): { width: number; height: number } => {
  const m = /^(\d+)x(\d+)$/i.exec(v.trim());
  const width = Number(m?.[1]);
  const height = Number(m?.[2]);
  if (m === null || width < 1 || height < 1 || width > 16_384 || height > 16_384) throw new InvalidArgumentError('must be WIDTHxHEIGHT in pixels, e.g. 256x256');
  return { width, height };
};

const portArg = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError('must be a port number, 0-65535 (0 picks a free one)');
  return n;
};

const nonNegative = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number >= 0');
  return n;
};

const positive = (v: string): number => {
  const n = nonNegative(v);
  if (n === 0) throw new InvalidArgumentError('must be a number > 0');
  return n;
};

/** Coded errors to stderr, one per line; the exit code says whether the input or the run was at fault. */
function report(e: unknown, json: boolean): number {
  const errors = e instanceof LinegateErrors ? e.errors : isLinegateError(e) ? [e] : undefined;
  if (errors === undefined) {
    process.stderr.write(`linegate: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return EXIT.runtime;
  }
  if (json) process.stderr.write(`${JSON.stringify({ errors: errors.map((x) => x.toJSON()) })}\n`);
  else
    for (const x of errors) {
      const where = [x.step === undefined ? '' : `step "${x.step}"`, x.path ?? ''].filter(Boolean).join(', ');
      process.stderr.write(`${x.code}${where === '' ? '' : ` (${where})`}: ${x.message}\n`);
    }
  return errors.every((x) => x.httpStatus >= 400 && x.httpStatus < 500) ? EXIT.input : EXIT.runtime;
}

/** The first SIGINT/SIGTERM asks for a graceful stop; a second exits at once (130). Returns what removes the handlers. */
function onStopSignals(log: Logger, stopping: string, stop: () => void): () => void {
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (++signals === 1) {
      log.info({ signal: sig }, stopping);
      stop();
    } else {
      log.warn({ signal: sig }, 'second signal: exiting at once');
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

async function runCommand(file: string, opts: { maxFrames?: number; logLevel?: string; pretty?: boolean }): Promise<number> {
  const log: Logger = createLogger({ ...(opts.logLevel === undefined ? {} : { level: opts.logLevel }), ...(opts.pretty === undefined ? {} : { pretty: opts.pretty }) });
  const station = await Station.open(file, log);
  const offSignals = onStopSignals(log, 'stopping: no new frames; draining parts in flight and flushing sinks', () => station.stop());
  try {
    const summary = await station.run(opts.maxFrames === undefined ? {} : { maxFrames: opts.maxFrames });
    // Read before the close: e.g. "Redis unreachable, N bytes spooled", which the operator must see.
    const health = station.health();
    if (health.status !== 'ok') log.warn({ health }, `station ended ${health.status}`);
    await station.close();
    process.stdout.write(`${JSON.stringify({ summary, health })}\n`);
    return EXIT.ok;
  } finally {
    await station.close();
    offSignals();
  }
}

interface InspectOptions {
  out?: string;
  force?: boolean;
  size?: { width: number; height: number };
  json?: boolean;
}

/** `models inspect`: the report on stdout, the draft model.json on disk, what to review on stderr. */
async function inspectCommand(file: string, opts: InspectOptions): Promise<number> {
  const onnx = path.resolve(file);
  const out = path.resolve(opts.out ?? path.join(path.dirname(onnx), 'model.json'));
  await modelFileSize(onnx);
  if (out === onnx) throw new LinegateError('LG_ERR_CLI_USAGE', [`--out ${out} is the model file itself`]);
  if (opts.force !== true && existsSync(out)) throw new LinegateError('LG_ERR_CLI_USAGE', [`${out} already exists: pass --force to overwrite it, or --out to write elsewhere`]);
  const inspection = await inspectModel(onnx);
  const rel = path.relative(path.dirname(out), inspection.file).split(path.sep).join('/');
  let draft: Draft;
  try {
    draft = draftManifest(inspection, { file: rel, ...(opts.size === undefined ? {} : { size: opts.size }) });
  } catch (e) {
    // What the file says is still worth seeing when no draft can be made.
    if (opts.json !== true) process.stdout.write(formatInspection(inspection));
    throw e;
  }
  try {
    await writeFile(out, `${JSON.stringify(draft.manifest, null, 2)}\n`, { flag: opts.force === true ? 'w' : 'wx' });
  } catch (e) {
    throw new LinegateError('LG_ERR_CLI_USAGE', [`cannot write the draft to ${out}: ${e instanceof Error ? e.message : String(e)}`], { cause: e });
  }
  if (opts.json === true) {
    process.stdout.write(`${JSON.stringify({ inspection, draft: { file: out, recognisedAs: draft.recognisedAs, manifest: draft.manifest, review: draft.review } }, null, 2)}\n`);
  } else {
    process.stdout.write(formatInspection(inspection, { draft, out }));
    process.stderr.write(`${out} is a DRAFT; review before use:\n${draft.review.map((r) => `  - ${r}\n`).join('')}`);
  }
  return EXIT.ok;
}

interface PlcSimOptions {
  port: number;
  host: string;
  rate: number;
  users?: string;
  secure?: boolean;
  pki?: string;
  duration?: number;
  cycles?: number;
  interlock: boolean;
  minSamplingMs?: number;
  minPublishingMs?: number;
  ackDelayMs?: number;
  triggerLowMs?: number;
  triggerJitterMs?: number;
  resultTimeoutMs?: number;
  logLevel?: string;
  pretty?: boolean;
}

/** The longest a Node timer can wait: --cycles waits for the vision side as long as the run may last. */
const LONGEST_WAIT_MS = 2_147_483_647;

/** `plc-sim`: serve the simulated PLC until --duration, --cycles or a signal; the report as one JSON line on stdout. */
async function plcSimCommand(opts: PlcSimOptions, rateGiven: boolean): Promise<number> {
  const log: Logger = createLogger({ ...(opts.logLevel === undefined ? {} : { level: opts.logLevel }), ...(opts.pretty === undefined ? {} : { pretty: opts.pretty }) });
  if (opts.cycles !== undefined && rateGiven) throw new LinegateError('LG_ERR_CLI_USAGE', ['--cycles runs its cycles back to back: leave out --rate']);
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
  const options: SimOptionsInput = {
    port: opts.port,
    host: opts.host,
    triggerRateHz: opts.cycles === undefined ? opts.rate : 0,
    interlock: opts.interlock,
    ...timing,
    security: {
      ...(users === undefined ? {} : { users: users as { username: string; password: string }[] }),
      ...(opts.secure === true ? { allowAnonymous: false, modes: ['Sign', 'SignAndEncrypt'], policies: ['Basic256Sha256', 'Aes128_Sha256_RsaOaep'] } : {}),
      ...(opts.pki === undefined ? {} : { pkiDir: opts.pki }),
    },
  };
  // Loaded here, not at the top: node-opcua takes a second to import and no other command needs it.
  const { SimulatedPlc, sendOpcuaLogsTo } = await import('../plugins/opcua-plc/sim.js');
  sendOpcuaLogsTo((line) => log.warn(line));
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
  process.stdout.write(`${JSON.stringify({ plcSim: plc.report() })}\n`);
  return EXIT.ok;
}

interface WorkerCliOptions {
  redis?: string;
  prefix?: string;
  concurrency?: number;
  out?: string;
  archive?: string;
  logLevel?: string;
  pretty?: boolean;
}

/** `worker <name>`: consume a queue until SIGINT/SIGTERM, then close gracefully; one {"worker": ...} JSON line on stdout at exit. */
async function workerCommand(name: string, opts: WorkerCliOptions): Promise<number> {
  // Loaded here, not at the top: BullMQ and ioredis are for this command only.
  const { startWorker } = await import('../plugins/sink-bullmq/workers/index.js');
  const log: Logger = createLogger({ ...(opts.logLevel === undefined ? {} : { level: opts.logLevel }), ...(opts.pretty === undefined ? {} : { pretty: opts.pretty }) });
  // Only the flags given: each worker refuses the options it does not take.
  const options = Object.fromEntries(
    Object.entries({
      redis: opts.redis,
      prefix: opts.prefix,
      concurrency: opts.concurrency,
      out: opts.out === undefined ? undefined : path.resolve(opts.out),
      archive: opts.archive === undefined ? undefined : path.resolve(opts.archive),
    }).filter(([, v]) => v !== undefined),
  );
  let stop = (): void => undefined;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const offSignals = onStopSignals(log, 'stopping: no new jobs; waiting for the running ones', () => stop());
  try {
    const worker = await startWorker(name, options, log);
    await stopped;
    await worker.close();
    process.stdout.write(`${JSON.stringify({ worker: { name: worker.name, processed: worker.processed(), failed: worker.failed() } })}\n`);
    return EXIT.ok;
  } finally {
    offSignals();
  }
}

export function buildCli(): Command {
  const program = new Command('linegate')
    .description('Station-side AI vision inspection: camera frames -> ONNX models -> verdicts to the PLC, images and results to the queues.')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('run')
    .description('run a station: inspect frames until the source ends, --max-frames, or SIGINT/SIGTERM (which drains and exits 0); prints one summary JSON line on stdout')
    .argument('<station>', 'station file (YAML or JSON)')
    .option('--max-frames <n>', 'stop after this many frames have arrived', positiveInt)
    .option('--log-level <level>', 'trace | debug | info | warn | error (default info, or LINEGATE_LOG_LEVEL)')
    .option('--pretty', 'human-readable logs (default when stderr is a terminal)')
    .option('--no-pretty', 'JSON logs')
    .action(async (file: string, opts: { maxFrames?: number; logLevel?: string; pretty?: boolean }) => {
      process.exitCode = await runCommand(file, opts);
    });

  program
    .command('check')
    .description('compile a station file without running it: print the execution plan, or the coded errors (exit 2)')
    .argument('<station>', 'station file (YAML or JSON)')
    .option('--json', 'print the plan (or the errors) as JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      const plan = await compileStationFile(file, builtinRegistry());
      process.stdout.write(opts.json === true ? `${JSON.stringify(describePlan(plan), null, 2)}\n` : printPlan(plan));
    });

  program
    .command('schema')
    .description('print a JSON Schema: `result` (the inspection result record)')
    .argument('<what>', 'result')
    .action((what: string) => {
      if (what !== 'result') throw new LinegateError('LG_ERR_CLI_USAGE', [`unknown schema "${what}"; known: result`]);
      process.stdout.write(`${JSON.stringify(resultJsonSchema(), null, 2)}\n`);
    });

  program
    .command('plugins')
    .description('list the built-in plugins with their kinds and caps')
    .option('--json', 'as JSON')
    .action((opts: { json?: boolean }) => {
      const list = builtinRegistry()
        .list()
        .map(({ plugin: { manifest: m } }) => ({ id: m.id, kind: m.kind, description: m.description }));
      process.stdout.write(opts.json === true ? `${JSON.stringify(list, null, 2)}\n` : list.map((p) => `${p.id.padEnd(28)} ${p.kind.padEnd(12)} ${p.description}\n`).join(''));
    });

  const pki = program.command('pki').description("linegate's OPC UA certificate and the PLC certificates it trusts");
  pki
    .command('show')
    .description("print linegate's own certificate (subject, URI, validity, SHA-1 fingerprint): what the PLC side must trust")
    .option('--pki <dir>', 'PKI folder', 'var/pki')
    .action(async (opts: { pki: string }) => {
      const { showOwnCertificate } = await import('../plugins/opcua-plc/pki.js');
      process.stdout.write(`${JSON.stringify(await showOwnCertificate(path.resolve(opts.pki)), null, 2)}\n`);
    });
  pki
    .command('trust')
    .description("trust a PLC's certificate (PEM or DER), e.g. exported from TIA Portal or taken from the PKI's rejected/ folder; every copy of it in rejected/ is removed")
    .argument('<certificate>', 'certificate file')
    .option('--pki <dir>', 'PKI folder', 'var/pki')
    .action(async (file: string, opts: { pki: string }) => {
      const { trustCertificate } = await import('../plugins/opcua-plc/pki.js');
      const trusted = await trustCertificate(path.resolve(opts.pki), path.resolve(file));
      // The removal is said on stderr too: a file vanishing from rejected/ should not surprise whoever looks there next.
      for (const removed of trusted.removedFromRejected) process.stderr.write(`removed from rejected/: ${removed}\n`);
      process.stdout.write(`${JSON.stringify(trusted, null, 2)}\n`);
    });

  program
    .command('plc-sim')
    .description(
      'serve a simulated PLC over OPC UA that plays the PLC side of the handshake (VisionReady interlock, trigger, echo check, ack, heartbeats) until --duration, --cycles or SIGINT/SIGTERM; logs go to stderr, one {"plcSim": report} JSON line to stdout at exit',
    )
    .option('--port <n>', 'TCP port; 0 picks a free one (logged)', portArg, 4840)
    .option('--host <address>', 'address to listen on (0.0.0.0 for every interface)', '127.0.0.1')
    .option('--rate <hz>', 'triggers per second; 0: none (a cycle still running skips a tick)', nonNegative, 2)
    .option('--users <file>', 'JSON list of {"username", "password"} allowed to log in')
    .option('--secure', 'only Sign and SignAndEncrypt endpoints (Basic256Sha256, Aes128_Sha256_RsaOaep), no anonymous sessions; needs --users')
    .option('--pki <dir>', 'server PKI folder, kept between runs (default: a temp folder, removed at exit); unknown client certificates are accepted')
    .option('--duration <seconds>', 'stop after this long (default: until SIGINT/SIGTERM)', positive)
    .option('--cycles <n>', 'run n cycles back to back (each once the last has ended, the interlock allows and --trigger-low-ms has passed), then stop; not with --rate', positiveInt)
    .option('--no-interlock', 'raise Trigger even while VisionReady is false or VisionHeartbeat stands still')
    .option('--min-sampling-ms <ms>', "the server's floor for a monitored item's sampling interval (default 10; 0: every change)", nonNegative)
    .option('--min-publishing-ms <ms>', "the server's floor for a subscription's publishing interval (default 10)", positive)
    .option('--ack-delay-ms <ms>', 'ResultValid seen -> verdict latched and ResultAck raised (default 0)', nonNegative)
    .option('--trigger-low-ms <ms>', 'the least time Trigger stays low between two cycles (default 100)', nonNegative)
    .option('--trigger-jitter-ms <ms>', 'up to this much more low time, at random, so that back-to-back cycles do not lock onto the publishing timer (default 0)', nonNegative)
    .option('--result-timeout-ms <ms>', 'bound on each wait of a cycle: the interlock, ResultValid, its drop (default 2000)', positive)
    .option('--log-level <level>', 'trace | debug (every cycle) | info | warn | error')
    .option('--pretty', 'human-readable logs (default when stderr is a terminal)')
    .option('--no-pretty', 'JSON logs')
    .action(async (opts: PlcSimOptions, cmd: Command) => {
      process.exitCode = await plcSimCommand(opts, cmd.getOptionValueSource('rate') === 'cli');
    });

  program
    .command('worker')
    .description(
      'run a queue worker (it may run on another machine than the station; Redis is shared) until SIGINT/SIGTERM: dataset-export (samples -> a retraining dataset in --out) or stats (results -> per-minute statistics in Redis)',
    )
    .argument('<name>', 'dataset-export | stats')
    .option('--redis <url>', 'Redis URL (default redis://127.0.0.1:6379)')
    .option('--prefix <prefix>', 'BullMQ key prefix the station uses (default linegate)')
    .option('--concurrency <n>', 'jobs at once (default: dataset-export 1, stats 4)', positiveInt)
    .option('--out <dir>', 'dataset-export: the dataset folder')
    .option('--archive <dir>', "dataset-export: the station's image archive folder (not needed when images travel inline)")
    .option('--log-level <level>', 'trace | debug | info | warn | error')
    .option('--pretty', 'human-readable logs (default when stderr is a terminal)')
    .option('--no-pretty', 'JSON logs')
    .action(async (name: string, opts: WorkerCliOptions) => {
      process.exitCode = await workerCommand(name, opts);
    });

  program
    .command('stats')
    .description("print a station's statistics over the last N minutes as JSON (counted in Redis by `linegate worker stats`)")
    .argument('<station>', 'station id')
    .option('--minutes <n>', 'window length in minutes, the current one included', positiveInt, 60)
    .option('--redis <url>', 'Redis URL (default redis://127.0.0.1:6379)')
    .option('--prefix <prefix>', 'key prefix (default linegate)')
    .action(async (station: string, opts: { minutes: number; redis?: string; prefix?: string }) => {
      const { readStats } = await import('../plugins/sink-bullmq/workers/stats-read.js');
      const stats = await readStats({ station, minutes: opts.minutes, ...(opts.redis === undefined ? {} : { redis: opts.redis }), ...(opts.prefix === undefined ? {} : { prefix: opts.prefix }) });
      process.stdout.write(`${JSON.stringify(stats, null, 2)}\n`);
    });

  addReplayCommands(program);

  const models = program.command('models').description('model packages: inspect an ONNX file and draft its model.json');
  models
    .command('inspect')
    .description(
      'print what an ONNX file says about itself (inputs, outputs, opsets, producer, metadata) and write a DRAFT model.json for it (Ultralytics detect/classify, anomalib, or a one-output classifier/segmenter); what a person must confirm goes to stderr',
    )
    .argument('<model>', 'the .onnx file')
    .option('--out <file>', 'where to write the draft (default: model.json beside the .onnx)')
    .option('--force', 'overwrite the draft file if it exists')
    .option('--size <WxH>', 'input width x height, for graphs whose height and width are dynamic', sizeArg)
    .option('--json', 'print the inspection and the draft (with the review notes) as JSON')
    .action(async (file: string, opts: InspectOptions) => {
      process.exitCode = await inspectCommand(file, opts);
    });

  return program;
}

/** Runs the CLI and resolves with the exit code; `argv` as in process.argv. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildCli();
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv as string[]);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with exit code 0; usage errors are bad input.
      return e.exitCode === 0 ? EXIT.ok : EXIT.input;
    }
    return report(e, json);
  }
}

