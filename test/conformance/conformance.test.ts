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
import { CASES, THIRD_PARTY_PLUGINS, type ConformanceCase } from './cases.js';

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
      if (!ctx.signal.aborted) setTimeout(() => (c.stimulate?.(), c.stimulateInstance?.(instance)), 50);
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

/**
 * Plugins known not to refuse work after their own close, each with why it is not fixed here. For
 * them the test asserts the gap as it is: once one is fixed, the test fails until its entry goes.
 */
const AFTER_CLOSE_GAPS: Readonly<Record<string, string>> = {
  'core/jsonl-sink@1': "its write() still appends after close(); plugins/sink-jsonl is being reworked for durable delivery and gets its closed state there",
};

const parse = (plugin: PluginModule, config: unknown): z.ZodSafeParseResult<unknown> => (plugin.manifest.config as z.ZodType).safeParse(config);

describe('plugin conformance', () => {
  const plugins: readonly PluginModule[] = [...(BUILTIN_PLUGINS as readonly PluginModule[]), ...THIRD_PARTY_PLUGINS];

  it('has a conformance case for every built-in plugin and every third-party fixture plugin', () => {
    expect(Object.keys(CASES).sort()).toEqual(plugins.map((p) => p.manifest.id).sort());
  });

  describe.each(plugins.map((p) => [p.manifest.id, p] as const))('%s', (id, plugin) => {
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

    // The plugin itself, without the runtime's wrapper (startStep), which makes close() idempotent and
    // refuses work after it for any plugin: these properties must hold for the plugin's own instance.
    it('runs init -> work -> close -> close on its own instance, and nothing after its close', async () => {
      const raw = (await plugin.init(parse(plugin, c.config()).data as never, ctxOf(c, new AbortController().signal))) as AnyInstance;
      const out = await work(plugin, raw, ctxOf(c, new AbortController().signal), c);
      if (plugin.manifest.kind === 'source') expect(out).toMatchObject({ ref: expect.any(String), image: { kind: expect.any(String) } });
      if (plugin.manifest.kind !== 'source' && plugin.manifest.kind !== 'sink') expect(out).toBeTypeOf('object');
      await raw.close?.();
      await raw.close?.();
      const after = work(plugin, raw, ctxOf(c, new AbortController().signal), c);
      if (id in AFTER_CLOSE_GAPS) await expect(after, `${id} now refuses work after close: remove it from AFTER_CLOSE_GAPS`).resolves.not.toThrow();
      else if (plugin.manifest.kind === 'source') expect(await after).toBeUndefined();
      else await expect(after).rejects.toThrow(); // its own refusal: LG_ERR_PLUGIN_CLOSED, or what a closed session or spool says
    });

    it('honours an aborted signal on its own instance', async () => {
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

    it('runs init -> work -> close -> close through the runtime, and nothing after close', async () => {
      const { plan, step } = stepOf(plugin, parse(plugin, c.config()).data);
      const started = await startStep<AnyInstance>(plan, step, silentLog, c.dependencies?.());
      await work(plugin, started.instance, ctxOf(c, new AbortController().signal), c);
      await started.close();
      await started.close();
      const ctx = ctxOf(c, new AbortController().signal);
      if (plugin.manifest.kind === 'source') expect(await work(plugin, started.instance, ctx, c)).toBeUndefined();
      else await expect(work(plugin, started.instance, ctx, c)).rejects.toMatchObject({ code: 'LG_ERR_PLUGIN_CLOSED' });
    });
  });
});
