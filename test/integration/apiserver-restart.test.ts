/**
 * DESIGN §9: the invariants hold across an API server crash. This file runs its own control plane (the
 * shared one must not be restarted under other files), kills kube-apiserver with SIGKILL while pods hold
 * and wait, starts it again, and checks that the manager's informers resume and arbitration goes on:
 * no over-grant at any status version, every permit returns, new pods are admitted and granted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Informer } from '../../api/informer.ts';
import type { Pod, Semaphore } from '../../api/types.ts';
import { type DevCluster, startCluster } from '../../devcluster/index.ts';
import { installKonductor, type KonductorInstall } from '../../devcluster/konductor.ts';
import { type ProcessKubelet, startProcessKubelet } from '../../devcluster/kubelet/index.ts';
import { waitFor } from '../helpers/waitFor.ts';

const NS = 'default';
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${NS}/semaphores`;
const PODS = `/api/v1/namespaces/${NS}/pods`;

let cluster: DevCluster;
let kubelet: ProcessKubelet;
let konductor: KonductorInstall;
let watcher: Informer<Semaphore>;
const violations: string[] = [];
let versionsSeen = 0;

beforeAll(async () => {
  cluster = await startCluster({ log: () => undefined });
  kubelet = await startProcessKubelet({ cluster });
  konductor = await installKonductor(cluster, { log: () => undefined });
  watcher = new Informer<Semaphore>(cluster.client, {
    path: SEMS,
    onEvent: (ev) => {
      if (ev.type === 'deleted') return;
      versionsSeen++;
      const s = ev.object;
      const held = (s.status?.holders ?? []).reduce((n, h) => n + h.permits, 0);
      if (held > s.spec.permits)
        violations.push(`${s.metadata.resourceVersion}: ${held} > ${s.spec.permits}`);
    },
  }).start();
  await watcher.synced;
});

afterAll(async () => {
  watcher?.stop();
  await konductor?.uninstall();
  await kubelet?.stop();
  await cluster?.stop();
});

async function createPod(name: string, script: string): Promise<void> {
  await cluster.client.create(PODS, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations: { 'konductor.io/semaphore': 'survivor' } },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', script] }],
    },
  });
}
const getPod = (name: string) => cluster.client.get<Pod>(`${PODS}/${name}`);
const getSem = () => cluster.client.get<Semaphore>(`${SEMS}/survivor`);

describe('kube-apiserver crash', () => {
  it('arbitration resumes after the API server restarts, without over-grant or lost permits', async () => {
    await cluster.client.create(SEMS, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name: 'survivor' },
      spec: { permits: 1 },
    });
    await createPod('holder', 'sleep 3600');
    const firstToken = (
      await waitFor(async () => (await getSem()).status?.holders?.find((h) => h.pod === 'holder'), {
        message: 'holder granted',
      })
    ).token;
    await createPod('waiter-1', 'true');
    await createPod('waiter-2', 'true');
    await waitFor(async () => (await getSem()).status?.waiting === 2, { message: 'two waiting' });

    await cluster.restartApiserver('SIGKILL');

    // Release the permit through the restarted API server, and admit a new pod through the webhook.
    await cluster.client.delete(`${PODS}/holder`);
    await createPod('after-restart', 'true');
    await waitFor(
      async () => {
        const pods = await Promise.all(['waiter-1', 'waiter-2', 'after-restart'].map(getPod));
        return pods.every((p) => p.status?.phase === 'Succeeded');
      },
      { timeoutMs: 60_000, message: 'every waiter granted and completed after the restart' },
    );
    await waitFor(async () => (await getSem()).status?.inUse === 0, { message: 'every permit returned' });
    const sem = await getSem();
    // four grants: consecutive tokens from the first, none lost or repeated
    expect(sem.status?.nextToken).toBe(firstToken + 4);
    expect(violations).toEqual([]);
    expect(versionsSeen).toBeGreaterThan(3);
  });
});
