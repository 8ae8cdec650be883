/**
 * Scheduling-gate wait mode on a real node (the real kube-scheduler and kubelet, konductor installed with the
 * chart): a Job of 6 pods on a Semaphore of 2 permits with `konductor.io/wait-mode: scheduling-gate`. The two
 * holders block until the test releases them (a file it creates in their container with `kubectl exec`), so the
 * waiting pods are seen for certain: `SchedulingGated` in `kubectl get pods`, no node. Ground truth for "at most
 * 2 at once" is the containers' own clock (/proc/uptime of the node, printed by each main container).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { kubectl, tableRows } from '../helpers/kubectl.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { e2eNamespace, ensureInstalled, intervals, kubectlJson, maxConcurrent, stamped } from './helpers.ts';

const ns = e2eNamespace('waitmode');
const k = (args: string[], opts: { input?: string; allowFailure?: boolean } = {}) =>
  kubectl(args, { namespace: ns.name, ...opts });

const PODS = 6;
const RELEASE_FILE = '/tmp/release';

const job = stringify({
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name: 'gated' },
  spec: {
    parallelism: PODS,
    completions: PODS,
    backoffLimit: 0,
    template: {
      metadata: {
        annotations: { 'konductor.io/semaphore': 'two', 'konductor.io/wait-mode': 'scheduling-gate' },
      },
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: 'work',
            image: 'busybox:1.37',
            command: [
              'sh',
              '-c',
              stamped(`cat /var/run/konductor/grant.json; until [ -e ${RELEASE_FILE} ]; do sleep 0.2; done`),
            ],
          },
        ],
      },
    },
  },
});

interface PodList {
  items: {
    metadata: { name: string };
    spec: { nodeName?: string; schedulingGates?: { name: string }[] };
    status: { phase?: string; containerStatuses?: { name: string; state?: { running?: unknown } }[] };
  }[];
}

const jobPods = () => kubectlJson<PodList>(['get', 'pods', '-l', 'job-name=gated'], ns.name);

describe('scheduling-gate wait mode on a real node', () => {
  beforeAll(() => ensureInstalled(), 300_000);

  it('6 pods on 2 permits: the waiting ones SchedulingGated without a node, never more than 2 at once, permits back to 0', async () => {
    await k(['apply', '-f', '-'], {
      input: 'apiVersion: sync.konductor.io/v1\nkind: Semaphore\nmetadata: {name: two}\nspec: {permits: 2}\n',
    });
    await k(['apply', '-f', '-'], { input: job });

    // kubectl get pods: 2 Running (holding, blocked until released), 4 SchedulingGated.
    await waitFor(
      async () => {
        const rows = tableRows((await k(['get', 'pods', '-l', 'job-name=gated'])).stdout);
        const running = rows.filter((r) => r.STATUS === 'Running');
        const gated = rows.filter((r) => r.STATUS === 'SchedulingGated');
        return running.length === 2 && gated.length === PODS - 2;
      },
      {
        timeoutMs: 120_000,
        initialIntervalMs: 200,
        maxIntervalMs: 500,
        message: '2 Running and 4 SchedulingGated',
      },
    );
    // The waiting pods are not on any node: they carry konductor's gate and no spec.nodeName.
    const waiting = (await jobPods()).items.filter((p) => p.status.phase === 'Pending');
    expect(waiting).toHaveLength(PODS - 2);
    for (const p of waiting) {
      expect(p.spec.nodeName, `${p.metadata.name} has no node`).toBeUndefined();
      expect(p.spec.schedulingGates?.map((g) => g.name)).toContain('konductor.io/wait');
    }
    // kubectl get semaphore two: IN-USE 2, the others WAITING (the status follows the pods' events).
    await waitFor(
      async () => {
        const [row] = tableRows((await k(['get', 'semaphore', 'two'])).stdout);
        return row?.['IN-USE'] === '2' && row.WAITING === String(PODS - 2);
      },
      { timeoutMs: 30_000, message: `IN-USE 2, WAITING ${PODS - 2}` },
    );

    // Release whichever pods run their main container, until the Job completes.
    await waitFor(
      async () => {
        const pods = (await jobPods()).items;
        for (const p of pods) {
          const running = p.status.containerStatuses?.some((c) => c.name === 'work' && c.state?.running);
          if (running)
            await k(['exec', p.metadata.name, '-c', 'work', '--', 'touch', RELEASE_FILE], {
              allowFailure: true,
            });
        }
        return pods.length === PODS && pods.every((p) => p.status.phase === 'Succeeded');
      },
      {
        timeoutMs: 240_000,
        initialIntervalMs: 300,
        maxIntervalMs: 1000,
        message: `all ${PODS} pods to succeed`,
      },
    );
    await k(['wait', '--for=condition=complete', 'job/gated', '--timeout=60s']);

    // By the containers' own clock: never more than 2 main containers at once.
    const stamps = await intervals(ns.name, 'job-name=gated', 'work');
    expect(stamps).toHaveLength(PODS);
    expect(maxConcurrent(stamps)).toBe(2);
    // Every pod read its grant (konductor-wait confirmed it) with a fencing token.
    for (const s of stamps) expect((await k(['logs', s.pod, '-c', 'work'])).stdout).toMatch(/"token": \d+/);

    // kubectl get semaphore two: IN-USE back to 0, nobody waiting.
    await waitFor(
      async () => {
        const [row] = tableRows((await k(['get', 'semaphore', 'two'])).stdout);
        return row?.['IN-USE'] === '0' && row.WAITING === '0';
      },
      { timeoutMs: 30_000, message: 'IN-USE 0, WAITING 0' },
    );
  });
});
