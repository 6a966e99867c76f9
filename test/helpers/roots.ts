import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import { scratch } from './scratch.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * A station root of one test's own: the model packages and fixtures/ linked from the repository (read only),
 * calibration/ copied (calibrate writes there), and whatever the station writes (var/: results,
 * spools, archives) inside it, but for linegate's PKI: var/pki is the run's shared one (see sharedPki).
 * Removed when the test file is done; never the repository's var/.
 */
export function testRoot(prefix = 'lg-root-'): string {
  const root = scratch(prefix);
  // models/ of its own, each package linked: a test may add a package of its own beside them.
  mkdirSync(path.join(root, 'models'));
  for (const name of readdirSync(path.join(ROOT, 'models'))) symlinkSync(path.join(ROOT, 'models', name), path.join(root, 'models', name));
  symlinkSync(path.join(ROOT, 'fixtures'), path.join(root, 'fixtures'), 'dir');
  cpSync(path.join(ROOT, 'calibration'), path.join(root, 'calibration'), { recursive: true });
  mkdirSync(path.join(root, 'stations'));
  // linegate's PKI (var/pki, the default) is the run's: see sharedPki.
  mkdirSync(path.join(root, 'var'));
  symlinkSync(sharedPki(), path.join(root, 'var', 'pki'), 'dir');
  return root;
}

/**
 * linegate's OPC UA PKI for every PLC link of this test run: one certificate per machine, as in a
 * plant, made by the first link that needs it (node-opcua locks it while it does). Each test's
 * own root would otherwise make its own, at seconds of RSA key generation each.
 */
export function sharedPki(): string {
  return runFolder('pki');
}

/** A folder of this test run's own (removed at its end), for what its tests share: e.g. a simulated PLC's PKI. */
export function runFolder(name: string): string {
  return path.join(runDir(), name);
}

let ownRunDir: string | undefined;

/** The run's folder from test/setup/global.ts; in a suite without it (the fault suite), one of this worker's own. */
function runDir(): string {
  const provided = inject('runDir') as string | undefined;
  if (provided !== undefined) return provided;
  if (ownRunDir === undefined) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lg-test-run-'));
    mkdirSync(path.join(dir, 'pki'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    ownRunDir = dir;
  }
  return ownRunDir;
}
