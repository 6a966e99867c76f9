import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { build } from '../../bin/build.mjs';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A temp folder of this test run's own (removed at its end): what the tests share, e.g. linegate's PKI. */
    runDir: string;
  }
}

/**
 * Once per test run: dist/ built (a no-op when it is fresh), so every CLI a test spawns loads
 * compiled JavaScript and never transpiles; and a folder for what the run's tests share.
 */
export default async function setup(project: TestProject): Promise<() => void> {
  await build();
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'lg-test-run-'));
  mkdirSync(path.join(runDir, 'pki'));
  project.provide('runDir', runDir);
  return () => rmSync(runDir, { recursive: true, force: true });
}
