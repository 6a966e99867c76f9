import { afterAll, afterEach } from 'vitest';
import { killAll } from '../helpers/child.js';
import { runFileEnd } from '../helpers/cleanup.js';
import { removeScratch } from '../helpers/scratch.js';

// Before every test file. No process a test started outlives it (killed with its whole group), and
// what a file made (temp folders, Redis prefixes) goes when it is done. Registered here, first, these
// hooks run after the file's own (vitest runs after-hooks last-registered first).
afterEach(killAll);
afterAll(async () => {
  await runFileEnd();
  removeScratch();
});
