import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { Logger } from './contract.js';
import { createLogger } from './observability/logger.js';
import { calibrate, parseTarget, scoredImages, writeCalibration } from './replay/calibrate.js';
import { checkGate, compareReports, parseGate } from './replay/compare.js';
import { replay, type Replay } from './replay/run.js';

/*
 * The data scientist's commands: replay a labelled folder through a station,
 * compare two models on it (with a promotion gate), calibrate thresholds.
 * Each prints JSON on stdout; logs go to stderr.
 */

/** Exit code of a promotion gate that failed: distinct from bad input (2) and a failed run (1). */
export const EXIT_GATE = 3;

interface Common {
  good: string[];
  logLevel?: string;
}

const collect = (v: string, acc: string[]): string[] => [...acc, v];

function logger(o: Common): Logger {
  // Replays are batch jobs: warnings and errors by default, not a line per part.
  return createLogger({ level: o.logLevel ?? process.env.LINEGATE_LOG_LEVEL ?? 'warn', pretty: false });
}

async function writeOut(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await writeFile(file, text);
}

async function writeHtml(file: string, r: Replay): Promise<void> {
  const { renderReplayHtml } = await import('./replay/html.js');
  await writeOut(file, await renderReplayHtml(r.report, r.media));
}

/** The report without its per-image rows and sweep, for the stdout summary. */
function summary(r: Replay): Record<string, unknown> {
  const { results, sweep, ...rest } = r.report;
  void results;
  void sweep;
  return rest;
}

export function addReplayCommands(program: Command): void {
  program
    .command('replay')
    .description("replay a labelled folder (one sub-folder per class) through the station's own pipeline, its PLC and queue sinks off; metrics as JSON")
    .argument('<station>', 'station file')
    .argument('<dir>', 'labelled folder: <dir>/<class>/<image>; good, ok, pass (and --good names) are good parts')
    .option('--good <name>', 'a class folder that holds good parts (repeatable)', collect, [])
    .option('--json <file>', 'write the full report (every image, the threshold sweep)')
    .option('--html <file>', 'write a self-contained HTML report')
    .option('--log-level <level>', 'default warn')
    .action(async (station: string, dir: string, o: Common & { json?: string; html?: string }) => {
      const r = await replay(station, dir, { good: o.good, log: logger(o) });
      if (o.json !== undefined) await writeOut(o.json, `${JSON.stringify(r.report, null, 2)}\n`);
      if (o.html !== undefined) await writeHtml(o.html, r);
      process.stdout.write(`${JSON.stringify(summary(r))}\n`);
    });

  program
    .command('compare')
    .description('run two models through the same station on the same labelled images: metric differences, the images whose verdicts differ, and an optional promotion gate (exit 3 when it fails)')
    .argument('<station>', 'station file (its one core/onnx-model@1 step gets each model in turn)')
    .argument('<dir>', 'labelled folder')
    .requiredOption('--model <package>', 'model package folder: give it twice, the current model (A) first, the candidate (B) second', collect, [])
    .option('--good <name>', 'a class folder that holds good parts (repeatable)', collect, [])
    .option('--gate <conditions>', 'e.g. "escapeRate<=0,recall>=0.99,delta.accuracy>=0": on B unless prefixed a. or delta. (B - A)')
    .option('--json <file>', 'write the comparison')
    .option('--log-level <level>', 'default warn')
    .action(async (station: string, dir: string, o: Common & { model: string[]; gate?: string; json?: string }) => {
      if (o.model.length !== 2) {
        const { LinegateError } = await import('./errors.js');
        throw new LinegateError('LG_ERR_CLI_USAGE', [`compare needs --model twice (A, then B); got ${o.model.length}`]);
      }
      const gate = o.gate === undefined ? undefined : parseGate(o.gate); // a bad gate fails before minutes of replay
      const log = logger(o);
      const a = await replay(station, dir, { good: o.good, model: o.model[0]!, log });
      const b = await replay(station, dir, { good: o.good, model: o.model[1]!, log });
      const comparison = compareReports(a.report, b.report);
      const verdict = gate === undefined ? undefined : checkGate(gate, comparison);
      const out = { ...comparison, ...(verdict === undefined ? {} : { gate: verdict }) };
      if (o.json !== undefined) await writeOut(o.json, `${JSON.stringify(out, null, 2)}\n`);
      process.stdout.write(`${JSON.stringify(out)}\n`);
      if (verdict !== undefined && !verdict.passed) {
        process.stderr.write(`gate failed: ${verdict.checks.filter((c) => !c.ok).map((c) => `${c.condition} (is ${c.actual ?? 'n/a'})`).join(', ')}\n`);
        process.exitCode = EXIT_GATE;
      }
    });

  program
    .command('calibrate')
    .description("choose each label's threshold on a labelled folder to meet a target, with bootstrap confidence intervals, and write the station's calibration file")
    .argument('<station>', 'station file')
    .argument('<dir>', 'labelled folder')
    .requiredOption('--target <target>', 'escape=0 (no escapes, lowest overkill), escape<=R, or overkill<=R (fewest escapes within it)')
    .option('--good <name>', 'a class folder that holds good parts (repeatable)', collect, [])
    .option('--out <file>', "write here instead of the station's calibration file")
    .option('--bootstrap <n>', 'resamples for the confidence intervals', (v) => Number.parseInt(v, 10), 1000)
    .option('--seed <n>', 'seed of the resampling (same seed, same intervals)', (v) => Number.parseInt(v, 10), 1)
    .option('--log-level <level>', 'default warn')
    .action(async (station: string, dir: string, o: Common & { target: string; out?: string; bootstrap: number; seed: number }) => {
      const target = parseTarget(o.target);
      const r = await replay(station, dir, { good: o.good, log: logger(o) });
      const labels = [...new Set(r.results.flatMap((x) => Object.keys(x.thresholds ?? {})))].sort();
      const truthOf = new Map(r.report.results.map((x) => [x.file, x.truth]));
      const result = calibrate(scoredImages(r.results, truthOf, labels), labels, target, { bootstrap: o.bootstrap, seed: o.seed });
      const file = path.resolve(o.out ?? r.calibrationFile);
      await writeCalibration(file, r.stationId, result, {
        data: r.report.dir,
        images: r.report.images,
        excludedErrors: r.report.errors,
        model: r.report.model,
        before: Object.fromEntries(labels.map((l) => [l, r.results.find((x) => x.thresholds?.[l] !== undefined)?.thresholds?.[l]])),
      });
      process.stdout.write(`${JSON.stringify({ file, ...result })}\n`);
    });
}
