/**
 * The floor under a scheduling-gate handoff's second half: what Kubernetes itself takes from a scheduling gate's
 * removal to a pod's main container running, with nothing of konductor's. A bare pod (busybox, no konductor
 * annotation, so no injected containers) is created gated, in a namespace of its own, for the same scheduler
 * profile and node as the benchmark's pods; a probe removes its gate (one JSON patch, as the manager sends it) and
 * reads the wall clock its main container printed first thing (`date +%s%N`, from the process kubelet's log
 * file): PATCH sent -> scheduler sees the pod -> binds it -> the kubelet starts it. The next pod is created right
 * after, so it sits gated (seen by the scheduler) long before its probe.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeClient } from '../api/kubeClient.ts';
import type { Pod } from '../api/types.ts';
import { createNamespace, round, waitUntil } from './common.ts';

const FLOOR_GATE = 'bench.konductor.io/floor';

export interface UngateFloor {
  /** Removes the waiting pod's gate; ms from the PATCH sent to its main container's first instruction. */
  probe(i: number): Promise<number>;
  stop(): void;
}

export async function startUngateFloor(
  client: KubeClient,
  opts: { rootDir: string; schedulerName: string; nodeSelector: Record<string, string> },
): Promise<UngateFloor> {
  const ns = `bench-ungate-${randomBytes(3).toString('hex')}`;
  await createNamespace(client, ns);
  const pods = `/api/v1/namespaces/${ns}/pods`;
  let n = 0;
  const createGated = () =>
    client.create<Pod>(pods, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `ungate-${n++}` },
      spec: {
        schedulerName: opts.schedulerName,
        nodeSelector: opts.nodeSelector,
        schedulingGates: [{ name: FLOOR_GATE }],
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 0,
        containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', 'date +%s%N'] }],
      },
    });
  let next = await createGated();
  return {
    async probe() {
      const pod = next;
      const name = pod.metadata.name ?? '';
      const logFile = join(opts.rootDir, 'pods', pod.metadata.uid ?? '', 'logs', 'main-0.log');
      const t0 = performance.timeOrigin + performance.now();
      await client.patchJson(`${pods}/${name}`, [
        { op: 'test', path: '/spec/schedulingGates', value: [{ name: FLOOR_GATE }] },
        { op: 'remove', path: '/spec/schedulingGates' },
      ]);
      const startedNs = await waitUntil(
        `floor pod ${name} to start`,
        () => existsSync(logFile) && /^\S+ stdout F (\d{15,})$/m.exec(readFileSync(logFile, 'utf8'))?.[1],
        60_000,
        10,
      );
      const startedMs = Number(BigInt(startedNs) / 1000n) / 1000;
      void client
        .delete(`${pods}/${name}`, { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0 })
        .catch(() => undefined);
      next = await createGated();
      return round(startedMs - t0, 3);
    },
    stop() {
      void client.delete(`/api/v1/namespaces/${ns}`).catch(() => undefined);
    },
  };
}
