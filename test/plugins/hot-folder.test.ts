import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FrameInput, PluginContext, SourceInstance } from '../../runtime/contract.js';
import { LinegateError } from '../../runtime/errors.js';
import type { InspectionResult } from '../../runtime/result.js';
import { hotFolderSource } from '../../plugins/source-hot-folder/index.js';
import { until } from '../helpers/until.js';
import { contextFor } from '../helpers/samples.js';

const log = pino({ level: 'silent' });
const result = (verdict: 'pass' | 'fail' | 'error'): InspectionResult => ({ verdict }) as unknown as InspectionResult;
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let tmp: string;
let inbox: string;
const running: { controller: AbortController; instance: SourceInstance; done: Promise<void> }[] = [];

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'lg-hot-'));
  inbox = path.join(tmp, 'inbox');
  await fs.mkdir(inbox);
});

afterEach(async () => {
  for (const r of running.splice(0)) {
    r.controller.abort();
    await r.instance.close?.();
    await r.done;
  }
  await fs.rm(tmp, { recursive: true, force: true });
});

const ctxWith = (signal: AbortSignal): PluginContext => ({ ...contextFor(signal, tmp), log, stationId: 't', step: 'cam', resolveAsset: (p) => p });

const lg = (...parts: string[]): string => path.join(inbox, '.linegate', ...parts);
const ls = async (dir: string): Promise<string[]> => (await fs.readdir(dir).catch(() => [] as string[])).sort();
const onlyFiles = async (dir: string): Promise<string[]> => {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) if (e.isFile()) out.push(e.name);
  return out.sort();
};

/** Writes a file and sets its mtime `ageS` seconds in the past. */
async function drop(name: string, content: string | Buffer, ageS = 0): Promise<string> {
  const file = path.join(inbox, name);
  await fs.writeFile(file, content);
  if (ageS !== 0) {
    const t = new Date(Date.now() - ageS * 1000);
    await fs.utimes(file, t, t);
  }
  return file;
}


/** Starts a plugin instance and consumes its frames in the background into `frames`. */
async function start(config: Record<string, unknown> = {}): Promise<{ frames: FrameInput[]; controller: AbortController; instance: SourceInstance; done: Promise<void> }> {
  const controller = new AbortController();
  const ctx = ctxWith(controller.signal);
  const parsed = hotFolderSource.manifest.config.parse({ dir: 'inbox', settleMs: 100, pollMs: 20, ...config });
  const instance = await hotFolderSource.init(parsed, ctx);
  const frames: FrameInput[] = [];
  const done = (async () => {
    for await (const f of instance.frames(ctx)) frames.push(f);
  })();
  const r = { frames, controller, instance, done };
  running.push(r);
  return r;
}

const stop = async (r: { controller: AbortController; instance: SourceInstance; done: Promise<void> }): Promise<void> => {
  r.controller.abort();
  await r.instance.close?.();
  await r.done;
};

const nameOf = (f: FrameInput): string => path.basename(f.ref);

describe('core/hot-folder@1', () => {
  it('yields each complete file once, oldest mtime first, and moves it to done after settle', async () => {
    await drop('b.jpg', 'bee', 30);
    await drop('a.PNG', 'ay', 20);
    await drop('c.jpg', 'sea', 30); // same mtime as b.jpg: name decides
    const r = await start();
    await until(() => r.frames.length === 3, { ms: 2000, what: 'three frames' });
    await pause(250); // several more polls: nothing is yielded twice
    expect(r.frames.map(nameOf)).toEqual(['b.jpg', 'c.jpg', 'a.PNG']);

    const [b, c, a] = r.frames as [FrameInput, FrameInput, FrameInput];
    expect(a.partId).toBe('a');
    expect(a.image).toEqual({ kind: 'encoded', data: Buffer.from('ay'), format: 'png' });
    expect(a.ref).toBe(lg('processing', 'a.PNG'));
    expect(Math.abs(a.capturedAt!.getTime() - (Date.now() - 20_000))).toBeLessThan(2000);
    expect(await ls(lg('processing'))).toEqual(['a.PNG', 'b.jpg', 'c.jpg']);
    expect(await onlyFiles(inbox)).toEqual([]);

    await b.settle!(result('pass'));
    await c.settle!(result('fail'));
    await a.settle!(result('pass'));
    expect(await ls(lg('done'))).toEqual(['a.PNG', 'b.jpg', 'c.jpg']);
    expect(await ls(lg('processing'))).toEqual([]);
    expect(await fs.readFile(lg('done', 'b.jpg'), 'utf8')).toBe('bee');
  });

  it('moves a file to failed when the verdict is error', async () => {
    await drop('x.jpg', 'x');
    const r = await start();
    await until(() => r.frames.length === 1);
    await r.frames[0]!.settle!(result('error'));
    expect(await ls(lg('failed'))).toEqual(['x.jpg']);
    expect(await ls(lg('done'))).toEqual([]);
    expect(await ls(lg('processing'))).toEqual([]);
  });

  it("deletes a settled file with after='delete', but still keeps one whose verdict is error in failed", async () => {
    await drop('ok.jpg', 'ok', 2);
    await drop('bad.jpg', 'bad', 1);
    const r = await start({ after: 'delete' });
    await until(() => r.frames.length === 2);
    await r.frames[0]!.settle!(result('pass'));
    await r.frames[1]!.settle!(result('error'));
    expect(await ls(lg('done'))).toEqual([]);
    expect(await ls(lg('processing'))).toEqual([]);
    expect(await ls(lg('failed'))).toEqual(['bad.jpg']);
    expect(await onlyFiles(inbox)).toEqual([]);
  });

  it('never overwrites an older file of the same name in done, and settles only once however often settle is called', async () => {
    await fs.mkdir(lg('done'), { recursive: true });
    await fs.writeFile(lg('done', 'p.jpg'), 'older');
    await drop('p.jpg', 'newer');
    const r = await start();
    await until(() => r.frames.length === 1);
    const f = r.frames[0]!;
    await Promise.all([f.settle!(result('pass')), f.settle!(result('pass'))]);
    await f.settle!(result('error'));
    const done = await ls(lg('done'));
    expect(done).toHaveLength(2);
    expect(await fs.readFile(lg('done', 'p.jpg'), 'utf8')).toBe('older');
    const renamed = done.find((n) => n !== 'p.jpg')!;
    expect(renamed).toMatch(/^p~\d+\.jpg$/);
    expect(await fs.readFile(lg('done', renamed), 'utf8')).toBe('newer');
    expect(await ls(lg('failed'))).toEqual([]);
  });

  it('takes a file dropped again under the name of one still in processing under a suffixed name, not over it', async () => {
    await drop('same.jpg', 'first');
    const r = await start();
    await until(() => r.frames.length === 1);
    await drop('same.jpg', 'second');
    await until(() => r.frames.length === 2);
    const [a, b] = r.frames as [FrameInput, FrameInput];
    expect(a.image.data.toString()).toBe('first');
    expect(b.image.data.toString()).toBe('second');
    expect(b.ref).not.toBe(a.ref);
    expect(b.partId).toMatch(/^same~\d+$/);
    await a.settle!(result('pass'));
    await b.settle!(result('pass'));
    expect(await ls(lg('done'))).toHaveLength(2);
  });

  it('does not read a file that is still being written, and yields all of its bytes once writing stopped', async () => {
    const r = await start({ settleMs: 300, pollMs: 40 });
    const file = path.join(inbox, 'slow.jpg');
    const chunks = Array.from({ length: 8 }, (_, i) => Buffer.alloc(1000, i + 1));
    for (const chunk of chunks) {
      await fs.appendFile(file, chunk);
      expect(r.frames).toHaveLength(0);
      await pause(120); // longer than pollMs, shorter than settleMs
    }
    const stoppedAt = Date.now() - 120;
    expect(r.frames).toHaveLength(0);
    await until(() => r.frames.length === 1, { ms: 2000, what: 'the finished file' });
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(300);
    expect(r.frames[0]!.image.data).toEqual(Buffer.concat(chunks));
  });

  it('ignores hidden files, upload temp names, unlisted extensions and folders, and takes a .part file once it is renamed to .jpg', async () => {
    const ignored = ['.hidden.jpg', 'up.jpg.part', 'b.tmp', 'c.txt', 'd.jpg.filepart', 'e.jpg.crdownload', 'noext'];
    for (const n of ignored) await drop(n, 'x');
    await fs.mkdir(path.join(inbox, 'folder.jpg'));
    await drop('G.JPEG', 'g');
    const r = await start();
    await until(() => r.frames.length === 1);
    await pause(300); // three settle periods more
    expect(r.frames.map(nameOf)).toEqual(['G.JPEG']);
    expect(await onlyFiles(inbox)).toEqual(ignored.sort());

    await fs.rename(path.join(inbox, 'up.jpg.part'), path.join(inbox, 'up.jpg'));
    await until(() => r.frames.length === 2);
    expect(nameOf(r.frames[1]!)).toBe('up.jpg');
    expect(r.frames[1]!.partId).toBe('up');
  });

  it('yields a file exactly once across a restart: the one taken but never settled once more, the settled one never again', async () => {
    const yields = new Map<string, number>();
    const count = (frames: FrameInput[]): void => {
      for (const f of frames) yields.set(nameOf(f), (yields.get(nameOf(f)) ?? 0) + 1);
    };
    await drop('f1.jpg', '1', 40);
    await drop('f2.jpg', '2', 30);

    const first = await start();
    await until(() => first.frames.length === 2);
    await first.frames[0]!.settle!(result('pass'));
    await stop(first); // the station stops before f2's result is final
    count(first.frames);
    expect(await ls(lg('processing'))).toEqual(['f2.jpg']);

    await drop('f3.jpg', '3', 20);
    await drop('f0.jpg', '0', 50); // older than everything, but the unfinished f2 still comes first
    const second = await start();
    await until(() => second.frames.length === 3);
    await pause(250);
    expect(second.frames.map(nameOf)).toEqual(['f2.jpg', 'f0.jpg', 'f3.jpg']);
    for (const f of second.frames) await f.settle!(result('pass'));
    count(second.frames);

    expect(Object.fromEntries(yields)).toEqual({ 'f0.jpg': 1, 'f1.jpg': 1, 'f2.jpg': 2, 'f3.jpg': 1 });
    expect(await ls(lg('done'))).toEqual(['f0.jpg', 'f1.jpg', 'f2.jpg', 'f3.jpg']);
    expect(await ls(lg('processing'))).toEqual([]);
    expect(await onlyFiles(inbox)).toEqual([]);
    expect(await fs.readFile(lg('done', 'f2.jpg'), 'utf8')).toBe('2');
  });

  it('ends frames() without yielding when the signal is already aborted', async () => {
    const controller = new AbortController();
    const ctx = ctxWith(controller.signal);
    const instance = await hotFolderSource.init(hotFolderSource.manifest.config.parse({ dir: 'inbox' }), ctx);
    await fs.writeFile(lg('processing', 'left.jpg'), 'x'); // would be yielded first on a live start
    controller.abort();
    const got: FrameInput[] = [];
    for await (const f of instance.frames(ctx)) got.push(f);
    expect(got).toEqual([]);
    expect(await ls(lg('processing'))).toEqual(['left.jpg']);
    await instance.close!();
  });

  it('ends frames() within a few polls of the signal being aborted while it waits', async () => {
    const pollMs = 100;
    const r = await start({ pollMs });
    await pause(150);
    const t0 = performance.now();
    r.controller.abort();
    await r.done;
    expect(performance.now() - t0).toBeLessThan(pollMs * 3);
    expect(r.frames).toEqual([]);
  });

  it('ends frames() when the instance is closed, and close can be called twice', async () => {
    const r = await start({ pollMs: 100 });
    await pause(50);
    const t0 = performance.now();
    await r.instance.close!();
    await r.instance.close!();
    await r.done;
    expect(performance.now() - t0).toBeLessThan(300);
  });

  it('moves a file larger than maxFileBytes to failed without yielding it', async () => {
    await drop('big.jpg', Buffer.alloc(2048, 7), 2);
    await drop('small.jpg', Buffer.alloc(100, 1), 1);
    const r = await start({ maxFileBytes: 1024 });
    await until(() => r.frames.length === 1);
    await until(async () => (await ls(lg('failed'))).includes('big.jpg'), { ms: 2000, what: 'big.jpg in failed' });
    await pause(200);
    expect(r.frames.map(nameOf)).toEqual(['small.jpg']);
    expect(await ls(lg('processing'))).toEqual(['small.jpg']);
    expect((await fs.stat(lg('failed', 'big.jpg'))).size).toBe(2048);
  });

  it('refuses to start on a missing folder with LG_ERR_SOURCE_NOT_FOUND', async () => {
    const ctx = ctxWith(new AbortController().signal);
    const config = hotFolderSource.manifest.config.parse({ dir: 'nope' });
    const err = await hotFolderSource.init(config, ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LinegateError);
    expect((err as LinegateError).code).toBe('LG_ERR_SOURCE_NOT_FOUND');
  });

  it('refuses a done folder that is the hot folder itself', async () => {
    const ctx = ctxWith(new AbortController().signal);
    const config = hotFolderSource.manifest.config.parse({ dir: 'inbox', doneDir: 'inbox' });
    const err = await hotFolderSource.init(config, ctx).catch((e: unknown) => e);
    expect((err as LinegateError).code).toBe('LG_ERR_STATION_STEP_CONFIG');
  });

  it('fills config defaults and rejects unknown fields', () => {
    const schema = hotFolderSource.manifest.config;
    expect(schema.parse({ dir: 'in' })).toEqual({
      dir: 'in',
      extensions: ['.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp'],
      settleMs: 300,
      pollMs: 200,
      after: 'move',
      maxFileBytes: 64 * 1024 * 1024,
    });
    expect(schema.safeParse({ dir: 'in', setleMs: 1 }).success).toBe(false);
    expect(schema.safeParse({}).success).toBe(false);
  });
});
