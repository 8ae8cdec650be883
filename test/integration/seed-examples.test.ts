/**
 * The examples as a user runs them: the seed chart README's four YAML snippets (examples/seed-*.yaml) apply
 * as written and are arbitrated, and the Job example of each of Lease, Barrier and Gate runs to completion.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Barrier, Gate, Job, Lease, Pod, Semaphore } from '../../api/types.ts';
import { REPO_ROOT } from '../../devcluster/konductor.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { namespacePods } from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('examples');
useKonductor(ns);
const client = ns.client;
const base = `/apis/sync.konductor.io/v1/namespaces/${ns.name}`;
const nsPods = namespacePods(ns);
const { PODS, JOBS } = nsPods;

const example = (file: string) => join(REPO_ROOT, 'examples', file);
const apply = (file: string) => kubectl(['apply', '-f', example(file)], { namespace: ns.name });

async function jobDone(name: string): Promise<'Complete' | 'Failed' | undefined> {
  const job = await client.get<Job>(`${JOBS}/${name}`);
  const c = job.status?.conditions?.find(
    (x) => x.status === 'True' && (x.type === 'Complete' || x.type === 'Failed'),
  );
  return c?.type as 'Complete' | 'Failed' | undefined;
}
async function waitJob(name: string, timeoutMs = 60_000): Promise<void> {
  const result = await waitFor(() => jobDone(name), { timeoutMs, message: `Job ${name} finished` });
  expect(result, `Job ${name}`).toBe('Complete');
}
const podsOf = async (job: string) =>
  (await client.list<Pod>(PODS, { labelSelector: `job-name=${job}` })).items;
const logOf = (pod: Pod, container: string) => nsPods.containerLog(pod.metadata.name ?? '', container);

describe("the seed README's four snippets", () => {
  it('apply as written and are arbitrated', async () => {
    for (const f of ['seed-semaphore.yaml', 'seed-barrier.yaml', 'seed-lease.yaml', 'seed-gate.yaml']) {
      const r = await apply(f);
      expect(r.stdout).toMatch(/created/);
    }
    const sem = await waitFor(
      async () => {
        const s = await client.get<Semaphore>(`${base}/semaphores/my-semaphore`);
        return s.status?.phase ? s : undefined;
      },
      { message: 'my-semaphore has a status' },
    );
    expect(sem.status).toMatchObject({ phase: 'Ready', available: 3, inUse: 0 });
    const lease = await waitFor(
      async () => {
        const l = await client.get<Lease>(`${base}/leases/my-lease`);
        return l.status?.phase ? l : undefined;
      },
      { message: 'my-lease has a status' },
    );
    expect(lease.status?.phase).toBe('Available');
    const barrier = await waitFor(
      async () => {
        const b = await client.get<Barrier>(`${base}/barriers/my-barrier`);
        return b.status?.phase ? b : undefined;
      },
      { message: 'my-barrier has a status' },
    );
    expect(barrier.status).toMatchObject({ phase: 'Waiting', arrived: 0 });
    const gate = await waitFor(
      async () => {
        const g = await client.get<Gate>(`${base}/gates/my-gate`);
        return g.status?.phase ? g : undefined;
      },
      { message: 'my-gate has a status' },
    );
    expect(gate.status?.phase).toBe('Waiting');
    expect(gate.status?.conditionStatuses.map((c) => c.message)).toEqual([
      `job ${ns.name}/preprocessing-job not found`,
      `semaphore ${ns.name}/resource-semaphore not found`,
    ]);
    const all = await kubectl(['get', 'konductor'], { namespace: ns.name });
    for (const name of ['my-semaphore', 'my-barrier', 'my-lease', 'my-gate'])
      expect(all.stdout).toContain(name);

    // The gate opens once both of its conditions hold.
    await client.create(`${base}/semaphores`, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name: 'resource-semaphore' },
      spec: { permits: 2 },
    });
    await client.create(JOBS, {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'preprocessing-job' },
      spec: {
        backoffLimit: 0,
        template: {
          spec: { restartPolicy: 'Never', containers: [{ name: 'p', image: 'busybox', command: ['true'] }] },
        },
      },
    });
    await waitFor(async () => (await client.get<Gate>(`${base}/gates/my-gate`)).status?.phase === 'Open', {
      timeoutMs: 30_000,
      message: 'my-gate Open',
    });
  });
});

describe('the Job examples run to completion', () => {
  it('examples/lease-job.yaml: 3 pods hold db-migration one at a time, each with its own token', async () => {
    await apply('lease-job.yaml');
    await waitJob('migrate');
    const tokens: number[] = [];
    for (const pod of await podsOf('migrate')) {
      const log = await logOf(pod, 'migrate');
      const token = /"token":\s*(\d+)/.exec(log)?.[1];
      expect(token, `token in the log of ${pod.metadata.name}: ${log}`).toBeTruthy();
      tokens.push(Number(token));
    }
    expect(new Set(tokens).size).toBe(3);
    await waitFor(
      async () => (await client.get<Lease>(`${base}/leases/db-migration`)).status?.phase === 'Available',
      { message: 'db-migration Available' },
    );
  });

  it('examples/barrier-job.yaml: 4 workers start together', async () => {
    await apply('barrier-job.yaml');
    await waitJob('workers');
    const b = await client.get<Barrier>(`${base}/barriers/start-together`);
    expect(b.status).toMatchObject({ phase: 'Open', arrived: 4 });
    const pods = await podsOf('workers');
    expect(pods).toHaveLength(4);
    for (const pod of pods) expect(await logOf(pod, 'worker')).toMatch(/starts/);
  });

  it('examples/gate-job.yaml: the report runs after preprocessing completed', async () => {
    const manifest = readFileSync(example('gate-job.yaml'), 'utf8');
    expect(manifest).toMatch(/name: preprocessing/);
    await apply('gate-job.yaml');
    await waitJob('preprocessing');
    await waitJob('report');
    const g = await client.get<Gate>(`${base}/gates/after-preprocessing`);
    expect(g.status?.phase).toBe('Open');
    const [report] = await podsOf('report');
    expect(await logOf(report!, 'report')).toContain('building the report');
    expect(await logOf(report!, 'konductor-wait')).toContain(`gate ${ns.name}/after-preprocessing is open`);
  });
});
