/**
 * The README's quick start on a real node, as a user types it: examples/semaphore.yaml (2 permits) and
 * examples/semaphore-job.yaml (6 pods). The Job's container script runs unchanged, wrapped only to print
 * its start and end on the node's clock (ground truth for "at most 2 at once").
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { kubectl, tableRows } from '../helpers/kubectl.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { e2eNamespace, ensureInstalled, intervals, maxConcurrent, REPO, stamped } from './helpers.ts';

const ns = e2eNamespace('quickstart');

/** examples/semaphore-job.yaml with its script wrapped in start/end stamps. */
function stampedExampleJob(): string {
  const job = parse(readFileSync(join(REPO, 'examples', 'semaphore-job.yaml'), 'utf8'));
  const container = job.spec.template.spec.containers[0];
  const [sh, c, script] = container.command as string[];
  container.command = [sh, c, stamped(script as string)];
  return stringify(job);
}

describe('README quick start on a real node', () => {
  beforeAll(() => ensureInstalled(), 300_000);

  it('6 pods on 2 permits: Init:0/2 while waiting, the position in the wait log, never more than 2 at once, IN-USE back to 0', async () => {
    const k = (args: string[], input?: string) =>
      kubectl(args, { namespace: ns.name, ...(input !== undefined ? { input } : {}) });
    await k(['apply', '-f', join(REPO, 'examples', 'semaphore.yaml')]);
    await k(['apply', '-f', '-'], stampedExampleJob());

    // kubectl get pods: 2 Running, 4 Init:0/2.
    const snapshot = await waitFor(
      async () => {
        const rows = (await k(['get', 'pods', '--no-headers'])).stdout
          .trim()
          .split('\n')
          .map((l) => l.split(/\s+/));
        const running = rows.filter((r) => r[2] === 'Running');
        const waiting = rows.filter((r) => r[2] === 'Init:0/2');
        return running.length === 2 && waiting.length === 4 ? { waiting } : undefined;
      },
      { timeoutMs: 90_000, initialIntervalMs: 100, maxIntervalMs: 200, message: '2 Running and 4 Init:0/2' },
    );

    // kubectl get semaphore batch-slots: PERMITS 2, IN-USE 2, PHASE Full while pods wait.
    await waitFor(
      async () => {
        const [row] = tableRows((await k(['get', 'semaphore', 'batch-slots'])).stdout);
        return row?.PERMITS === '2' &&
          row['IN-USE'] === '2' &&
          Number(row.WAITING) > 0 &&
          /^\d+s$/.test(row['OLDEST-WAIT'] ?? '') &&
          row.PHASE === 'Full'
          ? row
          : undefined;
      },
      {
        timeoutMs: 30_000,
        initialIntervalMs: 100,
        maxIntervalMs: 200,
        message: 'PERMITS 2, IN-USE 2, WAITING > 0, OLDEST-WAIT in seconds, PHASE Full',
      },
    );

    // kubectl logs <waiting pod> -c konductor-wait: its place in the queue.
    const waitingPod = snapshot.waiting[0]?.[0] ?? '';
    const waitLog = (await k(['logs', waitingPod, '-c', 'konductor-wait'])).stdout;
    expect(waitLog).toMatch(
      new RegExp(
        `waiting for semaphore ${ns.name}/batch-slots: position \\d of \\d \\(2/2 permits in use\\)`,
      ),
    );

    await k(['wait', '--for=condition=complete', 'job/batch', '--timeout=180s']);
    const stamps = await intervals(ns.name, 'job-name=batch', 'work');
    expect(stamps).toHaveLength(6);
    expect(maxConcurrent(stamps)).toBe(2);

    // kubectl get semaphore batch-slots: IN-USE back to 0.
    await waitFor(
      async () => {
        const [row] = tableRows((await k(['get', 'semaphore', 'batch-slots'])).stdout);
        return row?.PERMITS === '2' &&
          row['IN-USE'] === '0' &&
          row.WAITING === '0' &&
          row['OLDEST-WAIT'] === ''
          ? row
          : undefined;
      },
      { timeoutMs: 30_000, message: 'PERMITS 2, IN-USE 0, WAITING 0, OLDEST-WAIT empty' },
    );
    // Every pod read its grant with a fencing token.
    for (const s of stamps) {
      const log = (await k(['logs', s.pod, '-c', 'work'])).stdout;
      expect(log).toMatch(/"token": \d+/);
    }
  });
});
