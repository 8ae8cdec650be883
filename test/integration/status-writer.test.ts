/**
 * Only the manager writes the status of konductor primitives (issue 15, item 6): the status is the record of
 * who holds what, so a user whose Role covers `*\/status` (and even the cluster admin) cannot write a holder
 * in, while the manager — running as its own ServiceAccount, not as the admin — still grants. Enforced by the
 * `status-writer` ValidatingAdmissionPolicy the devcluster installs as the chart does.
 */
import { describe, expect, it } from 'vitest';
import type { Semaphore } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { mainRunning, namespacePods } from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('status-writer');
const konductor = useKonductor(ns);
const client = ns.client;
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`;
const nsPods = namespacePods(ns);
const USER = 'jane';

const forgedHolder = (uid: string) =>
  JSON.stringify({
    status: {
      inUse: 1,
      holders: [{ pod: 'intruder', uid, permits: 1, token: 99, grantedAt: new Date().toISOString() }],
    },
  });

describe('the status of konductor primitives', () => {
  it('the manager runs as its own ServiceAccount, not as the admin', () => {
    expect(konductor.install.managerUsername).toBe(`system:serviceaccount:${ns.name}:konductor`);
  });

  it('a user with a Role covering */status cannot write a holder; the manager still can', async () => {
    // jane may read the primitives and write any status subresource in this namespace.
    await client.create(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns.name}/roles`, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'status-editor' },
      rules: [
        { apiGroups: ['sync.konductor.io'], resources: ['semaphores'], verbs: ['get', 'list'] },
        { apiGroups: ['*'], resources: ['*/status'], verbs: ['get', 'update', 'patch'] },
      ],
    });
    await kubectl(['create', 'rolebinding', 'status-editor', '--role=status-editor', `--user=${USER}`], {
      namespace: ns.name,
    });
    await nsPods.createSemaphore('guarded', 1);
    const can = await kubectl(
      [
        'auth',
        'can-i',
        'patch',
        'semaphores.sync.konductor.io/guarded',
        '--subresource=status',
        `--as=${USER}`,
      ],
      {
        namespace: ns.name,
        allowFailure: true,
      },
    );
    expect(can.stdout.trim()).toBe('yes'); // RBAC lets her: only the policy stops her

    const patch = (as?: string) =>
      kubectl(
        [
          'patch',
          'semaphore',
          'guarded',
          '--subresource=status',
          '--type=merge',
          '-p',
          forgedHolder('00000000-0000-0000-0000-000000000000'),
          ...(as ? [`--as=${as}`] : []),
        ],
        { namespace: ns.name, allowFailure: true },
      );
    const denied = await waitFor(
      async () => {
        const r = await patch(USER);
        return r.code !== 0 ? r : undefined; // a new policy is enforced once the API server has loaded it
      },
      { message: 'the status-writer policy to be enforced' },
    );
    expect(denied.stderr).toContain("ValidatingAdmissionPolicy 'konductor-devcluster-");
    expect(denied.stderr).toContain(
      `only the konductor manager (system:serviceaccount:${ns.name}:konductor) may write it, not ${USER}`,
    );
    // Not even the cluster admin writes it.
    const admin = await patch();
    expect(admin.code).not.toBe(0);
    expect(admin.stderr).toContain('only the konductor manager');
    expect((await client.get<Semaphore>(`${SEMS}/guarded`)).status?.holders ?? []).toEqual([]);

    // The manager still writes it: a pod is granted.
    await nsPods.createPod('granted', {
      annotations: { 'konductor.io/semaphore': 'guarded' },
      script: 'sleep 3600',
    });
    await waitFor(async () => mainRunning(await nsPods.getPod('granted')), { message: 'granted runs' });
    const sem = await client.get<Semaphore>(`${SEMS}/guarded`);
    expect(sem.status?.holders?.map((h) => h.pod)).toEqual(['granted']);
    expect(sem.status?.inUse).toBe(1);
  });
});
