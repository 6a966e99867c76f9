import { afterAll } from 'vitest';

/**
 * What a test file made that must go when the file is done (Redis prefixes, ...), run by
 * test/setup/each-file.ts after each file: helpers stay free of hooks of their own, which with
 * shared modules (vitest's isolate: false) would register for the first file only.
 */
const atEnd: (() => unknown)[] = [];

export function atFileEnd(fn: () => unknown): void {
  atEnd.push(fn);
}

export async function runFileEnd(): Promise<void> {
  for (const fn of atEnd.splice(0)) await fn();
}

// Also registered here for suites without test/setup/each-file.ts (the fault suite).
if (process.env.VITEST !== undefined) afterAll(runFileEnd);
