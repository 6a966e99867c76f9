import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import type { PluginContext, PluginModule, SinkInstance, SourceInstance, StageInstance } from '../../runtime/contract.js';
import { StationSettings } from '../../runtime/config/station-schema.js';
import type { Plan, PlannedStep } from '../../runtime/compile/compile.js';
import { startStep } from '../../runtime/execute/lifecycle.js';
import { BUILTIN_PLUGINS } from '../../runtime/registry/builtins.js';
import { contractProblems } from '../../runtime/registry/validate.js';
import { contextFor, sampleResult } from '../helpers/samples.js';
import { ROOT, silentLog } from '../helpers/station.js';
import { CASES, type ConformanceCase } from './cases.js';

/** Every plugin must pass this suite before it can ship (as every BullMQ backend passes one adapter suite). */

type AnyInstance = Partial<SourceInstance & StageInstance & SinkInstance>;

function stepOf(plugin: PluginModule, config: unknown): { plan: Plan; step: PlannedStep } {
  const step: PlannedStep = { name: 'step', path: 'stages[0]', kind: plugin.manifest.kind, plugin, config, critical: false };
  const plan: Plan = { file: `${ROOT}/stations/conformance.yaml`, root: ROOT, settings: StationSettings.parse({ id: 'conformance', initTimeoutMs: 5000, closeTimeoutMs: 5000 }), source: step, stages: [], sinks: [] };
  return { plan, step };
}

/** One unit of work: a frame from a source, a run of a stage, a write to a sink. */
async function work(plugin: PluginModule, instance: AnyInstance, ctx: PluginContext, c: ConformanceCase): Promise<unknown> {
  switch (plugin.manifest.kind) {
    case 'source': {
      const it = instance.frames!(ctx)[Symbol.asyncIterator]();
      if (!ctx.signal.aborted) setTimeout(() => c.stimulate?.(), 50);
      try {
        const first = await it.next();
        return first.done === true ? undefined : first.value;
      } finally {
        await it.return?.();
      }
    }
    case 'sink':
      return instance.write!(sampleResult(), ctx);
    default:
      return instance.run!(await c.input!(), ctx);
  }
}

/** A context whose declared dependencies are the case's own (the trigger source's PLC link). */
function ctxOf(c: ConformanceCase, signal: AbortSignal): PluginContext {
  const deps = c.dependencies?.() ?? new Map<string, unknown>();
  return { ...contextFor(signal), dependency: (field) => deps.get(field) };
}

const parse = (plugin: PluginModule, config: unknown): z.ZodSafeParseResult<unknown> => (plugin.manifest.config as z.ZodType).safeParse(config);

describe('plugin conformance', () => {
  it('has a conformance case for every built-in plugin', () => {
    expect(Object.keys(CASES).sort()).toEqual(BUILTIN_PLUGINS.map((p) => p.manifest.id).sort());
  });

  describe.each(BUILTIN_PLUGINS.map((p) => [p.manifest.id, p as PluginModule] as const))('%s', (id, plugin) => {
    const c = CASES[id]!;
    beforeAll(async () => c.before?.());
    afterAll(async () => c.after?.());

    it('has a manifest that honours the contract', () => {
      expect(contractProblems(plugin)).toEqual([]);
    });

    it('accepts its documented config and refuses a bad one', () => {
      expect(parse(plugin, c.config()).success).toBe(true);
      expect(parse(plugin, c.badConfig).success).toBe(false);
      expect(parse(plugin, { ...c.config(), notAField: 1 }).success).toBe(false);
    });

    it('runs init -> work -> close -> close', async () => {
      const { plan, step } = stepOf(plugin, parse(plugin, c.config()).data);
      const started = await startStep<AnyInstance>(plan, step, silentLog, c.dependencies?.());
      const out = await work(plugin, started.instance, ctxOf(c, new AbortController().signal), c);
      if (plugin.manifest.kind === 'source') expect(out).toMatchObject({ ref: expect.any(String), image: { kind: expect.any(String) } });
      if (plugin.manifest.kind !== 'source' && plugin.manifest.kind !== 'sink') expect(out).toBeTypeOf('object');
      await started.close();
      await started.close();
      // the plugin's own close must also be safe twice, without the runtime's guard
      const raw = await plugin.init(parse(plugin, c.config()).data as never, ctxOf(c, new AbortController().signal));
      await raw.close?.();
      await raw.close?.();
    });

    it('honours an aborted signal', async () => {
      const raw = (await plugin.init(parse(plugin, c.config()).data as never, ctxOf(c, new AbortController().signal))) as AnyInstance;
      try {
        const ctx = ctxOf(c, AbortSignal.abort());
        if (plugin.manifest.kind === 'source') {
          expect(await work(plugin, raw, ctx, c)).toBeUndefined();
        } else {
          await expect(work(plugin, raw, ctx, c)).rejects.toThrow();
        }
      } finally {
        await raw.close?.();
      }
    });

    it('runs nothing after close', async () => {
      const { plan, step } = stepOf(plugin, parse(plugin, c.config()).data);
      const started = await startStep<AnyInstance>(plan, step, silentLog, c.dependencies?.());
      await started.close();
      const ctx = ctxOf(c, new AbortController().signal);
      if (plugin.manifest.kind === 'source') expect(await work(plugin, started.instance, ctx, c)).toBeUndefined();
      else await expect(work(plugin, started.instance, ctx, c)).rejects.toMatchObject({ code: 'LG_ERR_PLUGIN_CLOSED' });
    });
  });
});
