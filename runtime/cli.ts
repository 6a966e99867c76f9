import path from 'node:path';
import { Command, CommanderError } from 'commander';
import type { Logger } from './contract.js';
import { LinegateError } from './errors.js';
import { routeConsole } from './observability/console.js';
import { createLogger } from './observability/logger.js';
import { integer, logLevel, nonNegative, portArg, positive, positiveInt, sizeArg } from './cli/args.js';
import * as historyArgs from './cli/history-args.js';
import type { HistoryOptions } from './cli/history.js';
import type { CommandContext, LogOptions } from './cli/context.js';
import { EXIT, processIo, type CliIo } from './cli/io.js';
import type { ModelsAction, ModelsCliOptions } from './cli/models-deploy.js';
import { addPlcSimCommand } from './cli/define-plc.js';
import { addQueueCommands } from './cli/define-queue.js';
import { addReplayCommands } from './cli/define-replay.js';
import { addPlantCommand } from './cli/plant.js';
import { report, usageError } from './cli/report.js';

/*
 * The composition root of the command line. Only commander and the option parsers load up front:
 * each command's action imports its own modules when it runs, so `linegate --help` never pays for
 * onnxruntime, sharp, node-opcua or BullMQ, and `run` pays only for what its station uses.
 */

export type { CliIo } from './cli/io.js';
export { EXIT } from './cli/io.js';

/** --log-level, --pretty, --no-pretty: the same on every command. */
export function withLogOptions(cmd: Command, defaultLevel = 'info'): Command {
  return cmd
    .option('--log-level <level>', `trace | debug | info | warn | error | fatal | silent (default ${defaultLevel}, or LINEGATE_LOG_LEVEL)`, logLevel)
    .option('--pretty', 'human-readable logs (default when stderr is a terminal)')
    .option('--no-pretty', 'JSON logs');
}

/** The program; each action reports its exit code through `exit`. */
export function buildCli(ctx: CommandContext, exit: (code: number) => void): Command {
  const program = new Command('linegate')
    .description('Station-side AI vision inspection: camera frames -> ONNX models -> verdicts to the PLC, images and results to the queues.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => void ctx.io.stdout.write(s), writeErr: () => undefined, outputError: () => undefined });
  const add = (name: string, defaultLevel?: string): Command => withLogOptions(program.command(name), defaultLevel);

  add('run')
    .description('run a station: inspect frames until the source ends, --max-frames, or SIGINT/SIGTERM (which drains and exits 0); prints one summary JSON line on stdout')
    .argument('<station>', 'station file (YAML or JSON)')
    .option('--max-frames <n>', 'stop after this many frames have arrived', positiveInt)
    .option('--api-port <port>', "serve the station's HTTP API on this port (over the station file's api.port; turns the API on); 0 picks a free one", portArg)
    .action(async (file: string, opts: LogOptions & { maxFrames?: number; apiPort?: number }) => exit(await (await import('./cli/run.js')).runCommand(file, opts, ctx)));

  add('check')
    .description(
      "compile a station file and verify what its steps name (model packages: files, sha256, graph against model.json) without starting it: no PLC, no Redis; prints the plan, or every coded error (exit 2)",
    )
    .argument('<station>', 'station file (YAML or JSON)')
    .option('--json', 'print the plan (or the errors) as JSON')
    .action(async (file: string, opts: LogOptions & { json?: boolean }) => exit(await (await import('./cli/check.js')).checkCommand(file, opts, ctx)));

  add('history')
    .description("print a station's results from its history file (<history.dir>/<station id>.sqlite), newest first, as a table or JSON lines; reads only that file (no PLC, no Redis, no model)")
    .argument('<station>', 'station file (YAML or JSON)')
    .option('--part <id>', 'only this part id')
    .option('--verdict <verdict>', 'only pass, fail or error', (v: string) => historyArgs.verdict(v))
    .option('--code <code>', 'only results with this reason code (a rule id or an LG_ERR_ code)')
    .option('--reject-code <n>', "only this PLC reject code", integer)
    .option('--label <label>', 'only results with a defect of this label')
    .option('--since <when>', 'decided at or after: an ISO 8601 instant, or a duration back from now (90s, 15m, 2h, 7d, 1w)', (v: string) => historyArgs.since(v))
    .option('--until <when>', 'decided before this ISO 8601 instant', (v: string) => historyArgs.until(v))
    .option('--limit <n>', 'at most this many results, 1-1000', (v: string) => historyArgs.limit(v), 50)
    .option('--json', 'one result record per line (the schema `linegate schema result` prints)')
    .option('--deployments', 'the model activations instead (starts, deploys, rollbacks: which model, who, when), newest first')
    .action(async (file: string, opts: HistoryOptions) => exit(await (await import('./cli/history.js')).historyCommand(file, opts, ctx)));

  add('schema')
    .description('print a JSON Schema: `result` (the inspection result record)')
    .argument('<what>', 'result')
    .action(async (what: string, opts: LogOptions) => {
      ctx.logger(opts);
      if (what !== 'result') throw new LinegateError('LG_ERR_CLI_USAGE', [`unknown schema "${what}"; known: result`]);
      const { resultJsonSchema } = await import('./result.js');
      ctx.io.stdout.write(`${JSON.stringify(resultJsonSchema(), null, 2)}\n`);
    });

  add('plugins')
    .description('list the built-in plugins: kind, caps (in/out), what they provide and require; --json adds each config as JSON Schema with its defaults')
    .option('--json', 'as JSON: id, kind, description, critical, accepts, produces, provides, requires, config (JSON Schema)')
    .action(async (opts: LogOptions & { json?: boolean }) => exit((await import('./cli/plugins.js')).pluginsCommand(opts, ctx)));

  const pki = program.command('pki').description("linegate's OPC UA certificate and the PLC certificates it trusts");
  withLogOptions(pki.command('show'))
    .description("print linegate's own certificate (subject, URI, validity, SHA-1 fingerprint): what the PLC side must trust")
    .option('--pki <dir>', 'PKI folder', 'var/pki')
    .action(async (opts: LogOptions & { pki: string }) => {
      ctx.logger(opts);
      const { showOwnCertificate } = await import('../plugins/opcua-plc/pki.js');
      ctx.io.stdout.write(`${JSON.stringify(await showOwnCertificate(path.resolve(opts.pki)), null, 2)}\n`);
    });
  withLogOptions(pki.command('trust'))
    .description("trust a PLC's certificate (PEM or DER), e.g. exported from TIA Portal or taken from the PKI's rejected/ folder; every copy of it in rejected/ is removed")
    .argument('<certificate>', 'certificate file')
    .option('--pki <dir>', 'PKI folder', 'var/pki')
    .action(async (file: string, opts: LogOptions & { pki: string }) => {
      const log = ctx.logger(opts);
      const { trustCertificate } = await import('../plugins/opcua-plc/pki.js');
      const trusted = await trustCertificate(path.resolve(opts.pki), path.resolve(file));
      // Said in the log too: a file vanishing from rejected/ should not surprise whoever looks there next.
      for (const removed of trusted.removedFromRejected) log.info({ removed }, `removed from rejected/: ${removed}`);
      ctx.io.stdout.write(`${JSON.stringify(trusted, null, 2)}\n`);
    });

  addPlcSimCommand(add, ctx, exit);
  addQueueCommands(add, ctx, exit);
  addReplayCommands(add, ctx, exit);
  addPlantCommand(add, ctx, exit);

  const models = program
    .command('models')
    .description("model packages: inspect an ONNX file and draft its model.json; check a package against its training framework's outputs; deploy one to a running station, roll back, run a shadow");
  withLogOptions(models.command('inspect'))
    .description(
      'print what an ONNX file says about itself (inputs, outputs, opsets, producer, metadata) and write a DRAFT model.json for it (Ultralytics detect/classify, anomalib, or a one-output classifier/segmenter); what a person must confirm goes to the log',
    )
    .argument('<model>', 'the .onnx file')
    .option('--out <file>', 'where to write the draft (default: model.json beside the .onnx)')
    .option('--force', 'overwrite the draft file if it exists')
    .option('--size <WxH>', 'input width x height, for graphs whose height and width are dynamic', sizeArg)
    .option('--json', 'print the inspection and the draft (with the review notes) as JSON')
    .action(async (file: string, opts: LogOptions & { out?: string; force?: boolean; size?: { width: number; height: number }; json?: boolean }) =>
      exit(await (await import('./cli/inspect.js')).inspectCommand(file, opts, ctx)),
    );
  withLogOptions(models.command('parity'))
    .description("run each reference image through a model package exactly as a station does (image decode, the package's preprocessing, its onnxruntime session) and compare every output with what the training framework gave: max |difference| per output; exit 3 when beyond tolerance")
    .argument('<package>', 'model package folder (model.json + model.onnx)')
    .requiredOption('--ref <file>', 'reference outputs: { images: [{ file, outputs: { <output>: [values] } }] } (files relative to it), or a training script\'s parity.json')
    .option('--tolerance <x>', 'largest allowed absolute difference (default: the reference\'s, else 1e-4)', nonNegative)
    .option('--json', 'print the report as one JSON line')
    .action(async (pkg: string, opts: LogOptions & { ref: string; tolerance?: number; json?: boolean }) => exit(await (await import('./cli/parity.js')).parityCommand(pkg, opts, ctx)));
  addModelDeployCommands(models, ctx, exit);

  return program;
}

/** `models deploy | rollback | shadow start | shadow stop | status`: clients of a running station's API (runtime/cli/models-deploy.ts). */
function addModelDeployCommands(models: Command, ctx: CommandContext, exit: (code: number) => void): void {
  type Opts = ModelsCliOptions;
  const run = async (action: ModelsAction, url: string, dir: string | undefined, opts: Opts): Promise<void> => exit(await (await import('./cli/models-deploy.js')).modelsCommand(action, url, dir, opts, ctx));
  const url = (c: Command): Command => c.argument('<station-url>', "the station's API, e.g. http://127.0.0.1:8080 (the token: LINEGATE_API_TOKEN)");
  const timeout = (c: Command, ms: number): Command => c.option('--timeout-ms <ms>', 'give up waiting for the station after this long (ms)', positiveInt, ms);
  const upload = (c: Command): Command =>
    c.argument('<package-dir>', 'the model package folder, flat: model.json, model.onnx, README.md, ...').option('--max-package-mib <n>', "refuse a larger package before sending it (the station's own limit: station.deploy.maxPackageMiB)", positive, 256);
  const done = 'prints the reply as one JSON line; exit 0 done, 1 refused by the station (its coded errors on stderr) or no answer, 2 a misuse';
  upload(timeout(url(withLogOptions(models.command('deploy'))), 120_000))
    .description(`upload a model package to a running station: it is checked (sha256, manifest, graph), loaded and warmed up while the current model serves, then switched in between two parts; ${done}`)
    .option('--keep-calibration', "apply the station's calibration even when it was made for another model (default: left out, and said in the report)")
    .action((u: string, d: string, o: Opts) => run('deploy', u, d, o));
  timeout(url(withLogOptions(models.command('rollback'))), 120_000)
    .description(`back to the model that was active before the current one; ${done}`)
    .action((u: string, o: Opts) => run('rollback', u, undefined, o));
  timeout(url(withLogOptions(models.command('status'))), 30_000)
    .description(`the active model, the activations before it (who and when), its thresholds and calibration, the shadow; ${done}`)
    .action((u: string, o: Opts) => run('status', u, undefined, o));
  const shadow = models.command('shadow').description('a candidate model on the same frames, after each verdict is out; never reaches the PLC');
  upload(timeout(url(withLogOptions(shadow.command('start'))), 120_000))
    .description(`run a package as the shadow model (replaces a running one); ${done}`)
    .action((u: string, d: string, o: Opts) => run('shadow start', u, d, o));
  timeout(url(withLogOptions(shadow.command('stop'))), 30_000)
    .description(`stop the shadow model; ${done}`)
    .action((u: string, o: Opts) => run('shadow stop', u, undefined, o));
}

/** The log flags as typed, for errors found before a command has parsed its own (an unknown command, a bad value). */
function flagsOf(argv: readonly string[]): LogOptions {
  const at = argv.lastIndexOf('--log-level');
  const level = at >= 0 ? argv[at + 1] : undefined;
  const pretty = argv.includes('--no-pretty') ? false : argv.includes('--pretty') ? true : undefined;
  return { ...(level !== undefined && logLevelOk(level) ? { logLevel: level } : {}), ...(pretty === undefined ? {} : { pretty }) };
}

const logLevelOk = (v: string): boolean => {
  try {
    logLevel(v);
    return true;
  } catch {
    return false;
  }
};

/**
 * Runs the CLI and resolves with the exit code; `argv` as in process.argv. It never ends the process
 * and writes only to `io`: stdout for machine-readable output, stderr for the log (every line pino
 * JSON or, in a terminal, pretty), what libraries print with console.* included. Every misuse is a
 * coded error (LG_ERR_CLI_USAGE) and exit 2.
 */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  let log: Logger | undefined;
  const ctx: CommandContext = {
    io,
    logger: (opts, defaultLevel = 'info') =>
      (log ??= createLogger({ level: opts.logLevel ?? io.env.LINEGATE_LOG_LEVEL ?? defaultLevel, destination: io.stderr, env: io.env, ...(opts.pretty === undefined ? {} : { pretty: opts.pretty }) })),
  };
  const current = (): Logger => log ?? ctx.logger(flagsOf(argv));
  const restoreConsole = routeConsole(current);
  let code: number = EXIT.ok;
  try {
    await buildCli(ctx, (c) => (code = c)).parseAsync(argv as string[]);
    return code;
  } catch (e) {
    if (e instanceof CommanderError && e.exitCode === 0) return EXIT.ok; // --help
    return report(e instanceof CommanderError ? usageError(e) : e, current(), argv.includes('--json'));
  } finally {
    restoreConsole();
  }
}
