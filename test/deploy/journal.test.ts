import { appendFileSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DeployJournal } from '../../runtime/deploy/journal.js';
import { PackageStore } from '../../runtime/deploy/store.js';
import type { Deployment } from '../../runtime/deploy/types.js';
import { capturingLog, silentLog } from '../helpers/station.js';
import { scratch } from '../helpers/scratch.js';

const entry = (version: string, action: Deployment['action'] = 'deploy'): Deployment => ({
  step: 'model',
  name: 'm',
  version,
  sha256: version.padEnd(64, '0').replace(/[^0-9a-f]/g, 'a').slice(0, 64),
  dir: `var/deploy/s/packages/m@${version}`,
  activatedAt: new Date().toISOString(),
  by: 'anna',
  action,
});

describe('the deploy journal', () => {
  it('appends durably and reads back what it wrote, in order', async () => {
    const file = path.join(scratch('lg-journal-'), 'st', 'journal.jsonl');
    const j = await DeployJournal.open(file, silentLog);
    await j.append(entry('2'));
    await j.append(entry('1', 'rollback'));
    const again = await DeployJournal.open(file, silentLog);
    expect(again.entries.map((e) => [e.action, e.version])).toEqual([
      ['deploy', '2'],
      ['rollback', '1'],
    ]);
  });

  it('skips a torn last line (a crash mid-append) and says so, and refuses to write what its schema does not take', async () => {
    const file = path.join(scratch('lg-journal-'), 'journal.jsonl');
    writeFileSync(file, `${JSON.stringify(entry('2'))}\n`);
    appendFileSync(file, JSON.stringify(entry('3')).slice(0, 40));
    const { log, entries } = capturingLog();
    const j = await DeployJournal.open(file, log);
    expect(j.entries.map((e) => e.version)).toEqual(['2']);
    expect(entries().some((l) => /does not parse/.test(String(l.msg)) && l.line === 2)).toBe(true);
    await expect(j.append({ ...entry('4'), by: '' })).rejects.toThrow();
  });
});

describe('the package store', () => {
  it('refuses names that leave the folder, a package without model.json, and one past the size limit, writing nothing', async () => {
    const dir = scratch('lg-store-');
    const store = new PackageStore(dir, silentLog);
    const refused = async (files: Map<string, Uint8Array>, max = 1 << 20): Promise<string> => {
      const e = (await store.stage(files, max).then(
        () => undefined,
        (x: unknown) => x,
      )) as { code?: string; message?: string } | undefined;
      expect(e?.code).toBe('LG_ERR_DEPLOY_PACKAGE');
      return e?.message ?? '';
    };
    const b = Buffer.from('x');
    expect(await refused(new Map([['../model.json', b]]))).toMatch(/not a plain file name/);
    expect(await refused(new Map([['model.json', b], ['a/b', b]]))).toMatch(/not a plain file name/);
    expect(await refused(new Map([['model.json', b], ['.hidden', b]]))).toMatch(/not a plain file name/);
    expect(await refused(new Map([['README.md', b]]))).toMatch(/no model.json/);
    expect(await refused(new Map([['model.json', Buffer.alloc(2048)]]), 1024)).toMatch(/2048 bytes; deploy.maxPackageMiB allows 1024/);
    expect(await refused(new Map(Array.from({ length: 33 }, (_, i) => [`f${i}`, b] as [string, Uint8Array])))).toMatch(/33 files/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('prunes the oldest packages past the limit and left-over uploads, never a protected one', async () => {
    const dir = scratch('lg-store-');
    const store = new PackageStore(dir, silentLog);
    const pkgs = path.join(dir, 'packages');
    const names = ['a@1', 'b@2', 'c@3', 'd@4', '.incoming-x'];
    names.forEach((n, i) => {
      mkdirSync(path.join(pkgs, n), { recursive: true });
      const t = new Date(Date.now() - (10 - i) * 60_000);
      utimesSync(path.join(pkgs, n), t, t);
    });
    // An upload written but not yet kept (its model being checked) is not a crash's leftover.
    const live = await store.stage(new Map([['model.json', Buffer.from('{}')]]), 1024);
    await store.prune(2, new Set([path.join(pkgs, 'a@1')]));
    expect(readdirSync(pkgs).sort()).toEqual([path.basename(live), 'a@1', 'c@3', 'd@4'].sort());
    await store.discard(live);
    expect(readdirSync(pkgs).sort()).toEqual(['a@1', 'c@3', 'd@4']);
  });
});
