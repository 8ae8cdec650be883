import { defineConfig } from 'vitest/config';

// Two projects: `unit` (pure, no cluster) and `integration` (one real control plane per run, started
// by test/globalSetup.ts; each test file works in its own namespace). 2 cores: at most 2 workers.
export default defineConfig({
  test: {
    maxWorkers: 2,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/globalSetup.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          maxWorkers: 2,
        },
      },
    ],
  },
});
