import { compileStationFile, describePlan } from '../compile/compile.js';
import type { CalibrationUse } from '../compile/models.js';
import { verifyPlan } from '../compile/verify.js';
import { builtinRegistry } from '../registry/builtins.js';
import type { CommandContext, LogOptions } from './context.js';
import { printPlan } from './format.js';
import { EXIT } from './io.js';

/**
 * `check`: compile the station and verify what each step's config names (model packages: files,
 * sha256, graph against model.json) as `run` would before it starts, without starting anything: no
 * PLC connection, no Redis. Every problem is listed; the plan is printed only when there is none.
 */
export async function checkCommand(file: string, opts: LogOptions & { readonly json?: boolean }, ctx: CommandContext): Promise<number> {
  const log = ctx.logger(opts);
  const plan = await compileStationFile(file, builtinRegistry());
  await verifyPlan(plan, log);
  const cal = plan.calibrationUse;
  if (cal?.status === 'mismatch') log.warn({ calibration: cal.file, madeFor: cal.madeFor }, 'the calibration was made for another model; the station applies it because calibration.allowModelMismatch is set');
  ctx.io.stdout.write(opts.json === true ? `${JSON.stringify(describePlan(plan), null, 2)}\n` : printPlan(plan) + calibrationLine(cal));
  return EXIT.ok;
}

const STATUS: Record<CalibrationUse['status'], string> = {
  bound: 'made for the model the station runs',
  unbound: 'names no model (calibrate again to bind it to one)',
  unchecked: 'no step says which model it runs',
  mismatch: 'MADE FOR ANOTHER MODEL, applied because calibration.allowModelMismatch is set',
  skipped: 'made for another model, left out',
};

function calibrationLine(cal: CalibrationUse | undefined): string {
  if (cal === undefined) return '  calibration none\n';
  const model = cal.madeFor === null ? '' : ` for ${cal.madeFor.name}@${cal.madeFor.version} (sha256 ${cal.madeFor.sha256.slice(0, 12)})`;
  return `  calibration ${cal.file}${model}: ${STATUS[cal.status]}\n`;
}
