import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];

/** A fresh temp folder, removed when the test file is done (test/setup/each-file.ts): tests clean up after themselves. */
export function scratch(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Removes every folder scratch() made so far. */
export function removeScratch(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

// Also registered here for suites without test/setup/each-file.ts (the fault suite): with isolated files this runs for each one.
if (process.env.VITEST !== undefined) afterAll(removeScratch);
