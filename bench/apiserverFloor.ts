/**
 * The floor of the grant throughput: how fast the API server alone absorbs the writes a drain needed, on
 * the same machine, right after the drain (bench/throughput.ts alternates drain, floor, drain, floor).
 * Replayed against objects of a namespace of their own that no manager watches: the same number of pod
 * status PATCHes (the kubelet's reports that the holders finished, one per pod as in the drain, as many
 * in flight as the caller says: throughput.ts passes the permits, at most 50), of primitive status PUTs
 * (each a copy of the drain's largest status with a changed observedGeneration, spread over 16 primitives
 * written in parallel: the floor is the API server's rate for these writes, not a chain of round trips —
 * one writer per primitive is our design, so its cost belongs in the ratio) and of Event POSTs (at the
 * manager's event pool concurrency), all three streams at once. The Events load the API server meanwhile
 * but are not waited for: the manager sends them off the grant path (best effort, a queue that drains
 * after the grants), so in a drain they end after the last grant too. Grants per second at the floor =
 * the drain's grants / the time the PATCHes and PUTs took.
 */
import { randomBytes } from 'node:crypto';
import type { KubeClient } from '../api/kubeClient.ts';
import { BENCH_NODE, createNamespace, ensureBenchNode, mapConcurrent, round } from './common.ts';
import { createPods, injectedPod, succeededStatus } from './fakePods.ts';

export interface ReplaySpec {
  /** Pod status PATCHes (one per grant: the holder's finish). */
  patches: number;
  /** Status PUTs the drain made. */
  puts: number;
  /** Event POSTs the manager made. */
  events: number;
  /** PATCHes in flight at once (the Semaphore's permits: that many holders finish at a time). */
  patchConcurrency: number;
  /** Status writes in flight at once (at most 16: one per floor primitive). */
  putConcurrency: number;
  /** Event POSTs in flight (the manager's event pool). */
  eventConcurrency: number;
  /** A primitive status to copy into the PUTs (the drained Semaphore's). */
  status: Record<string, unknown> | undefined;
}

export interface ReplayResult {
  /** Until the last PATCH and PUT were answered (the Events may still be running: see above). */
  seconds: number;
  patchSeconds: number;
  putSeconds: number;
  eventSeconds: number;
  requests: number;
}

/** The objects the replays write to; created once per benchmark (not timed). */
export interface ApiserverFloor {
  replay(spec: ReplaySpec): Promise<ReplayResult>;
  stop(): void;
}

/** Status writers in parallel: enough to make the API server, not a chain of round trips, the limit. */
const SEMAPHORES = 16;

/** `pods`: as many as the largest drain has grants (each PATCH goes to a pod of its own, as in a drain). */
export async function startApiserverFloor(client: KubeClient, pods: number): Promise<ApiserverFloor> {
  const ns = `bench-floor-${randomBytes(3).toString('hex')}`;
  await createNamespace(client, ns);
  await ensureBenchNode(client, BENCH_NODE);
  const podObjects = Array.from({ length: pods }, (_, i) => injectedPod(`floor-${i}`, {}, 'floor'));
  await createPods(client, ns, podObjects, 32);
  const semPath = `/apis/sync.konductor.io/v1/namespaces/${ns}/semaphores`;
  for (let i = 0; i < SEMAPHORES; i++)
    await client.create(semPath, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name: `floor-${i}` },
      spec: { permits: 50 },
    });
  let generation = 0;
  return {
    async replay(spec) {
      const t0 = performance.now();
      const timed = async (f: () => Promise<unknown>) => {
        await f();
        return (performance.now() - t0) / 1000;
      };
      const [patchSeconds, putSeconds, eventSeconds] = await Promise.all([
        timed(() =>
          mapConcurrent(
            Array.from({ length: spec.patches }, (_, i) => i),
            spec.patchConcurrency,
            (i) =>
              client.patchMerge(`/api/v1/namespaces/${ns}/pods/floor-${i % pods}/status`, {
                status: { ...succeededStatus(), message: `floor ${generation}-${i}` },
              }),
          ),
        ),
        timed(() =>
          mapConcurrent(
            Array.from({ length: Math.min(SEMAPHORES, Math.max(1, spec.putConcurrency)) }, (_, w) => w),
            SEMAPHORES,
            async (w) => {
              const share = Math.ceil(spec.puts / Math.min(SEMAPHORES, Math.max(1, spec.putConcurrency)));
              let current = await client.get<Record<string, unknown>>(`${semPath}/floor-${w}`);
              for (let i = 0; i < share && w * share + i < spec.puts; i++) {
                current = await client.replace<Record<string, unknown>>(`${semPath}/floor-${w}/status`, {
                  ...current,
                  status: { ...(spec.status ?? {}), observedGeneration: ++generation },
                });
              }
            },
          ),
        ),
        timed(() =>
          mapConcurrent(
            Array.from({ length: spec.events }, (_, i) => i),
            spec.eventConcurrency,
            (i) =>
              client.create(`/api/v1/namespaces/${ns}/events`, {
                apiVersion: 'v1',
                kind: 'Event',
                metadata: { generateName: `floor-${i % pods}.`, namespace: ns },
                involvedObject: { apiVersion: 'v1', kind: 'Pod', name: `floor-${i % pods}`, namespace: ns },
                reason: 'Granted',
                message: `floor event ${i}`,
                type: 'Normal',
                source: { component: 'konductor' },
                reportingComponent: 'konductor',
                reportingInstance: 'floor',
                firstTimestamp: new Date().toISOString(),
                lastTimestamp: new Date().toISOString(),
                count: 1,
              }),
          ),
        ),
      ]);
      return {
        seconds: round(Math.max(patchSeconds, putSeconds), 3),
        patchSeconds: round(patchSeconds, 3),
        putSeconds: round(putSeconds, 3),
        eventSeconds: round(eventSeconds, 3),
        requests: spec.patches + spec.puts + spec.events,
      };
    },
    stop() {
      void client.delete(`/api/v1/namespaces/${ns}`).catch(() => undefined);
    },
  };
}
