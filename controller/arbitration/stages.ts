/**
 * Cross-primitive facts, pure: whether a pod has passed a stage, whether it is eligible for a stage (all
 * earlier stages passed), and where it stands in a stage for the agent's progress lines, each read through
 * the kind table (./kinds.ts). A pod acquires in the fixed order of api/kinds.ts (gate, barrier, lease,
 * semaphore), so it never holds anything while it waits for a gate or barrier, and it takes held resources
 * in one global order (lease before semaphore): no wait-for cycle can form (docs/arbitration.md).
 */

import type { PrimitiveKind } from '../../api/kinds.ts';
import type { Grant, QueueStanding } from '../../api/protocol.ts';
import type { FailureReason } from '../../api/reasons.ts';
import type { Primitive } from '../../api/types.ts';
import type { QueuePlace } from './kindRules.ts';
import { rulesOf } from './kinds.ts';
import type { IndexedPod, Stage } from './podIndex.ts';
import { type PodView, podRequestFor, toPodView } from './podView.ts';
import { fromIso } from './timestamps.ts';

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
  return primitive !== undefined && rulesOf(stage.kind).grantOf(primitive, uid) !== undefined;
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

/**
 * When the pod had passed every one of its stages (the latest grant or opening among them), ms; undefined while
 * one is not passed (or no time is known). Its scheduling gate may go from then on, and its start timeout counts
 * from then.
 */
export function clearedAt(
  stages: readonly Stage[],
  lookup: (key: string) => Primitive | undefined,
  uid: string,
): number | undefined {
  let latest: number | undefined;
  for (const st of stages) {
    const primitive = lookup(st.key);
    const grant = primitive && rulesOf(st.kind).grantOf(primitive, uid);
    if (!grant) return undefined;
    const at = fromIso(grant.grantedAt);
    if (at !== undefined) latest = latest === undefined ? at : Math.max(latest, at);
  }
  return latest;
}

/** A queue in arbitration order, indexed by pod UID (0-based), for positions in progress lines. */
export interface QueueOrder {
  index: ReadonlyMap<string, number>;
  length: number;
}

export const NO_QUEUE: QueueOrder = { index: new Map(), length: 0 };

/**
 * The waiting queue of a primitive in grant order (requests that can never be granted last), as arbitration
 * sees it; empty for a kind without an order. Computed once per change and shared by every waiter's progress
 * line: per-waiter recomputation would cost O(n^2 log n) per status change with n waiters connected.
 */
export function queueOrder(kind: PrimitiveKind, primitive: Primitive, views: readonly PodView[]): QueueOrder {
  const ordered = rulesOf(kind).queue?.(primitive, views);
  if (!ordered) return NO_QUEUE;
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
  const base: QueueStanding = { primitive: ref, position: 0, queueLength: 0, message: '' };
  if (!primitive) return { state: 'waiting', standing: { ...base, missing: true } };
  const rules = rulesOf(stage.kind);
  const grant = rules.grantOf(primitive, pod.uid);
  if (grant) {
    return {
      state: 'passed',
      grant: {
        ...ref,
        token: grant.token,
        grantedAt: grant.grantedAt ?? new Date().toISOString(),
        pod: pod.name,
        uid: pod.uid,
      },
    };
  }
  const standing = rules.standing(primitive, stage, pod, () => placeIn(order(), pod.uid));
  if ('failed' in standing) return { state: 'failed', ...standing.failed };
  return { state: 'waiting', standing: { ...base, ...standing.waiting } };
}

/** 1-based position (0 when not queued) and the queue's length. */
function placeIn(q: QueueOrder, uid: string): QueuePlace {
  const idx = q.index.get(uid);
  return { position: idx === undefined ? 0 : idx + 1, queueLength: q.length };
}

/** A pod that references a primitive, seen as a waiter of that stage. */
export interface Waiter {
  view: PodView;
  indexed: IndexedPod;
  /** The stage's place in the pod's acquisition order. */
  stageIndex: number;
}

/**
 * The pods that reference `key`, each with its PodView for that kind; eligible when every earlier stage of
 * the pod is passed (`lookup` reads the primitives).
 */
export function waitersAt(
  pods: readonly IndexedPod[],
  key: string,
  kind: PrimitiveKind,
  lookup: (key: string) => Primitive | undefined,
): Waiter[] {
  return pods.map((indexed) => {
    const stageIndex = indexed.stages.findIndex((st) => st.key === key);
    const uid = indexed.pod.metadata.uid ?? '';
    const request = podRequestFor(indexed.pod, indexed.request, kind);
    // Only a start timeout of an unscheduled pod reads clearedAt (startDeadline): skip the grant lookups else.
    const timesStart = request.startTimeoutMs !== undefined && !indexed.pod.spec.nodeName;
    const view = toPodView(indexed.pod, request, {
      eligible: eligibleFor(indexed.stages, stageIndex, lookup, uid),
      clearedAt: timesStart ? clearedAt(indexed.stages, lookup, uid) : undefined,
    });
    return { view, indexed, stageIndex };
  });
}
