/**
 * The manager's pod is deleted while a Job runs on 2 permits: the Deployment brings a new one, the
 * waiting agents reconnect, the Job completes, and by the containers' own clock there were never
 * more than 2 main containers at once.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { kubectl } from '../helpers/kubectl.ts';
import { waitFor } from '../helpers/waitFor.ts';
import {
  e2eNamespace,
  ensureInstalled,
  intervals,
  kubectlJson,
  MANAGER_SELECTOR,
  maxConcurrent,
  RELEASE_NS,
  stamped,
} from './helpers.ts';

const ns = e2eNamespace('restart');
const k = (args: string[], input?: string) =>
  kubectl(args, { namespace: ns.name, ...(input !== undefined ? { input } : {}) });

interface PodList {
  items: { metadata: { name: string; deletionTimestamp?: string }; status: { phase?: string } }[];
}

const job = stringify({
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name: 'work' },
  spec: {
    parallelism: 6,
    completions: 6,
    backoffLimit: 0,
    template: {
      metadata: { annotations: { 'konductor.io/semaphore': 'two' } },
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'main', image: 'busybox:1.37', command: ['sh', '-c', stamped('sleep 3')] }],
      },
    },
  },
});

describe('manager pod deleted mid-run on a real node', () => {
  beforeAll(() => ensureInstalled(), 300_000);

  it('the Deployment replaces it and the Job completes with never more than 2 at once', async () => {
    await k(
      ['apply', '-f', '-'],
      'apiVersion: sync.konductor.io/v1\nkind: Semaphore\nmetadata: {name: two}\nspec: {permits: 2}\n',
    );
    await k(['apply', '-f', '-'], job);
    // Mid-run: two hold permits, the others wait.
    await waitFor(
      async () => {
        const rows = (await k(['get', 'pods', '--no-headers'])).stdout.trim().split('\n');
        return (
          rows.filter((r) => /\sRunning\s/.test(r)).length === 2 && rows.some((r) => r.includes('Init:0/2'))
        );
      },
      { timeoutMs: 90_000, initialIntervalMs: 100, message: '2 running, others waiting' },
    );
    const before = await kubectlJson<PodList>(['get', 'pods', '-l', MANAGER_SELECTOR], RELEASE_NS);
    const old = before.items.map((p) => p.metadata.name);
    expect(old).toHaveLength(1);
    await kubectl(['delete', 'pod', '-l', MANAGER_SELECTOR, '--wait=false'], { namespace: RELEASE_NS });

    await waitFor(
      async () => {
        const now = await kubectlJson<PodList>(['get', 'pods', '-l', MANAGER_SELECTOR], RELEASE_NS);
        const fresh = now.items.filter((p) => !old.includes(p.metadata.name));
        const ready = (
          await kubectlJson<{ status: { readyReplicas?: number } }>(
            ['get', 'deployment', 'konductor'],
            RELEASE_NS,
          )
        ).status.readyReplicas;
        return fresh.length === 1 && ready === 1;
      },
      { timeoutMs: 120_000, message: 'a new manager pod, Ready' },
    );
    await k(['wait', '--for=condition=complete', 'job/work', '--timeout=240s']);
    const stamps = await intervals(ns.name, 'job-name=work', 'main');
    expect(stamps).toHaveLength(6);
    expect(maxConcurrent(stamps)).toBeLessThanOrEqual(2);
    await waitFor(
      async () =>
        ((await kubectlJson<{ status: { inUse?: number } }>(['get', 'semaphore', 'two'], ns.name)).status
          .inUse ?? 0) === 0,
      { timeoutMs: 30_000, message: 'IN-USE back to 0' },
    );
  });
});
