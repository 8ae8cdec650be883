/**
 * A Gate condition on another namespace (issue 15, smaller items): read only when that namespace opts in with
 * the annotation konductor.io/gate-readers; until then the condition is not met and says how to allow it, and
 * the manager does not even watch that namespace's Jobs (it watches the Jobs of the namespaces that waiting
 * Gates may read, never every Job in the cluster).
 */

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gate } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { jobManifest, namespacePods } from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('gate-ns');
const konductor = useKonductor(ns);
const client = ns.client;
const GATES = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/gates`;
const nsPods = namespacePods(ns);
/** Another tenant's namespace. */
const other = `kt-gate-other-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  await client.create('/api/v1/namespaces', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: other, labels: { 'konductor.io/test-namespace': 'true' } },
  });
});
afterAll(async () => {
  await client.delete(`/api/v1/namespaces/${other}`).catch(() => undefined);
});

const managerLog = () => readFileSync(konductor.install.manager()!.logPath, 'utf8');
const watchingJobsOf = (namespace: string) =>
  managerLog()
    .split('\n')
    .some((l) => l.includes('"watching Jobs') && l.includes(`"namespace":"${namespace}"`));

describe('a Gate condition on another namespace', () => {
  it('is not met until that namespace opts in with konductor.io/gate-readers, then opens the gate', async () => {
    await client.create(`/apis/batch/v1/namespaces/${other}/jobs`, jobManifest('prep', 'true'));
    await waitFor(
      async () =>
        (
          await client.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
            `/apis/batch/v1/namespaces/${other}/jobs/prep`,
          )
        ).status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True'),
      { timeoutMs: 60_000, message: `the Job ${other}/prep completed` },
    );
    await client.create(GATES, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Gate',
      metadata: { name: 'cross' },
      spec: { conditions: [{ type: 'Job', name: 'prep', namespace: other, state: 'Complete' }] },
    });
    await nsPods.createPod('behind-cross', { annotations: { 'konductor.io/gate': 'cross' }, script: 'true' });
    const refused = await waitFor(
      async () => {
        const g = await client.get<Gate>(`${GATES}/cross`);
        return g.status?.conditionStatuses?.[0] ? g : undefined;
      },
      { message: 'the gate evaluated its condition' },
    );
    expect(refused.status?.phase).toBe('Waiting');
    expect(refused.status?.conditionStatuses[0]).toMatchObject({
      met: false,
      message:
        `job ${other}/prep: namespace ${other} does not let gates of namespace ${ns.name} read it ` +
        `(its owner can allow it: kubectl annotate namespace ${other} konductor.io/gate-readers=${ns.name})`,
    });
    expect(watchingJobsOf(other), `the manager watches the Jobs of ${other}`).toBe(false);

    await client.patchMerge(`/api/v1/namespaces/${other}`, {
      metadata: { annotations: { 'konductor.io/gate-readers': ns.name } },
    });
    await waitFor(async () => (await client.get<Gate>(`${GATES}/cross`)).status?.phase === 'Open', {
      message: 'the gate opens once the namespace allows it',
    });
    await nsPods.waitForPhase('behind-cross', 'Succeeded', { timeoutMs: 60_000, message: 'the pod ran' });
    expect(watchingJobsOf(other)).toBe(true);
  });
});
