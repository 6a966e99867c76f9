import type { Plan, PlannedStep } from '../compile/compile.js';
import { formatCaps } from '../compile/caps.js';

/** The plan as a few readable lines for `linegate check`. */
export function printPlan(plan: Plan): string {
  const s = plan.settings;
  const line = (step: PlannedStep, arrow: string): string => {
    const m = step.plugin.manifest;
    const caps = [m.accepts ? `in: ${formatCaps(m.accepts)}` : '', m.produces ? `out: ${formatCaps(m.produces)}` : '', step.kind === 'sink' ? (step.critical ? 'critical' : 'background') : '']
      .filter(Boolean)
      .join('; ');
    return `  ${arrow} ${step.name.padEnd(14)} ${m.id.padEnd(28)} ${step.kind.padEnd(11)} ${caps}\n`;
  };
  return [
    `station ${s.id}${s.line === undefined ? '' : ` (line ${s.line})`}: OK\n`,
    `  file ${plan.file}\n  root ${plan.root}\n`,
    `  cycle budget ${s.cycleBudgetMs} ms, ${s.maxInFlight} in flight, queue ${s.queueSize}, drop policy ${s.dropPolicy}\n`,
    line(plan.source, 'source'),
    ...plan.stages.map((st) => line(st, ' stage')),
    ...plan.sinks.map((st) => line(st, '  sink')),
  ].join('');
}
