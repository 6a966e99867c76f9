import { readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SinkInstance } from '../../runtime/contract.js';
import { bullmqSink } from '../../plugins/sink-bullmq/index.js';
import { ImageArchive } from '../../plugins/sink-bullmq/archive.js';
import { Forwarder, type Sender } from '../../plugins/sink-bullmq/forwarder.js';
import { SampleJob } from '../../plugins/sink-bullmq/jobs.js';
import { Spool } from '../../plugins/sink-bullmq/spool.js';
import { contextFor, sampleResult } from '../helpers/samples.js';
import { scratch } from '../helpers/scratch.js';
import { capturingLog, silentLog } from '../helpers/station.js';
import { until } from '../helpers/until.js';
import { REDIS_URL, dropPrefix, jobsOf, uniquePrefix } from '../helpers/redis.js';
import { OwnRedis } from './own-redis.js';

/** core/bullmq@1 with records over 1 MiB, a password Redis refuses, a Redis that never answers, a spool that cannot be read, and an archive left idle. */

const PASSWORD = 'right-horse-battery';
let own: OwnRedis;
beforeAll(async () => {
  own = await OwnRedis.start(PASSWORD);
});
afterAll(() => own.stop());

const open: SinkInstance[] = [];
const prefixes: string[] = [];
const servers: net.Server[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close?.()));
  await Promise.all(prefixes.splice(0).map((p) => dropPrefix(p)));
  for (const s of servers.splice(0)) s.close();
});

const ctx = contextFor(new AbortController().signal);

async function sink(url: string, extra: Record<string, unknown> = {}, log = silentLog): Promise<{ q: SinkInstance; prefix: string }> {
  const prefix = uniquePrefix();
  prefixes.push(prefix);
  const config = bullmqSink.manifest.config.parse({
    redis: { url, urlEnv: 'LG_TEST_NO_SUCH_VAR', commandTimeoutMs: 500, connectTimeoutMs: 500 },
    prefix,
    spool: { dir: scratch('lg-spool-') },
    archive: { dir: scratch('lg-archive-') },
    ...extra,
  });
  const q = await bullmqSink.init(config, { ...contextFor(new AbortController().signal), log });
  open.push(q);
  return { q, prefix };
}

/** A JPEG-looking image of `bytes` bytes. */
const jpegOf = (bytes: number): Buffer => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(bytes - 4, 7)]);

describe('records larger than 1 MiB', () => {
  it('sends a sample whose 800 KiB image travels inline, and whatever comes after it', async () => {
    const { q, prefix } = await sink(REDIS_URL, { archive: { dir: scratch('lg-archive-'), inlineMaxBytes: 1_000_000 } });
    const image = { kind: 'encoded' as const, data: jpegOf(800 * 1024), format: 'jpeg' };
    await q.write(sampleResult({ partId: 'big' }), ctx, image);
    await q.write(sampleResult({ partId: 'after' }), ctx, { kind: 'encoded', data: jpegOf(1000), format: 'jpeg' });
    await until(async () => (await jobsOf(prefix, 'samples')).length === 2, { ms: 10_000, what: 'both samples in Redis' });
    const [big] = await jobsOf(prefix, 'samples');
    expect(Buffer.from(SampleJob.parse(big!.data).image!.inline!, 'base64').equals(image.data)).toBe(true);
  });

  it('takes an inline limit of 4 MiB with the default record size, and refuses one the record size cannot carry', async () => {
    const c = (archive: Record<string, unknown>, spool: Record<string, unknown> = {}) => bullmqSink.manifest.config.safeParse({ archive, spool });
    expect(c({ inlineMaxBytes: 4 * 1024 * 1024 }).success).toBe(true);
    const refused = c({ inlineMaxBytes: 4 * 1024 * 1024 }, { maxRecordMiB: 2 });
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]).toMatchObject({ path: ['archive', 'inlineMaxBytes'], message: expect.stringContaining('spool.maxRecordMiB') });
  });
});

describe('a password Redis refuses', () => {
  it('is LG_ERR_QUEUE_AUTH in the sink health (down, never the password), and results stay spooled', async () => {
    const { log, entries } = capturingLog();
    const { q } = await sink(own.url('wrong-pass-123'), {}, log);
    for (let i = 0; i < 5; i++) expect(await q.write(sampleResult({ partId: `P-${i}` }), ctx)).toBe('spooled');
    await until(() => q.health?.().status === 'down', { what: 'the sink to say the password was refused' });
    const h = q.health!();
    expect(h.detail).toMatch(/LG_ERR_QUEUE_AUTH: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/? refused the password \(WRONGPASS/);
    expect(h.data).toMatchObject({ state: 'refused' });
    expect(JSON.stringify(h)).not.toContain('wrong-pass-123');
    expect(JSON.stringify(entries())).not.toContain('wrong-pass-123');
    expect(entries().filter((e) => e.code === 'LG_ERR_QUEUE_AUTH')).toHaveLength(1);
  });

  it('is sent once the right password is given, to the same spool', async () => {
    const { q } = await sink(own.url());
    await q.write(sampleResult(), ctx);
    await until(() => q.health?.().status === 'ok', { what: 'the sink to reach its own Redis' });
  });
});

describe('the queue sink at its edges', () => {
  it('reports a write still waiting for Redis at close as spooled, not delivered', async () => {
    // A Redis that takes the connection and never answers: the write waits to learn whether it was delivered.
    const silent = net.createServer(() => undefined);
    servers.push(silent);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as net.AddressInfo).port;
    const { q } = await sink(`redis://127.0.0.1:${port}`, { deliveredWaitMs: 10_000, redis: { url: `redis://127.0.0.1:${port}`, urlEnv: 'LG_TEST_NO_SUCH_VAR', connectTimeoutMs: 5000, commandTimeoutMs: 5000 } });
    const writing = q.write(sampleResult(), ctx);
    await until(() => Number(q.health?.().data?.pendingBytes) > 0, { what: 'the record in the spool' });
    await q.close?.();
    expect(await writing).toBe('spooled');
  });

  it('does not call a spool that cannot be read "Redis unreachable"', async () => {
    const dir = scratch('lg-spool-');
    const { log, entries } = capturingLog();
    const spool = await Spool.open(dir, { maxBytes: 1e6, log });
    const sender: Sender = { send: async () => undefined };
    const f = new Forwarder(spool, sender, { batch: 10, retryMinMs: 20, retryMaxMs: 50, log });
    try {
      await spool.append({ queue: 'results', id: 'a', data: {} });
      for (const seg of readdirSync(dir).filter((n) => n.endsWith('.jsonl'))) (await import('node:fs')).rmSync(path.join(dir, seg));
      f.start();
      await until(() => f.spoolFault !== undefined, { what: 'the spool fault' });
      expect(f.spoolFault).toMatch(/^cannot read the spool: .*ENOENT/);
      expect(f.state).not.toBe('unreachable');
      expect(entries().some((e) => String(e.msg).includes('unreachable'))).toBe(false);
      expect(entries().filter((e) => String(e.msg).includes('queue spool fault'))).toHaveLength(1);
    } finally {
      await f.stop();
      await spool.close();
    }
  });

  it('lets records gather for forwardLingerMs after a batch that was not full, and never after a full one', async () => {
    const spool = await Spool.open(scratch('lg-spool-'), { maxBytes: 1e6, log: silentLog });
    const batches: string[][] = [];
    const sender: Sender = { send: async (records) => void batches.push(records.map((r) => r.id)) };
    // Full batches of 2 go back to back: with a 60 s linger after them the drain below could not end in time.
    const f = new Forwarder(spool, sender, { batch: 2, retryMinMs: 20, retryMaxMs: 50, lingerMs: 60_000, log: silentLog });
    try {
      for (const id of ['a', 'b', 'c', 'd', 'e']) await spool.append({ queue: 'results', id, data: {} });
      f.start();
      expect(await f.drained(15_000)).toBe(true);
      expect(batches).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
      // After the short batch ['e'] the forwarder lingers: what arrives meanwhile goes as one batch, not one each.
      await spool.append({ queue: 'results', id: 'f', data: {} });
      await spool.append({ queue: 'results', id: 'g', data: {} });
      f.wake();
      // stop() cuts the linger short: they stay spooled for the next start.
      await f.stop();
      expect(batches).toHaveLength(3);
      expect(spool.empty).toBe(false);
    } finally {
      await f.stop();
      await spool.close();
    }
  });

  it('sends a short batch at once after the spool was idle, then holds what comes next for the linger', async () => {
    const spool = await Spool.open(scratch('lg-spool-'), { maxBytes: 1e6, log: silentLog });
    const batches: string[][] = [];
    const sender: Sender = { send: async (records) => void batches.push(records.map((r) => r.id)) };
    // A 60 s linger: ['a'] arriving before it ran out proves an idle spool's first record does not wait for it.
    const f = new Forwarder(spool, sender, { batch: 200, retryMinMs: 20, retryMaxMs: 50, lingerMs: 60_000, log: silentLog });
    try {
      f.start();
      await spool.append({ queue: 'results', id: 'a', data: {} });
      f.wake();
      await until(() => batches.length === 1, { ms: 15_000, what: 'the first record on its own' });
      // One at a time, as parts come: without the linger each would go at once, on its own (b before c is even written).
      for (const id of ['b', 'c', 'd']) {
        await spool.append({ queue: 'results', id, data: {} });
        f.wake();
      }
      await f.stop();
      expect(batches).toEqual([['a']]);
      expect(spool.empty).toBe(false); // still spooled, for the next start
    } finally {
      await f.stop();
      await spool.close();
    }
  });

  it('applies archive retention periodically, not only when it opens', async () => {
    const archive = await ImageArchive.open(scratch('lg-archive-'), { maxBytes: 1e9, maxAgeMs: 150, inlineMaxBytes: 0, log: silentLog, sweepEveryMs: 50 });
    try {
      await archive.put(jpegOf(100), 'jpeg');
      expect(archive.count).toBe(1);
      await until(() => archive.count === 0, { ms: 3000, what: 'the aged image to be removed' });
    } finally {
      archive.close();
    }
  });
});
