import type { Command } from 'commander';
import { collect, integer, positiveInt } from './args.js';
import type { CommandContext } from './context.js';
import type { ReplayCommon } from './replay.js';

/** `replay`, `compare`, `calibrate`: the station's pipeline on a labelled folder; logs default to warn (batch jobs). */
export function addReplayCommands(add: (name: string, defaultLevel?: string) => Command, ctx: CommandContext, exit: (code: number) => void): void {
  const impl = (): Promise<typeof import('./replay.js')> => import('./replay.js');

  add('replay', 'warn')
    .description("replay a labelled folder (one sub-folder per class) through the station's own pipeline, its PLC and queue sinks off; metrics as JSON, with the model, calibration and thresholds it judged with")
    .argument('<station>', 'station file')
    .argument('<dir>', 'labelled folder: <dir>/<class>/<image>; good, ok, pass (and --good names) are good parts')
    .option('--good <name>', 'a class folder that holds good parts (repeatable)', collect, [])
    .option('--json <file>', 'write the full report (every image, the threshold sweep)')
    .option('--html <file>', 'write a self-contained HTML report')
    .action(async (station: string, dir: string, o: ReplayCommon & { json?: string; html?: string }) => exit(await (await impl()).replayCommand(station, dir, o, ctx)));

  add('compare', 'warn')
    .description("run two models through the same station on the same labelled images, each at its own thresholds (the station's calibration only for the model it was made for): metric differences, the images whose verdicts differ, and an optional promotion gate (exit 3 when it fails)")
    .argument('<station>', 'station file (its one core/onnx-model@1 step gets each model in turn)')
    .argument('<dir>', 'labelled folder')
    .requiredOption('--model <package>', 'model package folder: give it twice, the current model (A) first, the candidate (B) second', collect, [])
    .option('--good <name>', 'a class folder that holds good parts (repeatable)', collect, [])
    .option('--gate <conditions>', 'e.g. "escapeRate<=0,recall>=0.99,delta.accuracy>=0": on B unless prefixed a. or delta. (B - A)')
    .option('--json <file>', 'write the comparison')
    .action(async (station: string, dir: string, o: ReplayCommon & { model: string[]; gate?: string; json?: string }) => exit(await (await impl()).compareCommand(station, dir, o, ctx)));

  add('calibrate', 'warn')
    .description("choose each label's threshold on a labelled folder to meet a target, with exact (Clopper-Pearson) and bootstrap intervals, and write the station's calibration file, bound to the model's sha256")
    .argument('<station>', 'station file')
    .argument('<dir>', 'labelled folder')
    .requiredOption('--target <target>', 'escape=0 (no escapes, lowest overkill), escape<=R, or overkill<=R (fewest escapes within it)')
    .option('--good <name>', 'a class folder that holds good parts (repeatable)', collect, [])
    .option('--out <file>', "write here instead of the station's calibration file")
    .option('--bootstrap <n>', 'resamples for the confidence intervals', positiveInt, 1000)
    .option('--seed <n>', 'seed of the resampling (same seed, same intervals)', integer, 1)
    .action(async (station: string, dir: string, o: ReplayCommon & { target: string; out?: string; bootstrap: number; seed: number }) =>
      exit(await (await impl()).calibrateCommand(station, dir, o, ctx)),
    );
}
