import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../contract.js';
import { LinegateError } from '../errors.js';
import { calibrate, parseTarget, scoredImages, writeCalibration } from '../replay/calibrate.js';
import { checkGate, compareReports, parseGate } from '../replay/compare.js';
import { goodBy } from '../replay/metrics.js';
import { replay, type Replay } from '../replay/run.js';
import type { CommandContext, LogOptions } from './context.js';
import { EXIT } from './io.js';

/*
 * The data scientist's commands: replay a labelled folder through a station,
 * compare two models on it (with a promotion gate), calibrate thresholds.
 * Each prints JSON on stdout; logs go to stderr.
 */

export interface ReplayCommon extends LogOptions {
  readonly good: string[];
}

/** Replays are batch jobs: warnings and errors by default, not a line per part. */
const logger = (o: LogOptions, ctx: CommandContext): Logger => ctx.logger(o, 'warn');

async function writeOut(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await writeFile(file, text);
}

async function writeHtml(file: string, r: Replay): Promise<void> {
  const { renderReplayHtml } = await import('../replay/html.js');
  await writeOut(file, await renderReplayHtml(r.report, r.media));
}

/** The report without its per-image rows and sweep, for the stdout summary. */
function summary(r: Replay): Record<string, unknown> {
  const { results, sweep, ...rest } = r.report;
  void results;
  void sweep;
  return rest;
}

export async function replayCommand(station: string, dir: string, o: ReplayCommon & { readonly json?: string; readonly html?: string }, ctx: CommandContext): Promise<number> {
  const r = await replay(station, dir, { good: o.good, log: logger(o, ctx) });
  if (o.json !== undefined) await writeOut(o.json, `${JSON.stringify(r.report, null, 2)}\n`);
  if (o.html !== undefined) await writeHtml(o.html, r);
  ctx.io.stdout.write(`${JSON.stringify(summary(r))}\n`);
  return EXIT.ok;
}

export async function compareCommand(station: string, dir: string, o: ReplayCommon & { readonly model: string[]; readonly gate?: string; readonly json?: string }, ctx: CommandContext): Promise<number> {
  const log = logger(o, ctx);
  if (o.model.length !== 2) throw new LinegateError('LG_ERR_CLI_USAGE', [`compare needs --model twice (A, then B); got ${o.model.length}`]);
  const gate = o.gate === undefined ? undefined : parseGate(o.gate); // a bad gate fails before minutes of replay
  // Each model at its own thresholds: a calibration made for one model says nothing about the other.
  const a = await replay(station, dir, { good: o.good, model: o.model[0]!, calibration: 'own-model', log });
  const b = await replay(station, dir, { good: o.good, model: o.model[1]!, calibration: 'own-model', log });
  const comparison = compareReports(a.report, b.report);
  for (const [name, side] of [['A', comparison.a], ['B', comparison.b]] as const) {
    const line = `${name}: ${side.judgedAt.text}`;
    // Warn when the two sides were not judged alike: the difference is then partly the thresholds'.
    if (comparison.a.judgedAt.kind !== comparison.b.judgedAt.kind) log.warn({ side: name, judgedAt: side.judgedAt }, line);
    else log.info({ side: name, judgedAt: side.judgedAt }, line);
  }
  const verdict = gate === undefined ? undefined : checkGate(gate, comparison);
  const out = { ...comparison, ...(verdict === undefined ? {} : { gate: verdict }) };
  if (o.json !== undefined) await writeOut(o.json, `${JSON.stringify(out, null, 2)}\n`);
  ctx.io.stdout.write(`${JSON.stringify(out)}\n`);
  if (verdict === undefined || verdict.passed) return EXIT.ok;
  const failed = verdict.checks.filter((c) => !c.ok);
  log.error({ gate: failed }, `gate failed: ${failed.map((c) => `${c.condition} (is ${c.actual ?? 'n/a'})`).join(', ')}`);
  return EXIT.gate;
}

export async function calibrateCommand(
  station: string,
  dir: string,
  o: ReplayCommon & { readonly target: string; readonly out?: string; readonly bootstrap: number; readonly seed: number },
  ctx: CommandContext,
): Promise<number> {
  const target = parseTarget(o.target);
  // A calibration made for another model is not refused here: calibrating the new model is how it is replaced.
  const r = await replay(station, dir, { good: o.good, calibration: 'own-model', log: logger(o, ctx) });
  const labels = [...new Set(r.results.flatMap((x) => Object.keys(x.thresholds ?? {})))].sort();
  const truthOf = new Map(r.report.results.map((x) => [x.file, x.truth]));
  const result = calibrate(scoredImages(r.results, truthOf, labels, goodBy(r.report.good)), labels, target, { bootstrap: o.bootstrap, seed: o.seed });
  const file = path.resolve(o.out ?? r.calibrationFile);
  const m = r.report.model;
  await writeCalibration(file, r.stationId, result, {
    data: r.report.dir,
    images: r.report.images,
    excludedErrors: r.report.errors,
    // The identity the station is checked against at compile time: these thresholds mean nothing for another model.
    model: m === null ? null : { name: m.name, version: m.version, sha256: m.sha256 },
    before: r.report.thresholds,
  });
  ctx.io.stdout.write(`${JSON.stringify({ file, ...result })}\n`);
  return EXIT.ok;
}
