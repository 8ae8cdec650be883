/**
 * The control plane's own floor under a handoff or a grant round trip (DESIGN §8: "one etcd write plus two
 * watch deliveries"), measured in the same run as the figure it is the floor of: a pod status PATCH (what
 * the kubelet sends when a container exits) until a watch delivers it, and a primitive's status PUT (what
 * the manager sends when it grants) until a watch delivers it. The probe objects live in a namespace of
 * their own (no manager watches it, no kubelet runs the pod: it is bound to a Node without one); the PATCH
 * is the kubelet's kind of patch (container statuses, a changing message), the PUT is a copy of the real
 * primitive's current status with a changed observedGeneration, so the API server does the same work
 * (validation, etcd write, watch fan-out) as for the real one.
 */
import { randomBytes } from 'node:crypto';
import { Informer } from '../api/informer.ts';
import type { KubeClient } from '../api/kubeClient.ts';
import type { Pod } from '../api/types.ts';
import { BENCH_NODE, createNamespace, ensureBenchNode, round } from './common.ts';
import { injectedPod, succeededStatus } from './fakePods.ts';

export type ProbeKind = 'Semaphore' | 'Lease';

export interface ControlPlaneProbe {
  /** PATCH pods/status sent -> its response. */
  patchResponseMs: number;
  /** PATCH pods/status sent -> a watch delivered the new resourceVersion. */
  patchWatchMs: number;
  /** PUT <primitive>/status sent -> its response. */
  putResponseMs: number;
  /** PUT <primitive>/status sent -> a watch delivered it. */
  putWatchMs: number;
  /** patchWatchMs + putWatchMs: the floor of one handoff. */
  floorMs: number;
}

interface Meta {
  metadata: { resourceVersion?: string };
  status?: Record<string, unknown>;
}

/** Records when a watch delivered each resourceVersion; waits for one. */
class SeenVersions {
  private readonly seen = new Map<string, number>();
  private readonly waiters = new Map<string, (at: number) => void>();
  saw(rv: string | undefined): void {
    if (!rv) return;
    const at = performance.now();
    const w = this.waiters.get(rv);
    if (w) {
      this.waiters.delete(rv);
      w(at);
    } else this.seen.set(rv, at);
  }
  when(rv: string | undefined, timeoutMs = 30_000): Promise<number> {
    const at = rv ? this.seen.get(rv) : undefined;
    if (at !== undefined || !rv) {
      if (rv) this.seen.delete(rv);
      return Promise.resolve(at ?? Number.NaN);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(rv);
        reject(new Error(`no watch event for resourceVersion ${rv} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(rv, (t) => {
        clearTimeout(timer);
        resolve(t);
      });
    });
  }
}

const PLURAL: Record<ProbeKind, string> = { Semaphore: 'semaphores', Lease: 'leases' };

export interface ControlPlaneFloor {
  /** One probe: the PATCH, then the PUT (with a copy of `status`), each timed until its watch event. */
  probe(i: number, status: Record<string, unknown> | undefined): Promise<ControlPlaneProbe>;
  stop(): void;
}

/**
 * `statusWriter`: the client that reads and PUTs the primitive's status, where only the manager may write it
 * (the chart's `status-writer` admission policy, on the real node): a client with the manager's
 * ServiceAccount token. Default: `client`.
 */
export async function startControlPlaneFloor(
  client: KubeClient,
  kind: ProbeKind,
  statusWriter: KubeClient = client,
): Promise<ControlPlaneFloor> {
  const ns = `bench-floor-${randomBytes(3).toString('hex')}`;
  await createNamespace(client, ns);
  await ensureBenchNode(client, BENCH_NODE);
  const podName = 'floor-probe';
  await client.create(`/api/v1/namespaces/${ns}/pods`, injectedPod(podName, {}, 'floor'));
  const primitivePath = `/apis/sync.konductor.io/v1/namespaces/${ns}/${PLURAL[kind]}`;
  await client.create(primitivePath, {
    apiVersion: 'sync.konductor.io/v1',
    kind,
    metadata: { name: 'floor-probe' },
    spec: kind === 'Semaphore' ? { permits: 1 } : { ttl: '10m' },
  });
  const pods = new SeenVersions();
  const primitives = new SeenVersions();
  const podInformer = new Informer<Pod>(client, {
    path: `/api/v1/namespaces/${ns}/pods`,
    onEvent: (ev) => pods.saw(ev.object.metadata.resourceVersion),
  }).start();
  const primitiveInformer = new Informer<Meta>(client, {
    path: primitivePath,
    onEvent: (ev) => primitives.saw(ev.object.metadata.resourceVersion),
  }).start();
  await Promise.all([podInformer.synced, primitiveInformer.synced]);
  return {
    async probe(i, status) {
      const t0 = performance.now();
      const patched = await client.patchMerge<Meta>(`/api/v1/namespaces/${ns}/pods/${podName}/status`, {
        status: { ...succeededStatus(), message: `floor probe ${i}` },
      });
      const t1 = performance.now();
      const patchSeen = await pods.when(patched.metadata.resourceVersion);
      const current = await statusWriter.get<Meta>(`${primitivePath}/floor-probe`);
      const t2 = performance.now();
      const put = await statusWriter.replace<Meta>(`${primitivePath}/floor-probe/status`, {
        ...current,
        status: { ...(status ?? {}), observedGeneration: i + 1 },
      });
      const t3 = performance.now();
      const putSeen = await primitives.when(put.metadata.resourceVersion);
      const patchWatchMs = patchSeen - t0;
      const putWatchMs = putSeen - t2;
      return {
        patchResponseMs: round(t1 - t0, 3),
        patchWatchMs: round(patchWatchMs, 3),
        putResponseMs: round(t3 - t2, 3),
        putWatchMs: round(putWatchMs, 3),
        floorMs: round(patchWatchMs + putWatchMs, 3),
      };
    },
    stop() {
      podInformer.stop();
      primitiveInformer.stop();
      void client.delete(`/api/v1/namespaces/${ns}`).catch(() => undefined);
    },
  };
}
