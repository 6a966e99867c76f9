import { defineConfig } from 'vitest/config';

/** The normal suite's once-per-run setup: dist/ built, so every spawned CLI starts from compiled JavaScript. */
const GLOBAL_SETUP = 'test/setup/global.ts';

/**
 * The fault suite (`npm run test:faults`): real processes against a real Redis
 * and a real OPC UA server, one fault at a time. Its files end in `.fault.ts`
 * so that `npm test` (test/**\/*.test.ts) never runs them alongside the normal
 * suite: they kill processes, restart servers, mount a tmpfs and load the machine.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.fault.ts'],
    globalSetup: [GLOBAL_SETUP],
    // No child process outlives its case; temp folders and Redis prefixes go with their file.
    setupFiles: ['test/setup/each-file.ts'],
    // One case at a time: each loads this 2-core machine on purpose and measures it.
    fileParallelism: false,
    maxWorkers: 1,
    sequence: { concurrent: false },
    testTimeout: 180_000,
    hookTimeout: 60_000,
    teardownTimeout: 60_000,
  },
});
