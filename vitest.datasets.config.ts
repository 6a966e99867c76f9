import { defineConfig } from 'vitest/config';

/**
 * The data-set suite (`npm run test:datasets`): the shipped models and stations
 * replayed on the held-out images of ../shared/datasets (hundreds of images per
 * case, minutes of CPU), recounting what their model cards claim. Its files end
 * in `.dataset.ts` so that `npm test` (test/**\/*.test.ts), which checks the same
 * code paths on the fixtures in the repository, stays fast; `.ci/run` runs both.
 * Each case skips, and says so, where ../shared is not there.
 */
export default defineConfig({
  test: {
    include: ['test/datasets/**/*.dataset.ts'],
    globalSetup: ['test/setup/global.ts'],
    setupFiles: ['test/setup/each-file.ts'],
    // Each case is onnxruntime on one image after another: two at once fill this 2-core machine.
    maxWorkers: 2,
    testTimeout: 300_000,
    hookTimeout: 60_000,
  },
});
