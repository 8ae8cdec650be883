/**
 * The process kubelet (devcluster/kubelet, a test harness standing in for a real kubelet) against the
 * real control plane: Jobs through the real Job controller, init/sidecar/main ordering and the STATUS
 * column kubectl derives, ErrImageNeverPull, deletion stopping processes, and projected tokens.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { isNotFound } from '../../api/kubeClient.ts';
import type { Pod } from '../../api/types.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('kubelet');
const client = ns.client;
const podPath = (name: string) => `/api/v1/namespaces/${ns.name}/pods/${name}`;

beforeAll(async () => {
  // Pods need the namespace's default ServiceAccount (created by the service-account controller).
  await waitFor(() => client.get(`/api/v1/namespaces/${ns.name}/serviceaccounts/default`), {
    message: 'default service account',
  });
});

async function createPod(pod: Record<string, unknown>): Promise<Pod> {
  return client.create<Pod>(`/api/v1/namespaces/${ns.name}/pods`, { apiVersion: 'v1', kind: 'Pod', ...pod });
}

/** The STATUS column of `kubectl get pod`. */
async function statusColumn(name: string): Promise<string> {
  const { stdout } = await kubectl(['get', 'pod', name, '--no-headers'], { namespace: ns.name });
  return stdout.trim().split(/\s+/)[2] ?? '';
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('process kubelet', () => {
  it('runs a Job with 3 completions through the real Job controller; kubectl logs prints the line', async () => {
    await kubectl(['apply', '-f', '-'], {
      namespace: ns.name,
      input: JSON.stringify({
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name: 'hello' },
        spec: {
          completions: 3,
          parallelism: 2,
          backoffLimit: 0,
          template: {
            spec: {
              restartPolicy: 'Never',
              containers: [
                {
                  name: 'hello',
                  image: 'busybox:1.36',
                  command: ['sh', '-c', 'echo hello from $POD_NAME'],
                  env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
                },
              ],
            },
          },
        },
      }),
    });
    await waitFor(
      async () => {
        const job = await client.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
          `/apis/batch/v1/namespaces/${ns.name}/jobs/hello`,
        );
        const failed = job.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
        if (failed) throw new Error(`job failed: ${JSON.stringify(job.status)}`);
        return job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True');
      },
      { timeoutMs: 60_000, message: 'Job hello Complete' },
    );
    const pods = await client.list<Pod>(`/api/v1/namespaces/${ns.name}/pods`, {
      labelSelector: 'job-name=hello',
    });
    const succeeded = pods.items.filter((p) => p.status?.phase === 'Succeeded');
    expect(succeeded.length).toBe(3);
    const name = succeeded[0]?.metadata.name ?? '';
    const { stdout } = await kubectl(['logs', name], { namespace: ns.name });
    expect(stdout).toBe(`hello from ${name}\n`);
    expect(await statusColumn(name)).toBe('Completed');
  });

  it('runs init container, native sidecar and main container in order; stops the sidecar after the main', async () => {
    const stamp = (what: string) => `echo "${what} $(date +%s%N)" >> /shared/order`;
    await createPod({
      metadata: { name: 'ordered' },
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 5,
        volumes: [{ name: 'shared', emptyDir: {} }],
        initContainers: [
          {
            name: 'setup',
            image: 'busybox',
            command: ['sh', '-c', `${stamp('init')}; sleep 1.5`],
            volumeMounts: [{ name: 'shared', mountPath: '/shared' }],
          },
          {
            name: 'side',
            image: 'busybox',
            restartPolicy: 'Always',
            command: [
              'sh',
              '-c',
              `${stamp('sidecar-start')}; trap '${stamp('sidecar-term')}; cat /shared/order; exit 0' TERM; ` +
                'while true; do sleep 0.05; done',
            ],
            volumeMounts: [{ name: 'shared', mountPath: '/shared' }],
          },
        ],
        containers: [
          {
            name: 'main',
            image: 'busybox',
            command: ['sh', '-c', `${stamp('main-start')}; sleep 1.5; ${stamp('main-end')}`],
            volumeMounts: [{ name: 'shared', mountPath: '/shared' }],
          },
        ],
      },
    });
    const seen: string[] = [];
    await waitFor(
      async () => {
        const s = await statusColumn('ordered');
        if (seen[seen.length - 1] !== s) seen.push(s);
        return s === 'Completed' || s === 'Error';
      },
      { timeoutMs: 30_000, initialIntervalMs: 50, maxIntervalMs: 100, message: 'pod ordered Completed' },
    );
    expect(seen).toContain('Init:0/2');
    expect(seen).toContain('Running');
    expect(seen[seen.length - 1]).toBe('Completed');
    // Everything after Init:0/2 comes in kubelet order.
    const order = ['Init:0/2', 'Init:1/2', 'PodInitializing', 'Running', 'Completed'];
    const idx = seen.filter((s) => s !== 'Pending').map((s) => order.indexOf(s));
    expect(idx.every((v, i) => v >= 0 && (i === 0 || v >= (idx[i - 1] ?? 0)))).toBe(true);

    // kubectl says Completed as soon as the main container has; the phase turns Succeeded once the
    // sidecar has stopped too (as with the real kubelet).
    const pod = await waitFor(
      async () => {
        const p = await client.get<Pod>(podPath('ordered'));
        return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed' ? p : undefined;
      },
      { timeoutMs: 15_000, message: 'pod ordered terminal' },
    );
    expect(pod.status?.phase).toBe('Succeeded');
    const side = pod.status?.initContainerStatuses?.find((c) => c.name === 'side');
    expect(side?.state?.terminated?.exitCode).toBe(0);
    const main = pod.status?.containerStatuses?.[0];
    expect(main?.state?.terminated?.reason).toBe('Completed');

    // The sidecar printed the shared order file on SIGTERM.
    const { stdout } = await kubectl(['logs', 'ordered', '-c', 'side'], { namespace: ns.name });
    const events = stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' '))
      .map(([what, ns_]) => ({ what, t: BigInt(ns_ ?? '0') }));
    const at = (what: string) => {
      const e = events.find((x) => x.what === what);
      if (!e) throw new Error(`no ${what} in ${stdout}`);
      return e.t;
    };
    expect(events.map((e) => e.what).sort()).toEqual(
      ['init', 'main-end', 'main-start', 'sidecar-start', 'sidecar-term'].sort(),
    );
    // The init container ran first; the sidecar is stopped only after the main container ended.
    expect(at('init') < at('sidecar-start')).toBe(true);
    expect(at('init') < at('main-start')).toBe(true);
    expect(at('main-start') < at('main-end')).toBe(true);
    expect(at('main-end') < at('sidecar-term')).toBe(true);
    // The main container starts once the sidecar has STARTED (its process runs; without a startup probe
    // the kubelet does not wait for the sidecar's first output, so their first lines may interleave).
    expect(Date.parse(side?.state?.terminated?.startedAt ?? '')).toBeLessThanOrEqual(
      Date.parse(main?.state?.terminated?.startedAt ?? ''),
    );
    expect(Number(side?.containerID?.replace('process://', ''))).toBeGreaterThan(0);
  });

  it("follows a running container's log with kubectl logs -f until it exits", async () => {
    await createPod({
      metadata: { name: 'counter' },
      spec: {
        restartPolicy: 'Never',
        containers: [
          {
            name: 'count',
            image: 'busybox',
            command: ['sh', '-c', 'for i in 1 2 3; do echo line $i; sleep 0.4; done; echo done >&2'],
          },
        ],
      },
    });
    await waitFor(
      async () => (await client.get<Pod>(podPath('counter'))).status?.containerStatuses?.[0]?.state?.running,
      { message: 'counter running' },
    );
    const { stdout } = await kubectl(['logs', '-f', 'counter', '-c', 'count'], { namespace: ns.name });
    expect(stdout).toBe('line 1\nline 2\nline 3\ndone\n');
    const tail = await kubectl(['logs', 'counter', '--tail=1', '--timestamps'], { namespace: ns.name });
    expect(tail.stdout).toMatch(/^\d{4}-\d\d-\d\dT\S+Z done\n$/);
  });

  it('reports an unknown image as ErrImageNeverPull with a clear message; the pod stays Pending', async () => {
    await createPod({
      metadata: { name: 'unknown-image' },
      spec: { containers: [{ name: 'web', image: 'nginx:1.27', command: ['nginx'] }] },
    });
    const pod = await waitFor(
      async () => {
        const p = await client.get<Pod>(podPath('unknown-image'));
        return p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ErrImageNeverPull'
          ? p
          : undefined;
      },
      { message: 'ErrImageNeverPull' },
    );
    const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
    expect(waiting?.message).toContain('nginx:1.27');
    expect(waiting?.message).toContain('busybox');
    expect(pod.status?.phase).toBe('Pending');
    expect(await statusColumn('unknown-image')).toBe('ErrImageNeverPull');
  });

  it('stops the processes of a deleted running pod and removes the pod', async () => {
    await createPod({
      metadata: { name: 'sleeper' },
      spec: {
        terminationGracePeriodSeconds: 3,
        containers: [{ name: 'sleep', image: 'busybox', command: ['sleep', '1000'] }],
      },
    });
    const pod = await waitFor(
      async () => {
        const p = await client.get<Pod>(podPath('sleeper'));
        return p.status?.containerStatuses?.[0]?.state?.running ? p : undefined;
      },
      { message: 'sleeper running' },
    );
    const pid = Number(pod.status?.containerStatuses?.[0]?.containerID?.replace('process://', ''));
    expect(pid).toBeGreaterThan(1);
    expect(isAlive(pid)).toBe(true);
    expect(await statusColumn('sleeper')).toBe('Running');
    await kubectl(['delete', 'pod', 'sleeper', '--wait=false'], { namespace: ns.name });
    await waitFor(
      async () => {
        try {
          await client.get(podPath('sleeper'));
          return false;
        } catch (err) {
          return isNotFound(err);
        }
      },
      { timeoutMs: 20_000, message: 'pod sleeper gone' },
    );
    expect(isAlive(pid)).toBe(false);
  });

  it('mounts a projected service-account token (audience konductor) bound to the pod', async () => {
    await createPod({
      metadata: { name: 'token' },
      spec: {
        volumes: [
          {
            name: 'tok',
            projected: {
              sources: [
                { serviceAccountToken: { audience: 'konductor', expirationSeconds: 600, path: 'token' } },
              ],
            },
          },
        ],
        containers: [
          {
            name: 'show',
            image: 'busybox',
            command: ['sh', '-c', 'cat /var/run/secrets/konductor/token; echo; sleep 1000'],
            volumeMounts: [{ name: 'tok', mountPath: '/var/run/secrets/konductor', readOnly: true }],
          },
        ],
      },
    });
    const token = await waitFor(
      async () => {
        const { stdout } = await kubectl(['logs', 'token'], { namespace: ns.name, allowFailure: true });
        return stdout.trim().length > 20 ? stdout.trim() : undefined;
      },
      { message: 'token printed' },
    );
    const review = await client.create<{
      status: { authenticated?: boolean; audiences?: string[]; user?: { extra?: Record<string, string[]> } };
    }>('/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, audiences: ['konductor'] },
    });
    expect(review.status.authenticated).toBe(true);
    expect(review.status.audiences).toEqual(['konductor']);
    expect(review.status.user?.extra?.['authentication.kubernetes.io/pod-name']).toEqual(['token']);
    // The mount is private to the container: nothing is mounted there on the host.
    const { readFileSync } = await import('node:fs');
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain('/var/run/secrets/konductor');
    await kubectl(['delete', 'pod', 'token', '--wait=false'], { namespace: ns.name });
  });
});
