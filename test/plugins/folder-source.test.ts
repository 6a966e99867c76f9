import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FrameInput, SourceInstance } from '../../runtime/contract.js';
import { folderSource } from '../../plugins/source-folder/index.js';
import { contextFor } from '../helpers/samples.js';
import { scratch } from '../helpers/scratch.js';

async function take(source: SourceInstance, n: number, signal = new AbortController().signal): Promise<FrameInput[]> {
  const out: FrameInput[] = [];
  for await (const f of source.frames(contextFor(signal))) {
    out.push(f);
    if (out.length === n) break;
  }
  return out;
}

function folder(files: string[]): string {
  const dir = scratch('lg-folder-');
  for (const f of files) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), f);
  }
  return dir;
}

const init = (config: Record<string, unknown>): Promise<SourceInstance> => folderSource.init(folderSource.manifest.config.parse(config), contextFor(new AbortController().signal));

describe('core/folder-source@1', () => {
  it('yields images in byte order of their relative path and keeps the sub-folder as the label', async () => {
    const dir = folder(['ok/b.png', 'def/a.jpg', 'ok/A.jpg', 'top.bmp', 'notes.txt', '.hidden.jpg']);
    const frames = await take(await init({ dir }), 10);
    expect(frames.map((f) => [path.relative(dir, f.ref), f.label, f.partId])).toEqual([
      ['def/a.jpg', 'def', 'def_a'],
      ['ok/A.jpg', 'ok', 'ok_A'],
      ['ok/b.png', 'ok', 'ok_b'],
      ['top.bmp', undefined, 'top'],
    ]);
    expect(frames[0]!.image).toMatchObject({ kind: 'encoded', format: 'jpg' });
    expect(Buffer.from((frames[0]!.image as { data: Buffer }).data).toString()).toBe('def/a.jpg');
  });

  it('follows symbolic links to images and folders', async () => {
    const real = folder(['x/a.jpg', 'b.jpg']);
    const dir = folder([]);
    symlinkSync(path.join(real, 'x'), path.join(dir, 'linked'));
    symlinkSync(path.join(real, 'b.jpg'), path.join(dir, 'c.jpg'));
    const frames = await take(await init({ dir }), 10);
    expect(frames.map((f) => [path.relative(dir, f.ref), f.label])).toEqual([
      ['c.jpg', undefined],
      ['linked/a.jpg', 'linked'],
    ]);
  });

  it('loops with distinct part ids on every pass', async () => {
    const frames = await take(await init({ dir: folder(['a.jpg', 'b.jpg']), loop: true }), 5);
    expect(frames.map((f) => f.partId)).toEqual(['a', 'b', 'a#1', 'b#1', 'a#2']);
  });

  it('paces frames at rateHz', async () => {
    const source = await init({ dir: folder(['a.jpg']), loop: true, rateHz: 50 });
    const t0 = performance.now();
    await take(source, 6);
    // 6 frames at 50 Hz take at least 5 periods of 20 ms; a generous floor keeps this a behaviour check, not a timing test
    expect(performance.now() - t0).toBeGreaterThanOrEqual(95);
  });

  it('refuses a missing folder and an empty one with coded errors', async () => {
    await expect(init({ dir: '/nonexistent/lg' })).rejects.toMatchObject({ code: 'LG_ERR_SOURCE_NOT_FOUND' });
    await expect(init({ dir: folder(['readme.txt']) })).rejects.toMatchObject({ code: 'LG_ERR_SOURCE_EMPTY' });
  });
});
