/**
 * Plugins for testing the runtime itself: they stand in the plugin slots so a
 * test can hold a stage, gate a sink or count lifecycle calls. Probes are
 * looked up by name from config, so station data stays plain data.
 */
import { z } from 'zod';
import { definePlugin, type Decision, type FrameInput, type Health, type PluginContext } from '../../runtime/contract.js';
import type { InspectionResult } from '../../runtime/result.js';
import { sleep } from '../../runtime/execute/bounded.js';
import { Registry } from '../../runtime/registry/registry.js';
import { BUILTIN_PLUGINS } from '../../runtime/registry/builtins.js';

export interface Probe {
  readonly events: string[];
  readonly results: InspectionResult[];
  pulled: number;
  /** When set, the sink awaits it before each write. */
  gate?: Promise<void>;
  /** Stage sequence numbers in flight right now, and the most at once. */
  inFlight: number;
  maxInFlight: number;
  /** Sink calls in order: `started`, `stopping`, `write:<sequence>` (when the write starts), `health`, `close`. */
  readonly calls: string[];
  /** Sink writes in progress right now, and the most at once. */
  writing: number;
  maxWriting: number;
  /** Result ids a sink was handed together with an image. */
  readonly withImage: Set<string>;
  /** Sequence numbers whose frame the source was asked to settle. */
  readonly settled: number[];
}

const probes = new Map<string, Probe>();

export function probe(name: string): Probe {
  let p = probes.get(name);
  if (p === undefined) {
    p = { events: [], results: [], pulled: 0, inFlight: 0, maxInFlight: 0, calls: [], writing: 0, maxWriting: 0, withImage: new Set(), settled: [] };
    probes.set(name, p);
  }
  return p;
}

const ProbeName = z.string().default('default');

/** 2x2 grey pixels: enough to be a frame, nothing to decode. `pad` lengthens its ref (and so its result record). */
const tinyFrame = (i: number, pad = 0): FrameInput => ({
  ref: `mem://frame/${i}${pad > 0 ? `/${'x'.repeat(pad)}` : ''}`,
  image: { kind: 'raw', data: new Uint8Array(4).fill(i % 256), width: 2, height: 2, channels: 1, colorOrder: 'GRAY' },
});

export const testSource = definePlugin({
  manifest: {
    id: 'test/source@1',
    kind: 'source',
    description: 'yields `count` tiny frames (endless when 0), every `intervalMs`',
    config: z
      .object({
        probe: ProbeName,
        count: z.number().int().min(0).default(10),
        intervalMs: z.number().min(0).default(0),
        quietAfter: z.number().int().min(0).optional().describe('after this many frames, wait for the stop without ending'),
        settle: z.boolean().default(false).describe('frames carry a settle() that records their sequence'),
        refPad: z.number().int().min(0).default(0).describe('characters added to each frame ref: large result records, for back-pressure tests'),
      })
      .strict(),
    produces: [{ type: 'image/raw' }],
  },
  async init(config, ctx) {
    const p = probe(config.probe);
    p.events.push(`init:${ctx.step}`);
    return {
      async *frames(run: PluginContext) {
        for (let i = 0; config.count === 0 || i < config.count; i++) {
          if (i === config.quietAfter) await new Promise((resolve) => run.signal.addEventListener('abort', resolve, { once: true }));
          if (config.intervalMs > 0) await sleep(config.intervalMs, run.signal);
          if (run.signal.aborted) return;
          p.pulled++;
          const frame = tinyFrame(i, config.refPad);
          yield config.settle ? { ...frame, settle: async () => void p.settled.push(i) } : frame;
        }
      },
      async close() {
        p.events.push(`close:${ctx.step}`);
      },
    };
  },
});

export const testStage = definePlugin({
  manifest: {
    id: 'test/stage@1',
    kind: 'postprocess',
    description: 'takes `delayMs` per part (ignoring the signal when asked), throws on the listed sequence numbers',
    config: z
      .object({
        probe: ProbeName,
        delayMs: z.number().min(0).default(0),
        delayOn: z.array(z.number().int()).optional().describe('only these sequence numbers take delayMs'),
        ignoreSignal: z.boolean().default(false),
        throwOn: z.array(z.number().int()).default([]),
        skipOutput: z.boolean().default(false),
      })
      .strict(),
    accepts: [{ type: 'image/raw' }, { type: 'image/encoded' }, { type: 'findings' }],
    produces: [{ type: 'findings' }],
  },
  async init(config, ctx) {
    const p = probe(config.probe);
    p.events.push(`init:${ctx.step}`);
    return {
      async run(part, run) {
        run.signal.throwIfAborted();
        p.inFlight++;
        p.maxInFlight = Math.max(p.maxInFlight, p.inFlight);
        try {
          const slow = config.delayOn === undefined || config.delayOn.includes(part.frame.sequence);
          if (config.delayMs > 0 && slow) await sleep(config.delayMs, config.ignoreSignal ? undefined : run.signal);
          run.signal.throwIfAborted();
          if (config.throwOn.includes(part.frame.sequence)) throw new Error(`probe failure on part ${part.frame.sequence}`);
          if (config.skipOutput) return {};
          return { findings: { defects: part.frame.sequence % 2 === 1 ? [{ label: 'odd', score: 0.9 }] : [], scores: { defect: part.frame.sequence % 2 } } };
        } finally {
          p.inFlight--;
        }
      },
      async close() {
        p.events.push(`close:${ctx.step}`);
      },
    };
  },
});

export const testDecide = definePlugin({
  manifest: {
    id: 'test/decide@1',
    kind: 'decision',
    description: 'fails parts with any defect',
    config: z.object({ probe: ProbeName }).strict(),
    accepts: [{ type: 'findings' }],
    produces: [{ type: 'decision' }],
  },
  async init(config, ctx) {
    const p = probe(config.probe);
    p.events.push(`init:${ctx.step}`);
    return {
      async run(part, run) {
        run.signal.throwIfAborted();
        const defects = part.findings?.defects ?? [];
        const decision: Decision = {
          verdict: defects.length > 0 ? 'fail' : 'pass',
          rejectCode: defects.length > 0 ? 7 : 0,
          reasons: defects.length > 0 ? [{ code: 'odd', message: 'odd part', rejectCode: 7 }] : [],
          defects,
        };
        return { decision };
      },
      async close() {
        p.events.push(`close:${ctx.step}`);
      },
    };
  },
});

export const testSink = definePlugin({
  manifest: {
    id: 'test/sink@1',
    kind: 'sink',
    description: 'records every result it is given; waits for the probe gate first; fails when asked; reports health when asked',
    config: z
      .object({
        probe: ProbeName,
        delayMs: z.number().min(0).default(0),
        fail: z.boolean().default(false),
        health: z.enum(['none', 'ok', 'throws']).default('none'),
        initDelayMs: z.number().min(0).default(0).describe('init takes this long, whatever the signal says (a PLC that is slow to answer)'),
      })
      .strict(),
  },
  async init(config, ctx) {
    const p = probe(config.probe);
    if (config.initDelayMs > 0) await sleep(config.initDelayMs);
    p.events.push(`init:${ctx.step}`);
    return {
      async started() {
        p.calls.push('started');
      },
      async stopping() {
        p.calls.push('stopping');
      },
      async write(result, run, image) {
        run.signal.throwIfAborted();
        p.calls.push(`write:${result.sequence}`);
        p.writing++;
        p.maxWriting = Math.max(p.maxWriting, p.writing);
        try {
          if (p.gate !== undefined) await p.gate;
          if (config.delayMs > 0) await sleep(config.delayMs);
          if (config.fail) throw new Error('probe sink refuses');
          if (image !== undefined) p.withImage.add(result.resultId);
          p.results.push(result);
        } finally {
          p.writing--;
        }
      },
      ...(config.health === 'none'
        ? {}
        : {
            health: (): Health => {
              p.calls.push('health');
              if (config.health === 'throws') throw new Error('probe health bug');
              return { status: 'ok', detail: 'probe' };
            },
          }),
      async close() {
        p.events.push(`close:${ctx.step}`);
        p.calls.push('close');
      },
    };
  },
});

export const PROBE_PLUGINS = [testSource, testStage, testDecide, testSink] as const;

/** Built-ins plus the probe plugins. */
export function testRegistry(): Registry {
  const r = new Registry();
  for (const p of [...BUILTIN_PLUGINS, ...PROBE_PLUGINS]) r.register(p, p.manifest.id.startsWith('test/') ? 'test' : 'builtin');
  return r;
}
