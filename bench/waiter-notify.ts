/**
 * Profiling evidence, not one of the DESIGN §8 figures: the manager's CPU cost of ONE status change of a
 * Semaphore while n pods wait on it with their konductor-wait stream open.
 *
 * Every status write (and every status event) calls KonductorController.afterPrimitiveChange, which
 * notifies every pod of the primitive; each open wait stream then re-evaluates its standing
 * (controller/agentApi.ts `evaluate` -> controller.standing(uid) -> stages.ts stageState), and for a
 * waiting pod that rebuilds the PodViews of ALL the primitive's pods (viewsOf) and sorts the queue
 * (semaphoreQueue) to find its position: O(n) work per waiter, O(n^2 log n) per status change.
 *
 * This replays exactly that work with the controller's own exported functions (PodIndex, toPodView,
 * podRequestFor, stageState) for n waiting pods, and prints the time per status change. It needs no
 * cluster: `node bench/waiter-notify.ts [n ...]` (default 100 500 1000 2000 5000).
 */
import { performance } from 'node:perf_hooks';
import { MANAGED_LABEL, WEBHOOK_ANNOTATIONS } from '../api/constants.ts';
import type { Pod, Semaphore } from '../api/types.ts';
import { PodIndex, primitiveKey, slimPod } from '../controller/arbitration/podIndex.ts';
import { podRequestFor, toPodView } from '../controller/arbitration/podView.ts';
import { type QueueOrder, queueOrder, stageState } from '../controller/arbitration/stages.ts';
import { round } from './common.ts';

function pod(i: number): Pod {
  const t = new Date(Date.UTC(2026, 0, 1) + i).toISOString();
  return slimPod({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `p-${i}`,
      namespace: 'default',
      uid: `uid-${i}`,
      creationTimestamp: t,
      labels: { [MANAGED_LABEL]: 'true' },
      annotations: { 'konductor.io/semaphore': 'slots', [WEBHOOK_ANNOTATIONS.admittedAt]: t },
    },
    spec: { nodeName: 'n', containers: [{ name: 'main' }] },
    status: { phase: 'Pending' },
  } as Pod);
}

/** ms of manager CPU for one status change with `n` connected waiters (mean of a few repetitions). */
export function costPerStatusChange(n: number): { n: number; msPerChange: number; msPerWaiter: number } {
  const index = new PodIndex();
  for (let i = 0; i < n; i++) index.upsert(pod(i));
  const key = primitiveKey('Semaphore', 'default', 'slots');
  const semaphore = {
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Semaphore',
    metadata: { name: 'slots', namespace: 'default' },
    spec: { permits: 1 },
    status: { inUse: 1, available: 0, phase: 'Full', holders: [], waiting: n, nextToken: 1 },
  } as unknown as Semaphore;
  const viewsOf = () =>
    index
      .podsOf(key)
      .map((p) => toPodView(p.pod, podRequestFor(p.pod, p.request, 'Semaphore'), { eligible: true }));
  const change = () => {
    // afterPrimitiveChange -> notifyPod for every pod -> each wait stream's evaluate() -> standing(uid);
    // the controller memoizes the queue order per change (one sort shared by every waiter).
    let memo: QueueOrder | undefined;
    const order = () => {
      memo ??= queueOrder('Semaphore', semaphore, viewsOf());
      return memo;
    };
    for (const p of index.podsOf(key)) {
      const stage = p.stages[0];
      if (!stage) continue;
      const uid = p.pod.metadata.uid ?? '';
      stageState(stage, semaphore, { name: p.pod.metadata.name ?? '', namespace: 'default', uid }, order);
    }
  };
  change(); // warm-up (JIT)
  const reps = n <= 1000 ? 5 : 2;
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) change();
  const ms = (performance.now() - t0) / reps;
  return { n, msPerChange: round(ms, 1), msPerWaiter: round(ms / n, 3) };
}

if (import.meta.main) {
  const sizes = process.argv.slice(2).map(Number);
  console.log('manager CPU per Semaphore status change, n waiters with an open konductor-wait stream:');
  for (const n of sizes.length ? sizes : [100, 500, 1000, 2000, 5000]) {
    const r = costPerStatusChange(n);
    console.log(`  n=${r.n}: ${r.msPerChange} ms per status change (${r.msPerWaiter} ms per waiter)`);
  }
}
