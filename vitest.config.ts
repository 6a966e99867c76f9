import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Real sockets and child processes: files in parallel, on our 2-core machines no more than 2 at once.
    maxWorkers: 2,
  },
});
