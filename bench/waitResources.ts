/**
 * `wait-resources`: the node resources that waiting pods hold, in both wait modes, for issue 13's example (a
 * Job of 1,000 pods behind a 10-permit Semaphore).
 *
 * Method. Per mode a fresh devcluster (control plane with kube-controller-manager, webhook and manager in one
 * namespace), the real kube-scheduler (kubeScheduler.ts, default profile) and Nodes registered without a
 * kubelet (capacity and allocatable written into their status, Ready, untainted): the scheduler binds pods to
 * them and nothing ever runs. A Job of N pods (completions = parallelism = N), its template annotated
 * `konductor.io/semaphore` (and `konductor.io/wait-mode`), is created through the API: the Job controller
 * creates the pods, the webhook injects them, the scheduler places what it may, the manager grants the permits.
 * As nothing runs, no holder ever finishes: the cluster reaches a steady state in which every pod is bound,
 * gated or unschedulable and the Semaphore has all its permits out; it is measured then, from the API: the
 * pods bound to a node (spec.nodeName), the sum of their effective requests as kube-scheduler counts them
 * (podRequests.ts: the injected init container and native sidecar included) and the pod slots they take.
 *
 * Floor: the pods holding a permit (bound, read from the Semaphore's status in the same snapshot) and their
 * requests: what any queue has to let onto the nodes. A ratio of 1 means the waiting pods hold nothing.
 *
 * Limits: without a kubelet there are no sandboxes, pod IPs or processes; on a real node each bound pod also
 * takes an IP, and in init-container mode its `konductor-wait` process (~56 MiB RSS, docs/benchmarks.md) beyond
 * its requests. The Nodes are sized so that the whole Job fits (the figure is what the waiting pods hold, not
 * what a full cluster would leave unscheduled).
 */
import { randomBytes } from 'node:crypto';
import { ANNOTATIONS, SCHEDULING_GATE, type WaitMode } from '../api/constants.ts';
import type { KubeClient } from '../api/kubeClient.ts';
import type { Pod, Semaphore } from '../api/types.ts';
import { type BenchCluster, startBenchCluster } from './cluster.ts';
import {
  type BenchOptions,
  byMode,
  describeEnvironment,
  environment,
  type Figure,
  mapConcurrent,
  printFigures,
  round,
  waitUntil,
  writeResult,
} from './common.ts';
import { flooredFigure } from './floors.ts';
import { startKubeScheduler, untaintNode } from './kubeScheduler.ts';
import { parseQuantity, podRequests, type Requests, sumRequests } from './podRequests.ts';

/** Each kubelet-less Node: a common VM size, and the kubelet's default pod limit. */
export const NODE_CAPACITY = { cpu: '16', memory: '64Gi', pods: '110' } as const;
/** The Job's main container: a small batch task. */
export const MAIN_REQUESTS = { cpu: '100m', memory: '128Mi' } as const;
const PODS_PER_NODE = 100;
const NODE_LABEL = 'konductor.io/bench-resources';
const MiB = 2 ** 20;

interface ModeResult {
  mode: WaitMode;
  pods: number;
  permits: number;
  nodes: number;
  /** Pods bound to a node (spec.nodeName). */
  bound: number;
  /** Of the bound pods, those holding a permit. */
  boundHolders: number;
  holders: number;
  /** Pods still carrying konductor's scheduling gate. */
  gated: number;
  /** Pods the scheduler found no room for (PodScheduled False, Unschedulable). */
  unschedulable: number;
  /** Sum of the bound pods' effective requests, and of the holders' among them (cores, MiB). */
  boundRequests: { cpu: number; memoryMiB: number };
  holderRequests: { cpu: number; memoryMiB: number };
  /** One Job pod's effective requests as admitted (injected containers included). */
  podRequests: { cpu: number; memoryMiB: number };
  /** Share of the Nodes' allocatable taken by bound pods (%). */
  shareOfAllocatable: { cpu: number; memory: number; pods: number };
  secondsToSteady: number;
}

const asFigures = (r: Requests) => ({ cpu: round(r.cpu, 3), memoryMiB: round(r.memory / MiB, 1) });

/** Registers `count` Nodes without a kubelet: capacity, allocatable, Ready, and no taint. */
async function registerNodes(client: KubeClient, count: number): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => `bench-res-node-${String(i).padStart(3, '0')}`);
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await mapConcurrent(names, 8, async (name) => {
    await client.create('/api/v1/nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        labels: { [NODE_LABEL]: 'true', 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux' },
      },
    });
    await untaintNode(client, name); // Ready from the start (its status below)
    await client.patchStrategic(`/api/v1/nodes/${name}/status`, {
      status: {
        capacity: NODE_CAPACITY,
        allocatable: NODE_CAPACITY,
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'KubeletReady',
            message: 'kubelet-less benchmark node (bench/waitResources.ts)',
            lastHeartbeatTime: now,
            lastTransitionTime: now,
          },
        ],
      },
    });
  });
  return names;
}

const isGated = (p: Pod) => (p.spec.schedulingGates ?? []).some((g) => g.name === SCHEDULING_GATE);
const unschedulable = (p: Pod) =>
  (p.status?.conditions ?? []).some(
    (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
  );

async function measureMode(
  mode: WaitMode,
  pods: number,
  permits: number,
  timeoutMs: number,
  log: (l: string) => void,
): Promise<ModeResult> {
  const bc: BenchCluster = await startBenchCluster({ name: 'wait-resources', log });
  try {
    const { client } = bc.cluster;
    const ns = bc.namespace;
    await startKubeScheduler(bc.cluster, { log });
    const nodeCount = Math.max(2, Math.ceil(pods / PODS_PER_NODE));
    await registerNodes(client, nodeCount);
    const semName = 'batch-slots';
    await client.create(`/apis/sync.konductor.io/v1/namespaces/${ns}/semaphores`, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name: semName },
      spec: { permits },
    });
    const job = `batch-${randomBytes(2).toString('hex')}`;
    const started = Date.now();
    await client.create(`/apis/batch/v1/namespaces/${ns}/jobs`, {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: job },
      spec: {
        completions: pods,
        parallelism: pods,
        backoffLimit: 0,
        template: {
          metadata: { annotations: { [ANNOTATIONS.semaphore]: semName, [ANNOTATIONS.waitMode]: mode } },
          spec: {
            restartPolicy: 'Never',
            nodeSelector: { [NODE_LABEL]: 'true' },
            containers: [
              {
                name: 'work',
                image: 'busybox',
                command: ['sh', '-c', 'sleep 3600'],
                resources: { requests: MAIN_REQUESTS },
              },
            ],
          },
        },
      },
    });
    log(
      `  ${mode}: Job ${job} of ${pods} pods on Semaphore ${semName} (${permits} permits), ${nodeCount} Nodes`,
    );
    // Steady: every pod exists and is bound, gated or unschedulable, every permit is out to a bound pod, and
    // the number of bound pods has not changed for 3 polls in a row.
    let lastBound = -1;
    let stablePolls = 0;
    let lastLine = '';
    const snapshot = await waitUntil(
      `${mode}: the Job's ${pods} pods to settle`,
      async () => {
        const list = (
          await client.list<Pod>(`/api/v1/namespaces/${ns}/pods`, { labelSelector: `job-name=${job}` })
        ).items;
        const sem = await client.get<Semaphore>(
          `/apis/sync.konductor.io/v1/namespaces/${ns}/semaphores/${semName}`,
        );
        const holders = new Set((sem.status?.holders ?? []).map((h) => h.uid));
        const bound = list.filter((p) => p.spec.nodeName);
        const settled = list.every((p) => p.spec.nodeName || isGated(p) || unschedulable(p));
        const holdersBound = bound.filter((p) => holders.has(p.metadata.uid ?? '')).length;
        const line = `${list.length}/${pods} pods, ${bound.length} bound, ${holders.size}/${permits} permits out (${holdersBound} bound)`;
        if (line !== lastLine) log(`    ${line}`);
        lastLine = line;
        stablePolls = bound.length === lastBound ? stablePolls + 1 : 0;
        lastBound = bound.length;
        const steady =
          list.length === pods &&
          settled &&
          holders.size === permits &&
          holdersBound === permits &&
          stablePolls >= 3;
        return steady ? { list, holders } : undefined;
      },
      timeoutMs,
      1000,
    );
    const { list, holders } = snapshot;
    const bound = list.filter((p) => p.spec.nodeName);
    const boundHolders = bound.filter((p) => holders.has(p.metadata.uid ?? ''));
    const requested = sumRequests(bound.map((p) => podRequests(p.spec)));
    const holderRequested = sumRequests(boundHolders.map((p) => podRequests(p.spec)));
    const onePod = podRequests((list[0] as Pod).spec);
    const alloc = {
      cpu: parseQuantity(NODE_CAPACITY.cpu) * nodeCount,
      memory: parseQuantity(NODE_CAPACITY.memory) * nodeCount,
    };
    return {
      mode,
      pods,
      permits,
      nodes: nodeCount,
      bound: bound.length,
      boundHolders: boundHolders.length,
      holders: holders.size,
      gated: list.filter(isGated).length,
      unschedulable: list.filter(unschedulable).length,
      boundRequests: asFigures(requested),
      holderRequests: asFigures(holderRequested),
      podRequests: asFigures(onePod),
      shareOfAllocatable: {
        cpu: round((requested.cpu / alloc.cpu) * 100, 1),
        memory: round((requested.memory / alloc.memory) * 100, 1),
        pods: round((bound.length / (Number(NODE_CAPACITY.pods) * nodeCount)) * 100, 1),
      },
      secondsToSteady: round((Date.now() - started) / 1000, 1),
    };
  } finally {
    await bc.stop();
  }
}

export async function runWaitResources(opts: BenchOptions): Promise<void> {
  const env = environment();
  const started = Date.now();
  const pods = byMode(opts.mode, { full: 1000, quick: 200, tiny: 20 });
  const permits = byMode(opts.mode, { full: 10, quick: 10, tiny: 2 });
  const log = opts.log;
  log(`wait-resources: a Job of ${pods} pods behind a Semaphore of ${permits} permits, in each wait mode`);
  const results: ModeResult[] = [];
  for (const mode of ['init-container', 'scheduling-gate'] as const) {
    const timeoutMs = byMode(opts.mode, { full: 1_200_000, quick: 600_000, tiny: 300_000 });
    const r = await measureMode(mode, pods, permits, timeoutMs, log);
    results.push(r);
    log(
      `  ${mode}: ${r.bound} pods bound (${r.boundHolders} holding a permit), ${r.gated} gated, ${r.unschedulable} ` +
        `unschedulable; bound pods request ${r.boundRequests.cpu} CPU, ${r.boundRequests.memoryMiB} MiB ` +
        `(${r.shareOfAllocatable.cpu} % / ${r.shareOfAllocatable.memory} % of allocatable, ` +
        `${r.shareOfAllocatable.pods} % of pod slots); steady after ${r.secondsToSteady} s`,
    );
  }
  const method =
    'Per mode a fresh devcluster (kube-controller-manager, webhook, manager) with the real kube-scheduler ' +
    `(v1.37.2, default profile) and Nodes registered without a kubelet (${NODE_CAPACITY.cpu} CPU, ` +
    `${NODE_CAPACITY.memory}, ${NODE_CAPACITY.pods} pods each, one per ${PODS_PER_NODE} pods of the Job; Ready, ` +
    'untainted): the scheduler binds, nothing runs, so no holder ever finishes. A Job of N pods (completions = ' +
    `parallelism = N; main container requests ${MAIN_REQUESTS.cpu} CPU / ${MAIN_REQUESTS.memory}) annotated ` +
    'konductor.io/semaphore and konductor.io/wait-mode, created through the API (Job controller, webhook). Measured ' +
    'once every pod is bound, gated or unschedulable, every permit is out to a bound pod and the bound count is ' +
    'stable for 3 s: pods with spec.nodeName (= pod slots taken) and the sum of their effective requests as ' +
    'kube-scheduler counts them (injected init container and sidecar included). Floor: the bound pods holding a ' +
    'permit (Semaphore status, same snapshot) and their requests. Limits: no kubelet, so no sandboxes, pod IPs ' +
    'or processes are counted; the Nodes are sized so that the whole Job fits.';
  const floorName = 'the bound pods that hold a permit (same snapshot): what any queue lets onto the nodes';
  const figures: Figure[] = results.flatMap((r) => [
    flooredFigure({
      name: `pods bound to nodes while ${r.pods - r.permits} wait (${r.mode})`,
      value: r.bound,
      unit: 'pods',
      floor: r.boundHolders,
      floorName,
    }),
    flooredFigure({
      name: `CPU requested on nodes while the queue waits (${r.mode})`,
      value: r.boundRequests.cpu,
      unit: 'CPU',
      floor: r.holderRequests.cpu,
      floorName,
    }),
    flooredFigure({
      name: `memory requested on nodes while the queue waits (${r.mode})`,
      value: r.boundRequests.memoryMiB,
      unit: 'MiB',
      floor: r.holderRequests.memoryMiB,
      floorName,
    }),
  ]);
  log(`method: ${method}`);
  log(`machine: ${describeEnvironment(env)}`);
  printFigures(log, figures);
  const path = await writeResult(opts, {
    benchmark: 'wait-resources',
    mode: opts.mode,
    environment: env,
    method,
    parameters: {
      pods,
      permits,
      nodeCapacity: NODE_CAPACITY,
      podsPerNode: PODS_PER_NODE,
      mainRequests: MAIN_REQUESTS,
      scheduler: 'kube-scheduler v1.37.2 (devcluster k8s tool set), default profile',
    },
    figures,
    details: { modes: results },
    durationSeconds: round((Date.now() - started) / 1000, 1),
  });
  log(`wrote ${path}`);
}
