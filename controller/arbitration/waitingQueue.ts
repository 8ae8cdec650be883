/**
 * Who waits, and how a waiter is shown in a primitive's status.queue. Shared by the Semaphore and Lease
 * arbitration and by the queue order of the agent API's progress lines (stages.ts), so the agent API reports
 * exactly the order arbitration grants in.
 */
import type { QueueEntry } from '../../api/types.ts';
import { compareWaiters, isPresent, type PodView } from './podView.ts';

/**
 * How many waiters status.queue lists (the head of the queue, in grant order). `status.waiting` is the full
 * count; the agent API computes exact positions from the pods themselves. The cap keeps status writes small
 * when thousands of pods queue on one primitive.
 */
export const QUEUE_STATUS_LIMIT = 20;

/**
 * A pod waits for a Semaphore or Lease when it is present (bound to a node, or unscheduled behind konductor's
 * scheduling gate), not finished, not being deleted, eligible (earlier primitives in acquisition order are
 * satisfied) and has not passed its wait container. Holders are excluded by the caller. Both wait modes share
 * one queue: a gated pod's arrival is its admission, a bound one's its scheduling.
 */
export function isWaiting(view: PodView): boolean {
  return isPresent(view) && !view.finished && !view.terminating && view.eligible && !view.passedWait;
}

/** The pods waiting for a primitive that do not hold it already, in grant order (see orderWaiters). */
export function waitersInOrder(
  pods: readonly PodView[],
  holds: (uid: string) => boolean,
  priorityFallback = 0,
): PodView[] {
  return orderWaiters(
    pods.filter((p) => isWaiting(p) && !holds(p.uid)),
    priorityFallback,
  );
}

/** Pods in arbitration order (see compareWaiters), one per UID, with `priorityFallback` for unset priorities. */
export function orderWaiters(pods: readonly PodView[], priorityFallback = 0): PodView[] {
  const seen = new Set<string>();
  const out: PodView[] = [];
  for (const pod of pods) {
    if (seen.has(pod.uid)) continue;
    seen.add(pod.uid);
    out.push(pod.priority === undefined ? { ...pod, priority: priorityFallback } : pod);
  }
  return out.sort(compareWaiters);
}

/** Unique pods by UID (the first occurrence wins). */
export function indexByUid(pods: readonly PodView[]): Map<string, PodView> {
  const map = new Map<string, PodView>();
  for (const pod of pods) if (!map.has(pod.uid)) map.set(pod.uid, pod);
  return map;
}

/**
 * When the longest-waiting of these pods arrived (RFC 3339), for status.oldestWaitingSince and its printer
 * column; undefined when none waits or no arrival is known.
 */
export function oldestArrival(pods: readonly PodView[]): string | undefined {
  let oldest = Number.MAX_SAFE_INTEGER;
  for (const p of pods) if (p.scheduledAt < oldest) oldest = p.scheduledAt;
  return oldest < Number.MAX_SAFE_INTEGER ? new Date(oldest).toISOString() : undefined;
}

export function toQueueEntry(view: PodView): QueueEntry {
  return { pod: view.name, uid: view.uid, permits: view.permits, priority: view.priority ?? 0 };
}

/** The first QUEUE_STATUS_LIMIT waiters as status.queue shows them (status.waiting counts them all). */
export function queueEntries(waiters: readonly PodView[]): QueueEntry[] {
  return waiters.slice(0, QUEUE_STATUS_LIMIT).map(toQueueEntry);
}
