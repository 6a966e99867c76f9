import { compileStationFile, describePlan } from '../compile/compile.js';
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
  ctx.io.stdout.write(opts.json === true ? `${JSON.stringify(describePlan(plan), null, 2)}\n` : printPlan(plan));
  return EXIT.ok;
}
