import { defineConfig } from 'vitest/config';

// Projects: `unit` (pure, no cluster), `integration` (one real control plane per run with the process
// kubelet, started by test/globalSetup.ts; each test file works in its own namespace), and on a real
// node (devcluster/realnode/, root, one per machine): `realnode` (the node's own life cycle: start,
// crash, cleanup) and `e2e` (konductor installed with helm, on real containers). scripts/test.ts runs
// them in that order, the last two in vitest runs of their own (they cannot share the machine's one
// real node). 2 cores: at most 2 workers.
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
      {
        test: {
          name: 'realnode',
          include: ['test/realnode/**/*.test.ts'],
          testTimeout: 900_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/e2e/globalSetup.ts'],
          testTimeout: 600_000,
          hookTimeout: 900_000,
          // One file at a time: they share the release (each makes sure it is installed the way it needs).
          fileParallelism: false,
        },
      },
    ],
  },
});
