import { afterAll, afterEach } from 'vitest';
import { killAll } from '../helpers/child.js';
import { runFileEnd } from '../helpers/cleanup.js';
import { removeScratch } from '../helpers/scratch.js';

// Before every test file. No process a test started outlives it (killed with its whole group), and
// what a file made (temp folders, Redis prefixes) goes when it is done. Registered here, first, these
// hooks run after the file's own (vitest runs after-hooks last-registered first).
afterEach(killAll);
// Every station's API is on by default at 8080: tests run stations side by side, so each takes a free
// port (children inherit it). A test about the port itself sets its own.
process.env.LINEGATE_API_PORT ??= '0';
afterAll(async () => {
  await runFileEnd();
  removeScratch();
});
