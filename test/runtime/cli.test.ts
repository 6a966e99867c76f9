import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { InspectionResult } from '../../runtime/result.js';
import { linegate, type LogLine } from '../helpers/cli.js';
import { demoCopy, stepNamed } from '../helpers/demo.js';
import { jobsOf } from '../helpers/redis.js';
import { testRoot } from '../helpers/roots.js';
import { ROOT } from '../helpers/station.js';

/**
 * The CLI's behaviour, run in this process through main(argv, io); each station a copy in a root of
 * its own, with a queue prefix of its own. The tests about the process itself are in cli-process.test.ts.
 */

const codes = (logs: readonly LogLine[]): string[] => logs.flatMap((l) => (typeof l.code === 'string' ? [l.code] : []));

/** The demo in a root of its own, its model step on `models/<name>`: a copy of casting-cls/1 whose model.json `edit` changes (unless `edit` is absent and nothing is copied). */
function demoWithModel(name: string, edit?: (m: Record<string, unknown> & { input: Record<string, unknown> }) => void): ReturnType<typeof demoCopy> {
  const demo = demoCopy({ edit: (s) => void (stepNamed(s, 'model').config = { model: `models/${name}` }) });
  if (edit !== undefined) {
    const dir = path.join(demo.root, 'models', name);
    cpSync(path.join(ROOT, 'models/casting-cls/1'), dir, { recursive: true });
    const manifest = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as Record<string, unknown> & { input: Record<string, unknown> };
    edit(manifest);
    writeFileSync(path.join(dir, 'model.json'), JSON.stringify(manifest));
  }
  return demo;
}

/** A station that only compiles, in a root of its own. */
function stationFile(yaml: string): string {
  const file = path.join(testRoot(), 'stations', 'station.yaml');
  writeFileSync(file, `${yaml.trim()}\n`);
  return file;
}

describe('linegate check', () => {
  it('exits 0 and prints the plan for the demo station', async () => {
    const r = await linegate(['check', 'stations/demo.yaml']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('station demo-01');
    expect(r.stdout).toContain('core/threshold-rules@1');
  });

  it('exits 2 and names the step and the field when a plugin id is misspelt', async () => {
    const { file } = demoCopy({ edit: (s) => void (stepNamed(s, 'classify').use = 'core/clasify-decode@1') });
    const r = await linegate(['check', file]);
    expect(r.code).toBe(2);
    expect(r.logs()).toContainEqual(expect.objectContaining({ code: 'LG_ERR_PLUGIN_UNKNOWN', step: 'classify', path: 'stages[2].use', msg: expect.stringContaining('did you mean core/classify-decode@1') }));
    expect(r.stdout).toBe('');
  });

  it('--json logs the coded errors in one JSON line', async () => {
    const file = stationFile('station: { id: x }\nsource: { name: cam, use: core/folder-source@1 }\nstages: [{ name: v, use: core/threshold-rules@1, config: { rules: [] } }]');
    const r = await linegate(['check', '--json', file]);
    expect(r.code).toBe(2);
    const { errors } = r.logs().at(-1) as LogLine & { errors: { code: string; path: string }[] };
    expect(errors.map((e) => [e.code, e.path])).toEqual([
      ['LG_ERR_STATION_STEP_CONFIG', 'source.config.dir'],
      ['LG_ERR_STATION_STEP_CONFIG', 'stages[0].config.rules'],
    ]);
  });

  it('opens each model package as run would and lists every problem: a file that is not the one model.json names, and a graph of another size than declared', async () => {
    const { file } = demoWithModel('lies', (m) => Object.assign(m, { sha256: '0'.repeat(64), input: { ...m.input, width: 128, height: 128 } }));
    const r = await linegate(['check', file]);
    expect(r.code, r.stderr).toBe(2);
    expect(codes(r.logs())).toEqual(['LG_ERR_MODEL_HASH', 'LG_ERR_MODEL_INPUT']);
    expect(r.messages().join('\n')).toMatch(/is \[N,1,128,128\] .* but the graph's is \[N,1,300,300\]/);
    expect(r.stdout).toBe('');
  });

  it('lists every schema problem of a model.json, not only the first', async () => {
    const { file } = demoWithModel('bad-schema', (m) => Object.assign(m, { task: 'painting', input: { ...m.input, color: 'CMYK' } }));
    const r = await linegate(['check', file]);
    expect(r.code).toBe(2);
    const manifest = r.logs().filter((l) => l.code === 'LG_ERR_MODEL_MANIFEST');
    expect(manifest.map((l) => /model\.json is invalid: ([\w.]+):/.exec(l.msg ?? '')?.[1]).sort()).toEqual(['input.color', 'task']);
  });

  it('exits 2 for a missing model folder, naming it', async () => {
    const { file, root } = demoWithModel('casting-cls/404');
    const r = await linegate(['check', file]);
    expect(r.code).toBe(2);
    expect(r.logs()).toContainEqual(expect.objectContaining({ code: 'LG_ERR_MODEL_FILE', step: 'model', msg: expect.stringContaining(path.join(root, 'models/casting-cls/404')) }));
    expect(r.stdout).toBe('');
  });

  it('verifies without starting anything: a station whose PLC and Redis are nowhere checks OK', async () => {
    const { file } = demoCopy({
      edit: (s) => {
        stepNamed(s, 'plc').config = { endpoint: 'opc.tcp://127.0.0.1:1/', connectAttempts: 1 };
        Object.assign(stepNamed(s, 'queue').config!, { redis: { url: 'redis://127.0.0.1:1', urlEnv: 'LG_TEST_NO_SUCH_VAR' } });
      },
    });
    const r = await linegate(['check', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(': OK');
    expect(r.stderr).toBe('');
  });

  it('takes the same log flags as run (--no-pretty, --pretty, --log-level)', async () => {
    for (const flags of [['--no-pretty'], ['--pretty'], ['--log-level', 'warn', '--no-pretty']]) {
      const r = await linegate(['check', 'stations/demo.yaml', ...flags]);
      expect(r.code, `${flags.join(' ')}: ${r.stderr}`).toBe(0);
    }
  });
});

describe('linegate run', () => {
  it('runs --max-frames 20 of the demo, ends stdout with the one summary line, and queues every result under its own prefix', async () => {
    // Four times the demo's trigger rate: the same parts, in a quarter of the time.
    // Three times the demo's cycle budget (the deadline follows it: 1700 ms, inside the simulated PLC's 2 s wait):
    // this is about the CLI's output and queues, and on a loaded machine the first part (the model's first run)
    // could miss the demo's 800 ms deadline and count as undelivered.
    const { file, prefix } = demoCopy({
      edit: (s) => {
        Object.assign(s.station, { cycleBudgetMs: 1500 });
        const plc = stepNamed(s, 'plc').config!;
        delete plc.deadlineMs;
        Object.assign(plc, { simulate: { triggerRateHz: 20 } });
      },
    });
    const r = await linegate(['run', file, '--max-frames', '20', '--no-pretty']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const { summary } = JSON.parse(lines[0]!) as { summary: Record<string, unknown> };
    expect(Object.keys(summary)).toEqual(['frames', 'pass', 'fail', 'error', 'dropped', 'undelivered', 'fps', 'latencyMs']);
    expect(summary).toMatchObject({ frames: 20, dropped: 0, undelivered: 0, latencyMs: { p50: expect.any(Number), p95: expect.any(Number), p99: expect.any(Number) } });
    // The demo's simulated PLC triggered every part and got exactly one verdict per trigger, each with the right echo.
    const sim = r.logs().find((l) => l.msg === 'what the simulated PLC saw')!.plcSim as { triggers: number; verdicts: Record<string, number>; echoMismatches: number };
    const verdicts = Object.values(sim.verdicts).reduce((a, b) => a + b, 0);
    expect(sim.echoMismatches).toBe(0);
    expect(verdicts).toBeGreaterThanOrEqual(20);
    expect((sim.verdicts['0'] ?? 0) + (sim.verdicts['3'] ?? 0)).toBe(0);
    expect(sim.triggers - verdicts).toBeLessThanOrEqual(1); // at most the trigger raised as the station stopped
    const jobs = await jobsOf(prefix, 'results');
    expect(jobs).toHaveLength(20);
    for (const j of jobs) expect(InspectionResult.parse(j.data).station.id).toBe('demo-01');
  }, 40_000);

  it('routes what a library prints with console.* into the log: every stderr line is a JSON log line', async () => {
    const { file, root } = demoCopy({
      edit: (s) => {
        s.plugins = ['./chatty.mjs'];
        s.sinks.push({ name: 'chatty', use: 'acme/chatty@1' });
      },
    });
    writeFileSync(
      path.join(root, 'stations', 'chatty.mjs'),
      `import { z } from '${import.meta.resolve('zod')}';
export const plugin = { manifest: { id: 'acme/chatty@1', kind: 'sink', description: 'prints as some libraries do', config: z.object({}) },
  async init() { console.log('\\x1b[36mhello from a library\\x1b[0m'); console.warn('a library warning'); return { async write() {} }; } };`,
    );
    const r = await linegate(['run', file, '--max-frames', '2', '--no-pretty']);
    expect(r.code, r.stderr).toBe(0);
    const logs = r.logs(); // throws on a line that is not JSON
    expect(logs).toContainEqual(expect.objectContaining({ level: 30, from: 'console', msg: 'hello from a library' }));
    expect(logs).toContainEqual(expect.objectContaining({ level: 40, from: 'console', msg: 'a library warning' }));
  }, 40_000);

  it('exits 2 for a missing model folder before anything starts: no PLC served or connected, no queue opened', async () => {
    const { file } = demoWithModel('casting-cls/404');
    const r = await linegate(['run', file, '--max-frames', '1', '--no-pretty']);
    expect(r.code).toBe(2);
    expect(codes(r.logs())).toEqual(['LG_ERR_MODEL_FILE']);
    expect(r.messages().filter((m) => /simulated PLC|PLC link|queue sink/.test(m))).toEqual([]);
    expect(r.stdout).toBe('');
  });

  it('exits 2 for a model file that does not match its model.json, listing every mismatch', async () => {
    const { file } = demoWithModel('lies', (m) => Object.assign(m, { sha256: 'f'.repeat(64), input: { ...m.input, width: 128, height: 128 } }));
    const r = await linegate(['run', file, '--max-frames', '1', '--no-pretty']);
    expect(r.code).toBe(2);
    expect(codes(r.logs())).toEqual(['LG_ERR_MODEL_HASH', 'LG_ERR_MODEL_INPUT']);
  });

  it('exits 2 when the source folder is missing: bad input found at start', async () => {
    const { file } = demoCopy({ edit: (s) => void (s.source.config = { plc: 'plc', camera: { dir: '/nonexistent/camera/drop' } }) });
    const r = await linegate(['run', file, '--no-pretty']);
    expect(r.logs()).toContainEqual(expect.objectContaining({ code: 'LG_ERR_SOURCE_NOT_FOUND', step: 'cam0' }));
    expect(r.code).toBe(2);
  });

  it('exits 1 when a step fails to start for a run-time reason', async () => {
    const { file, root } = demoCopy({
      edit: (s) => {
        s.plugins = ['./broken.mjs'];
        s.sinks.push({ name: 'broken', use: 'acme/broken@1' });
      },
    });
    writeFileSync(
      path.join(root, 'stations', 'broken.mjs'),
      `import { z } from '${import.meta.resolve('zod')}';
export const plugin = { manifest: { id: 'acme/broken@1', kind: 'sink', description: 'cannot reach its server', config: z.object({}) },
  async init() { throw new Error('connect ECONNREFUSED 127.0.0.1:1'); } };`,
    );
    const r = await linegate(['run', file, '--no-pretty']);
    expect(r.logs()).toContainEqual(expect.objectContaining({ code: 'LG_ERR_PLUGIN_INIT', step: 'broken', msg: expect.stringContaining('ECONNREFUSED') }));
    expect(r.code).toBe(1);
  });

  it('says whether a station file is missing or is a folder', async () => {
    const root = testRoot();
    const missing = await linegate(['run', path.join(root, 'stations/nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.logs()).toContainEqual(expect.objectContaining({ code: 'LG_ERR_STATION_READ', msg: expect.stringContaining('nope.yaml: no such file') }));
    const folder = await linegate(['run', path.join(root, 'stations')]);
    expect(folder.code).toBe(2);
    expect(folder.logs()).toContainEqual(expect.objectContaining({ code: 'LG_ERR_STATION_READ', msg: expect.stringContaining('it is a folder') }));
  });
});

describe('misuse of the command line', () => {
  it('is LG_ERR_CLI_USAGE and exit 2: an unknown command, an unknown flag, a bad value, no command', async () => {
    const { file } = demoCopy();
    for (const [args, says] of [
      [['runn', file], /unknown command 'runn'.*run/],
      [['run', file, '--max-frame', '3'], /unknown option '--max-frame'.*--max-frames/],
      [['run', file, '--max-frames', 'abc'], /--max-frames <n>' argument 'abc' is invalid.*positive integer/],
      [['run', file, '--max-frames', '0'], /positive integer/],
      [['run'], /missing required argument 'station'/],
      [['check', file, '--log-level', 'loud'], /--log-level <level>' argument 'loud' is invalid/],
      [[], /a command is needed/],
    ] as const) {
      const r = await linegate(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.logs(), args.join(' ')).toEqual([expect.objectContaining({ level: 50, code: 'LG_ERR_CLI_USAGE', msg: expect.stringMatching(says) })]);
      expect(r.stdout, args.join(' ')).toBe('');
    }
  });

  it('gives every command the same log flags', async () => {
    for (const args of [['run'], ['check'], ['schema'], ['plugins'], ['plc-sim'], ['worker'], ['stats'], ['replay'], ['compare'], ['calibrate'], ['models', 'inspect'], ['pki', 'show'], ['pki', 'trust']]) {
      const r = await linegate([...args, '--help']);
      expect(r.code, args.join(' ')).toBe(0);
      for (const flag of ['--log-level <level>', '--pretty', '--no-pretty']) expect(r.stdout, `${args.join(' ')} ${flag}`).toContain(flag);
    }
  });

  it('prints help for every command with exit 0', async () => {
    for (const args of [['--help'], ['run', '--help'], ['check', '--help'], ['schema', '--help'], ['plugins', '--help']]) {
      const r = await linegate(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toContain('Usage: linegate');
    }
  });
});

describe('linegate plugins and schema', () => {
  it('plugins --json gives each plugin its config as JSON Schema with the defaults, its caps, and what it provides and requires', async () => {
    const r = await linegate(['plugins', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout) as { id: string; kind: string; config: Record<string, unknown>; accepts?: unknown[]; produces?: unknown[]; provides?: string[]; requires?: unknown[]; critical?: boolean }[];
    const byId = new Map(list.map((p) => [p.id, p]));
    expect(byId.get('core/bullmq@1')).toMatchObject({
      kind: 'sink',
      critical: false,
      config: { type: 'object', properties: { prefix: { default: 'linegate', type: 'string' }, redis: { properties: { url: { default: 'redis://127.0.0.1:6379' }, urlEnv: { default: 'LINEGATE_REDIS_URL' } } } }, additionalProperties: false },
    });
    expect(byId.get('core/onnx-model@1')).toMatchObject({ accepts: [{ type: 'image/raw' }], produces: [{ type: 'model/output', params: { task: '*' } }], config: { required: ['model'], properties: { warmup: { default: true } } } });
    expect(byId.get('core/opcua-plc@1')).toMatchObject({ critical: true, provides: [expect.any(String)] });
    expect(byId.get('core/opcua-trigger@1')).toMatchObject({ requires: [{ field: 'plc', service: byId.get('core/opcua-plc@1')!.provides![0] }] });
    for (const p of list) expect(p.config, p.id).toMatchObject({ type: 'object' });
  });

  it('plugins lists each plugin with its caps', async () => {
    const r = await linegate(['plugins']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/core\/onnx-model@1 +model .*\n +in: image\/raw; out: model\/output\(task=\*,decode=\*\)/);
    expect(r.stdout).toMatch(/core\/opcua-trigger@1 .*\n +out: image\/encoded; requires: .* \(config\.plc\)/);
  });

  it('schema result prints a JSON Schema that accepts a real result record', async () => {
    const r = await linegate(['schema', 'result']);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout) as { type: string; required: string[] };
    expect(schema.type).toBe('object');
    expect(schema.required).toEqual(expect.arrayContaining(['resultId', 'partId', 'verdict', 'rejectCode', 'defects', 'timings', 'delivery']));
  });
});

describe('the demo station', () => {
  it('queues under a prefix of its own, never the shared linegate: one', () => {
    const demo = parse(readFileSync(path.join(ROOT, 'stations/demo.yaml'), 'utf8')) as { sinks: { use: string; config?: { prefix?: string } }[] };
    const queue = demo.sinks.find((s) => s.use === 'core/bullmq@1')!;
    expect(queue.config?.prefix).toBe('linegate-demo');
  });

  it('checks OK where it ships', async () => {
    const r = await linegate(['check', path.join(ROOT, 'stations/demo.yaml'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ sinks: [{ name: 'plc' }, { name: 'archive' }, { name: 'queue', config: { prefix: 'linegate-demo' } }, { name: 'history', use: 'core/history@1', config: { dir: 'var/history' } }] });
  });
});
