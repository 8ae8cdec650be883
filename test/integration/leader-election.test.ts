/**
 * Two managers with --leader-elect: one leads (a coordination.k8s.io Lease names it), the other only
 * serves; on SIGTERM the leader hands over at once (it releases the Lease), and grants go on.
 */
import { describe, expect, it } from 'vitest';
import type { Pod, Semaphore } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('leader');
const args = ['--leader-elect', `--leader-election-namespace=${ns.name}`];
const first = useKonductor(ns, args, 'a');
const second = useKonductor(ns, args, 'b');
const client = ns.client;
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`;
const PODS = `/api/v1/namespaces/${ns.name}/pods`;
const LEASE = `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/konductor-leader`;

interface CoordinationLease {
  spec: { holderIdentity?: string | null; leaseTransitions?: number };
}

async function runPod(name: string): Promise<void> {
  await client.create<Pod>(PODS, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations: { 'konductor.io/semaphore': 'elected' } },
    spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'busybox', command: ['true'] }] },
  });
  await waitFor(async () => (await client.get<Pod>(`${PODS}/${name}`)).status?.phase === 'Succeeded', {
    timeoutMs: 60_000,
    message: `${name} granted and Succeeded`,
  });
}

describe('leader election', () => {
  it('one leader grants; after its SIGTERM the other takes over at once', async () => {
    await client.create(SEMS, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name: 'elected' },
      spec: { permits: 1 },
    });
    const lease = await waitFor(
      async () => {
        const l = await client.get<CoordinationLease>(LEASE);
        return l.spec.holderIdentity ? l : undefined;
      },
      { message: 'a leader' },
    );
    // The first decision sets the token counter (docs/arbitration.md, "Fencing tokens").
    const base = await waitFor(
      async () => (await client.get<Semaphore>(`${SEMS}/elected`)).status?.nextToken,
      {
        message: 'the first decision',
      },
    );
    const pids = [first.install.manager()?.pid, second.install.manager()?.pid];
    const leaderPid = Number(lease.spec.holderIdentity?.split('_').pop());
    expect(pids).toContain(leaderPid);
    await runPod('before-handover');

    const leader = leaderPid === pids[0] ? first : second;
    await leader.install.stopManager('SIGTERM');
    const next = await waitFor(
      async () => {
        const l = await client.get<CoordinationLease>(LEASE);
        const pid = Number(l.spec.holderIdentity?.split('_').pop());
        return l.spec.holderIdentity && pid !== leaderPid ? l : undefined;
      },
      { timeoutMs: 10_000, message: 'the other manager leads (well before the 15 s lease duration)' },
    );
    expect(next.spec.leaseTransitions ?? 0).toBeGreaterThanOrEqual(0);
    // The webhook configuration points at the last installed manager: restart the stopped one if it was
    // that one, so admission keeps working; it rejoins as a follower.
    if (leader === second) await second.install.startManager();
    await runPod('after-handover');
    const sem = await client.get<Semaphore>(`${SEMS}/elected`);
    expect(sem.status?.nextToken).toBe(base + 2); // two grants, one token each, none lost or repeated
  });
});
