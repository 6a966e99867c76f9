import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
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
  const started = Date.now();
  return () => {
    rmSync(runDir, { recursive: true, force: true });
    // Every test works in a temp root of its own: a station rooted in the repository (for its models and
    // fixtures) with a sink or the default history left on writes into the repository's var/. Fail the run.
    const written = writtenSince(path.resolve(import.meta.dirname, '../../var'), started);
    if (written.length > 0) throw new Error(`tests wrote into the repository's var/ (give the station a temp root, or history: false and no sinks): ${written.slice(0, 10).join(', ')}`);
  };
}

/** Files under `dir` (its pki/ aside: the demo's own certificates) changed since `since`. */
function writtenSince(dir: string, since: number): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    // pki/: the demo's own certificates; vitest*.json: the runner's own reports (.ci/run writes them there).
    .filter((f) => !f.startsWith('pki') && !/^vitest[\w-]*\.json$/.test(f))
    .map((f) => path.join(dir, f))
    .filter((f) => {
      try {
        const st = statSync(f);
        return st.isFile() && st.mtimeMs >= since;
      } catch {
        return false;
      }
    });
}
