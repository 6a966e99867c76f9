import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { compileStation } from '../../runtime/compile/compile.js';
import { verifyPlan } from '../../runtime/compile/verify.js';
import { definePlugin, type PluginModule } from '../../runtime/contract.js';
import { LinegateError, LinegateErrors } from '../../runtime/errors.js';
import { contractProblems } from '../../runtime/registry/validate.js';
import { testRegistry } from '../helpers/probe-plugins.js';
import { testRoot } from '../helpers/roots.js';
import { silentLog } from '../helpers/station.js';

/** A preprocess step whose verify does what `check` is given; it would never start (init throws). */
function checked(id: `${string}/${string}@${number}`, check: (config: { thing: string }) => Promise<readonly Error[]>): PluginModule {
  return definePlugin({
    manifest: {
      id,
      kind: 'preprocess',
      description: 'checks what its config names',
      config: z.object({ thing: z.string().default('x') }).strict(),
      accepts: [{ type: 'image/raw' }],
      produces: [{ type: 'image/raw' }],
      verify: (config) => check(config),
    },
    async init() {
      throw new Error('verify must not start anything');
    },
  }) as PluginModule;
}

function planWith(...plugins: PluginModule[]): ReturnType<typeof compileStation> {
  const registry = testRegistry();
  for (const p of plugins) registry.register(p, 'test');
  return compileStation(
    {
      station: { id: 'verify-test', initTimeoutMs: 300 },
      source: { name: 'cam', use: 'test/source@1', config: { probe: 'verify-test' } },
      stages: [
        ...plugins.map((p, i) => ({ name: `check${i}`, use: p.manifest.id })),
        { name: 'work', use: 'test/stage@1', config: { probe: 'verify-test' } },
        { name: 'verdict', use: 'test/decide@1', config: { probe: 'verify-test' } },
      ],
    },
    path.join(testRoot(), 'stations', 'verify.yaml'),
    registry,
  );
}

const errorsOf = async (p: Promise<void>): Promise<readonly LinegateError[]> =>
  p.then(
    () => [],
    (e: unknown) => (e instanceof LinegateErrors ? e.errors : Promise.reject(e)),
  );

describe('verifyPlan: what each step names, checked before anything starts', () => {
  it('lists every problem of every step: coded errors as they are, anything else as LG_ERR_STATION_RESOURCE naming the step and its config', async () => {
    const plan = planWith(
      checked('acme/a@1', async () => [new LinegateError('LG_ERR_MODEL_HASH', ['m.onnx', 'aa', 'bb'], { step: 'check0' }), new LinegateError('LG_ERR_MODEL_INPUT', ['m', 'shape'], { step: 'check0' })]),
      checked('acme/b@1', async (c) => [new Error(`no such ${c.thing}`)]),
      checked('acme/c@1', async () => []),
    );
    const errors = await errorsOf(verifyPlan(plan, silentLog));
    expect(errors.map((e) => [e.code, e.step, e.path])).toEqual([
      ['LG_ERR_MODEL_HASH', 'check0', undefined],
      ['LG_ERR_MODEL_INPUT', 'check0', undefined],
      ['LG_ERR_STATION_RESOURCE', 'check1', 'stages[1].config'],
    ]);
    expect(errors[2]!.message).toBe('step "check1" (acme/b@1) names something it cannot use: no such x');
  });

  it('takes a verify that throws, or that does not end within the init time-out, as a problem of its step', async () => {
    const plan = planWith(
      checked('acme/throws@1', async () => {
        throw new Error('exploded');
      }),
      checked('acme/hangs@1', () => new Promise(() => undefined)),
    );
    const errors = await errorsOf(verifyPlan(plan, silentLog));
    expect(errors.map((e) => [e.code, e.step, e.message])).toEqual([
      ['LG_ERR_STATION_RESOURCE', 'check0', 'step "check0" (acme/throws@1) names something it cannot use: exploded'],
      ['LG_ERR_STATION_RESOURCE', 'check1', 'step "check1" (acme/hangs@1) names something it cannot use: its check did not end within 300 ms'],
    ]);
  });

  it('resolves when every step is fine, and refuses a plugin whose verify is not a function', async () => {
    await expect(verifyPlan(planWith(checked('acme/fine@1', async () => [])), silentLog)).resolves.toBeUndefined();
    const bad = checked('acme/bad@1', async () => []);
    expect(contractProblems({ ...bad, manifest: { ...bad.manifest, verify: 'yes' } })).toContain('manifest.verify must be a function returning a promise of the problems found');
  });
});
