import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Once per run: dist/ built (spawned CLIs load compiled JavaScript) and a folder for what the run shares.
    globalSetup: ['test/setup/global.ts'],
    // Before each file: no child process outlives its test, and temp folders and Redis prefixes go with their file.
    setupFiles: ['test/setup/each-file.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Real sockets, timers and child processes: much of a file's time is waiting, so 3 files at once on our
    // 2-core machines (measured in one session: 174 s against 206 s with 2, the same CPU time, no failure).
    maxWorkers: 3,
    // Test files share a worker's modules (node-opcua, onnxruntime, sharp, zod load once per worker, not
    // once per file: that was most of the run's time). Helpers keep no per-file state but through
    // test/setup/each-file.ts; the probe plugins and queue prefixes are unique per use.
    isolate: false,
  },
});
