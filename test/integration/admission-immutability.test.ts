/**
 * Admission on the real control plane (issue 15, item 2 and the smaller items): a running holder's
 * konductor metadata cannot be edited (`kubectl label pod h konductor.io/managed-` used to release it), while
 * every other update — other labels, finalizer removals, also with the manager down — passes; a pod that
 * brings its own `konductor-wait` is refused; a Job or CronJob whose pod template carries a bad annotation is
 * denied at the Job; a pod asking for more permits than its Semaphore has gets a warning.
 */
import { describe, expect, it } from 'vitest';
import { IMMUTABLE_METADATA_MESSAGE } from '../../api/admissionPolicies.ts';
import type { Pod, Semaphore } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { mainRunning, namespacePods, release, untilReleased } from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('immutable');
const konductor = useKonductor(ns);
const client = ns.client;
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`;
const nsPods = namespacePods(ns);
const { getPod, uniq } = nsPods;

const { createSemaphore } = nsPods;
const getSem = (name: string) => client.get<Semaphore>(`${SEMS}/${name}`);
const k = (args: string[]) => kubectl(args, { namespace: ns.name, allowFailure: true });

describe('a holder’s konductor metadata is immutable after admission', () => {
  it('kubectl label konductor.io/managed- and annotate --overwrite konductor.io/semaphore are refused; the holder keeps its permit', async () => {
    await createSemaphore('imm', 1);
    const marker = uniq('imm');
    await nsPods.createPod('h', {
      annotations: { 'konductor.io/semaphore': 'imm' },
      script: untilReleased(marker),
    });
    await nsPods.createPod('next', {
      annotations: { 'konductor.io/semaphore': 'imm' },
      script: 'sleep 3600',
    });
    await waitFor(async () => mainRunning(await getPod('h')), { message: 'h runs' });
    await waitFor(async () => (await getSem('imm')).status?.waiting === 1, { message: 'next waits' });

    const unlabel = await k(['label', 'pod', 'h', 'konductor.io/managed-']);
    expect(unlabel.code).not.toBe(0);
    expect(unlabel.stderr).toContain(IMMUTABLE_METADATA_MESSAGE);
    expect(unlabel.stderr).toContain('(changed: konductor.io/managed)');

    const retarget = await k(['annotate', '--overwrite', 'pod', 'h', 'konductor.io/semaphore=other']);
    expect(retarget.code).not.toBe(0);
    expect(retarget.stderr).toContain(IMMUTABLE_METADATA_MESSAGE);
    expect(retarget.stderr).toContain('(changed: konductor.io/semaphore)');

    for (const edit of [
      ['annotate', 'pod', 'h', 'konductor.io/semaphore-', 'konductor.io/injected-'],
      ['annotate', 'pod', 'h', 'konductor.io/priority=5'],
      ['label', '--overwrite', 'pod', 'h', 'konductor.io/managed=false'],
    ]) {
      const r = await k(edit);
      expect(r.code, edit.join(' ')).not.toBe(0);
      expect(r.stderr, edit.join(' ')).toContain(IMMUTABLE_METADATA_MESSAGE);
    }

    // Everything else stays editable.
    expect((await k(['label', 'pod', 'h', 'team=a'])).code).toBe(0);
    expect((await k(['annotate', 'pod', 'h', 'example.com/note=x'])).code).toBe(0);

    const pod = await getPod('h');
    expect(pod.metadata.labels?.['konductor.io/managed']).toBe('true');
    expect(pod.metadata.annotations?.['konductor.io/semaphore']).toBe('imm');
    const sem = await getSem('imm');
    expect(sem.status?.holders?.map((h) => h.pod)).toEqual(['h']);
    expect(mainRunning(await getPod('next'))).toBe(false);
    await release(marker);
    await waitFor(async () => (await getSem('imm')).status?.holders?.[0]?.pod === 'next', {
      message: 'next holds once h is done',
    });
  });

  it('other updates pass even while the manager is down: a finalizer removal, the garbage collector orphaning a Job’s pod', async () => {
    await createSemaphore('fin', 1);
    await nsPods.createPod('fin', {
      annotations: { 'konductor.io/semaphore': 'fin' },
      script: 'exit 0',
      finalizers: ['example.com/keep'],
    });
    await kubectl(['create', '-f', '-'], {
      namespace: ns.name,
      input: JSON.stringify({
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name: 'orphaned', annotations: { 'konductor.io/semaphore': 'fin' } },
        spec: {
          backoffLimit: 0,
          template: {
            spec: {
              restartPolicy: 'Never',
              containers: [{ name: 'main', image: 'busybox', command: ['true'] }],
            },
          },
        },
      }),
    });
    await nsPods.waitForPhase('fin', 'Succeeded', { timeoutMs: 60_000 });
    const jobPod = await waitFor(
      async () => (await client.list<Pod>(nsPods.PODS, { labelSelector: 'job-name=orphaned' })).items[0],
      { message: 'the Job’s pod' },
    );
    await konductor.install.stopManager('SIGTERM');
    try {
      // kube-controller-manager's garbage collector removes the pod's ownerReference (a pod UPDATE).
      await k(['delete', 'job', 'orphaned', '--cascade=orphan']);
      await waitFor(
        async () => ((await getPod(jobPod.metadata.name ?? '')).metadata.ownerReferences ?? []).length === 0,
        {
          message: 'the garbage collector to orphan the Job’s pod while the manager is down',
          timeoutMs: 60_000,
        },
      );
      const r = await k([
        'patch',
        'pod',
        'fin',
        '--type=json',
        '-p',
        '[{"op":"remove","path":"/metadata/finalizers"}]',
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect((await getPod('fin')).metadata.finalizers).toBeUndefined();
      // A konductor change is still refused (the webhook is called and down: failurePolicy Fail).
      const edit = await k(['label', 'pod', 'fin', 'konductor.io/managed-']);
      expect(edit.code).not.toBe(0);
    } finally {
      await konductor.install.startManager();
    }
  });
});

describe('admission of pods and workloads', () => {
  it('a pod bringing its own konductor-wait container is refused (the name is reserved)', async () => {
    const r = await kubectl(['create', '-f', '-'], {
      namespace: ns.name,
      allowFailure: true,
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'impostor', annotations: { 'konductor.io/semaphore': 'imm' } },
        spec: {
          restartPolicy: 'Never',
          initContainers: [{ name: 'konductor-wait', image: 'busybox', command: ['true'] }],
          containers: [{ name: 'main', image: 'busybox', command: ['true'] }],
        },
      } satisfies Pod),
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/init container konductor-wait is not the agent konductor injects/);
  });

  it('a Job whose pod template carries a bad annotation is denied at the Job, with the message', async () => {
    const job = (name: string, where: 'template' | 'job') => ({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name, ...(where === 'job' ? { annotations: { 'konductor.io/permits': 'two' } } : {}) },
      spec: {
        template: {
          metadata: where === 'template' ? { annotations: { 'konductor.io/permits': 'two' } } : {},
          spec: {
            restartPolicy: 'Never',
            containers: [{ name: 'main', image: 'busybox', command: ['true'] }],
          },
        },
      },
    });
    for (const where of ['template', 'job'] as const) {
      const r = await kubectl(['create', '-f', '-'], {
        namespace: ns.name,
        allowFailure: true,
        input: JSON.stringify(job(`bad-${where}`, where)),
      });
      expect(r.code, where).not.toBe(0);
      expect(r.stderr, where).toContain('admission webhook "workloads.konductor.io" denied the request');
      expect(r.stderr, where).toContain('konductor.io/permits');
    }
    const cron = await kubectl(['create', '-f', '-'], {
      namespace: ns.name,
      allowFailure: true,
      input: JSON.stringify({
        apiVersion: 'batch/v1',
        kind: 'CronJob',
        metadata: { name: 'bad-cron' },
        spec: { schedule: '0 0 1 1 *', jobTemplate: { spec: job('x', 'template').spec } },
      }),
    });
    expect(cron.code).not.toBe(0);
    expect(cron.stderr).toContain('konductor.io/permits');
  });

  it('warns when konductor.io/permits exceeds the Semaphore’s permits', async () => {
    await createSemaphore('small', 2);
    await waitFor(async () => (await k(['get', 'semaphore', 'small'])).code === 0);
    const r = await waitFor(
      async () => {
        const name = uniq('greedy');
        const res = await kubectl(['create', '-f', '-'], {
          namespace: ns.name,
          input: JSON.stringify({
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: {
              name,
              annotations: { 'konductor.io/semaphore': 'small', 'konductor.io/permits': '3' },
            },
            spec: {
              restartPolicy: 'Never',
              containers: [{ name: 'main', image: 'busybox', command: ['true'] }],
            },
          }),
        });
        // The manager's cache may not have the new Semaphore yet: then the warning says it does not exist.
        return /exceeds/.test(res.stderr) ? res : undefined;
      },
      { message: 'the permits warning' },
    );
    expect(r.stderr).toContain(
      `Warning: konductor.io/permits: 3 exceeds the 2 permits of Semaphore ${ns.name}/small`,
    );
  });
});
