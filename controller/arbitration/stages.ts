/**
 * Cross-primitive facts, pure: whether a pod has passed a stage (gate open, barrier open, lease or permits
 * held), whether it is eligible for a stage (all earlier stages passed), and where it stands in a stage
 * for the agent's progress lines. A pod acquires in the fixed order gate, barrier, lease, semaphore, so it
 * never holds anything while it waits for a gate or barrier, and it takes held resources in one global
 * order (lease before semaphore): no wait-for cycle can form (docs/arbitration.md).
 */

import type { Grant, QueueStanding } from '../../api/protocol.ts';
import type { FailureReason } from '../../api/reasons.ts';
import type { Barrier, Gate, Lease, Primitive, Semaphore } from '../../api/types.ts';
import { barrierVerdict } from './barrier.ts';
import { leaseQueue } from './lease.ts';
import type { Stage } from './podIndex.ts';
import type { PodView } from './podView.ts';
import { semaphoreCapacity, semaphoreQueue } from './semaphore.ts';

export type StageState =
  | { state: 'passed'; grant: Grant }
  | { state: 'waiting'; standing: QueueStanding }
  | { state: 'failed'; reason: FailureReason; message: string };

export interface PodIdentityRef {
  name: string;
  namespace: string;
  uid: string;
}

/** Has the pod passed this stage, judged from the primitive's status alone? */
export function stagePassed(stage: Stage, primitive: Primitive | undefined, uid: string): boolean {
  if (!primitive) return false;
  switch (stage.kind) {
    case 'Gate':
      return (primitive as Gate).status?.phase === 'Open';
    case 'Barrier':
      return (primitive as Barrier).status?.phase === 'Open';
    case 'Lease':
      return (primitive as Lease).status?.holder?.uid === uid;
    case 'Semaphore':
      return ((primitive as Semaphore).status?.holders ?? []).some((h) => h.uid === uid);
  }
}

/** Eligible for stage `index` when every earlier stage is passed. */
export function eligibleFor(
  stages: readonly Stage[],
  index: number,
  lookup: (key: string) => Primitive | undefined,
  uid: string,
): boolean {
  for (let i = 0; i < index; i++) {
    const st = stages[i]!;
    if (!stagePassed(st, lookup(st.key), uid)) return false;
  }
  return true;
}

/** A queue in arbitration order, indexed by pod UID (0-based), for positions in progress lines. */
export interface QueueOrder {
  index: ReadonlyMap<string, number>;
  length: number;
}

/**
 * The waiting queue of a Semaphore or Lease in grant order (oversize semaphore requests last), as
 * arbitration sees it. Computed once per change and shared by every waiter's progress line: per-waiter
 * recomputation would cost O(n^2 log n) per status change with n waiters connected.
 */
export function queueOrder(
  kind: 'Semaphore' | 'Lease',
  primitive: Primitive,
  views: readonly PodView[],
): QueueOrder {
  let ordered: PodView[];
  if (kind === 'Lease') {
    const l = primitive as Lease;
    ordered = leaseQueue(l, views, l.status?.holder?.uid);
  } else {
    const s = primitive as Semaphore;
    const holders = new Set((s.status?.holders ?? []).map((h) => h.uid));
    const q = semaphoreQueue(semaphoreCapacity(s) ?? 0, views, holders);
    ordered = [...q.ordered, ...q.oversize];
  }
  return { index: new Map(ordered.map((p, i) => [p.uid, i])), length: ordered.length };
}

/** Where the pod stands in one stage, for the wait stream. `order`: the stage's queue (see queueOrder). */
export function stageState(
  stage: Stage,
  primitive: Primitive | undefined,
  pod: PodIdentityRef,
  order: () => QueueOrder,
): StageState {
  const ref = { kind: stage.kind, name: stage.name, namespace: pod.namespace };
  const grant = (token: number, grantedAt: string | undefined): StageState => ({
    state: 'passed',
    grant: { ...ref, token, grantedAt: grantedAt ?? new Date().toISOString(), pod: pod.name, uid: pod.uid },
  });
  const base: QueueStanding = { primitive: ref, position: 0, queueLength: 0, message: '' };
  if (!primitive) return { state: 'waiting', standing: { ...base, missing: true } };
  switch (stage.kind) {
    case 'Gate': {
      const g = primitive as Gate;
      if (g.status?.phase === 'Open') return grant(0, g.status.openedAt);
      if (g.status?.phase === 'Failed') {
        return {
          state: 'failed',
          reason: 'GateFailed',
          message: `gate ${pod.namespace}/${stage.name} failed: ${gateFailure(g)}`,
        };
      }
      const unmet = (g.status?.conditionStatuses ?? []).filter((c) => !c.met).map((c) => c.message);
      return { state: 'waiting', standing: { ...base, unmet } };
    }
    case 'Barrier': {
      const b = primitive as Barrier;
      if (b.status?.phase === 'Open') return grant(0, b.status.openedAt);
      const expected = b.spec.quorum ?? b.spec.expected;
      if (b.status?.phase === 'Failed') {
        // The arbiter's own verdict ("barrier ns/x timed out 3s after the first arrival: arrived 2 of 3
        // expected"), so the pod's log, the Event and the Ready condition say the same thing.
        const verdict = barrierVerdict(b.status, pod.uid);
        return {
          state: 'failed',
          reason: 'BarrierFailed',
          message:
            typeof verdict === 'object'
              ? verdict.failed
              : `barrier ${pod.namespace}/${stage.name} failed: arrived ${b.status.arrived ?? 0} of ${b.spec.expected} expected`,
        };
      }
      return { state: 'waiting', standing: { ...base, arrived: b.status?.arrived ?? 0, expected } };
    }
    case 'Lease': {
      const l = primitive as Lease;
      if (l.status?.holder?.uid === pod.uid) return grant(l.status.holder.token, l.status.holder.acquiredAt);
      return {
        state: 'waiting',
        standing: { ...base, ...placeIn(order(), pod.uid), holder: l.status?.holder?.pod },
      };
    }
    case 'Semaphore': {
      const s = primitive as Semaphore;
      const held = (s.status?.holders ?? []).find((h) => h.uid === pod.uid);
      if (held) return grant(held.token, held.grantedAt);
      return {
        state: 'waiting',
        standing: {
          ...base,
          ...placeIn(order(), pod.uid),
          inUse: s.status?.inUse ?? 0,
          capacity: s.spec.permits,
          requested: stage.permits,
        },
      };
    }
  }
}

/** 1-based position (0 when not queued) and the queue's length. */
function placeIn(q: QueueOrder, uid: string): { position: number; queueLength: number } {
  const idx = q.index.get(uid);
  return { position: idx === undefined ? 0 : idx + 1, queueLength: q.length };
}

function gateFailure(g: Gate): string {
  const unmet = (g.status?.conditionStatuses ?? []).filter((c) => !c.met).map((c) => c.message);
  return unmet.length
    ? `timed out (${g.spec.timeout ?? ''}) with unmet conditions: ${unmet.join('; ')}`
    : 'timed out';
}
