import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PluginModule, SinkInstance } from '../../runtime/contract.js';
import type { PlannedStep } from '../../runtime/compile/compile.js';
import { SinkDispatcher, type Durability, type StartedSink } from '../../runtime/execute/sinks.js';
import { bullmqSink } from '../../plugins/sink-bullmq/index.js';
import { jsonlSink } from '../../plugins/sink-jsonl/index.js';
import { contextFor, sampleResult } from '../helpers/samples.js';
import { scratch } from '../helpers/scratch.js';
import { capturingLog } from '../helpers/station.js';
import { mountTestTmpfs, unmountTestTmpfs } from '../helpers/tmpfs.js';
import { until } from '../helpers/until.js';
import { RedisRelay, dropPrefix, jobsOf, uniquePrefix } from '../helpers/redis.js';

/**
 * A real full disk: a 2 MiB tmpfs holding the JSONL results file, the spool
 * and the archive, filled up while results keep coming and Redis is away, then
 * given room again while Redis comes back, without a restart. Needs root (to
 * mount); skipped with a note otherwise (the injected-fault tests in
 * spool-faults and jsonl-sink cover the same paths everywhere).
 */

let root = '';
let mounted = false;
let why = '';
let relay: RedisRelay | undefined;
const prefix = uniquePrefix();
const open: SinkInstance[] = [];

beforeAll(async () => {
  root = scratch('lg-tmpfs-');
  const m = mountTestTmpfs(root, '2m');
  mounted = m.mounted;
  if (!m.mounted) why = m.why;
  relay = await RedisRelay.start();
});

afterAll(async () => {
  await Promise.all(open.splice(0).map((s) => s.close?.()));
  await relay?.close();
  await dropPrefix(prefix);
  if (mounted) unmountTestTmpfs(root);
});

function started<S extends PluginModule>(name: string, plugin: S, config: unknown): Promise<StartedSink> {
  const parsed = plugin.manifest.config.parse(config);
  const step = { name, path: `sinks.${name}`, kind: 'sink', plugin, config: parsed, critical: false } as unknown as PlannedStep;
  const ctx = contextFor(new AbortController().signal, root);
  return (plugin.init(parsed as never, ctx) as Promise<SinkInstance>).then((instance) => {
    open.push(instance);
    return { step, instance, ctx };
  });
}

describe('a full disk under the results file and the spool', () => {
  it('keeps results whole and in order while the disk is full, says so once per sink and in health, and writes and sends them all by itself when there is room', async (t) => {
    if (!mounted) t.skip(why);
    const { log, entries } = capturingLog();
    const jsonl = await started('results', jsonlSink, { dir: 'results', rotate: 'none' });
    const queue = await started('queue', bullmqSink, {
      redis: { url: relay!.url, urlEnv: 'LG_TEST_NO_SUCH_VAR', commandTimeoutMs: 500, connectTimeoutMs: 500 },
      prefix,
      spool: { dir: 'spool' },
      archive: { dir: 'archive' },
      sampling: { passFraction: 0 },
    });
    const d = new SinkDispatcher([jsonl, queue], { timeoutMs: 2000, laneSize: 1000, log, onDelivery: () => undefined });
    const held = new Map<string, Durability>();
    const send = async (from: number, n: number): Promise<void> => {
      const results = Array.from({ length: n }, (_, i) => sampleResult({ partId: `P-${from + i}`, verdict: 'pass', rejectCode: 0, reasons: [], defects: [], source: { step: 'cam', plugin: 'x', ref: 'r' } }));
      const durable = await Promise.all(results.map(async (r) => (await d.dispatch(r)).durable));
      await Promise.all(durable.map(async (p, i) => held.set(results[i]!.partId, await p)));
    };
    const all = Array.from({ length: 40 }, (_, i) => `P-${i}`);

    await send(0, 5);
    expect([...held.values()].every((h) => h.ok)).toBe(true);

    await relay!.down();
    const filler = path.join(root, 'filler');
    await fs.writeFile(filler, Buffer.alloc(4 * 1024 * 1024, 1)).catch((e: NodeJS.ErrnoException) => expect(e.code).toBe('ENOSPC'));
    // Not awaited: while the disk is full the lanes hold these results, and a source would not settle them.
    const during = send(5, 30);
    await until(() => jsonl.instance.health?.().status === 'degraded', { what: 'the results sink to say the disk is full' });
    expect(jsonl.instance.health?.()).toMatchObject({ status: 'degraded', detail: expect.stringContaining('LG_ERR_DISK_FULL') });
    await until(() => String(queue.instance.health?.().detail).includes('LG_ERR_DISK_FULL'), { what: 'the queue sink to say the disk is full' });
    expect(held.size).toBeLessThan(35); // some are held, not given up
    // Every line in the results file is whole, and they are the first results, in order.
    const file = path.join(root, 'results', 'conformance.jsonl');
    const partIds = (): string[] => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { partId: string }).partId);
    expect(readFileSync(file, 'utf8').endsWith('\n')).toBe(true);
    expect(all.slice(0, partIds().length)).toEqual(partIds());

    await fs.rm(filler);
    await relay!.up();
    await during;
    await send(35, 5);
    expect(all.every((id) => held.get(id)?.ok === true)).toBe(true);
    expect(partIds()).toEqual(all);
    expect(jsonl.instance.health?.().status).toBe('ok');
    // Sent without a restart: every result, before, during and after the fault, once and in order.
    await until(async () => (await jobsOf(prefix, 'results')).length >= all.length, { ms: 15_000, what: 'the spool to drain into Redis' });
    expect((await jobsOf(prefix, 'results')).map((j) => (j.data as { partId: string }).partId)).toEqual(all);
    await until(() => queue.instance.health?.().status === 'ok', { what: 'the queue sink to be ok again' });

    // One line on entering the state and one on leaving it, per sink, however many tries it took.
    for (const sink of ['results', 'queue']) {
      expect(entries().filter((e) => e.level >= 50 && e.sink === sink).map((e) => e.code)).toEqual(['LG_ERR_DISK_FULL']);
      expect(entries().filter((e) => e.level === 30 && e.sink === sink && String(e.msg).includes('delivers again'))).toHaveLength(1);
    }
  }, 60_000);
});
