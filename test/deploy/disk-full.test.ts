import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PackageStore } from '../../runtime/deploy/store.js';
import { scratch } from '../helpers/scratch.js';
import { silentLog } from '../helpers/station.js';
import { mountTestTmpfs, unmountTestTmpfs } from '../helpers/tmpfs.js';

/** A real full disk under the deploy folder: a 1 MiB tmpfs (needs root to mount; the test says so when it cannot). */
let root = '';
let mounted = false;

beforeAll(() => {
  root = scratch('lg-deploy-tmpfs-');
  const m = mountTestTmpfs(root, '1m');
  mounted = m.mounted;
  if (!m.mounted) console.warn(`deploy disk-full test skipped: ${m.why}`);
});

afterAll(() => {
  if (mounted) unmountTestTmpfs(root);
});

describe('a model package uploaded onto a full disk', () => {
  it.runIf(process.platform === 'linux')('is refused as LG_ERR_DISK_FULL (retryable), and nothing of it stays behind', async (ctx) => {
    if (!mounted) ctx.skip();
    const store = new PackageStore(root, silentLog);
    // Under the package limit, over the disk: the deploy must not call it a bad package.
    const files = new Map<string, Uint8Array>([
      ['model.json', Buffer.from('{}')],
      ['model.onnx', Buffer.alloc(2 * 1024 * 1024, 7)],
    ]);
    const e = (await store.stage(files, 64 * 1024 * 1024).then(
      () => undefined,
      (x: unknown) => x,
    )) as { code?: string; retryable?: boolean } | undefined;
    expect(e).toMatchObject({ code: 'LG_ERR_DISK_FULL', retryable: true });
    expect(readdirSync(store.dir)).toEqual([]);
    // Once there is room again, the same store takes a package.
    const small = await store.stage(new Map([['model.json', Buffer.from('{}')]]), 1024);
    expect(readdirSync(store.dir)).toHaveLength(1);
    await store.discard(small);
  });
});
