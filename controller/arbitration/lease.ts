/**
 * Lease arbitration: an exclusive grant with a mandatory ttl.
 *
 * - At most one holder, ever: status has a single holder slot, and a new holder is chosen only in the
 *   decision that finds the slot empty or empties it.
 * - The holder is released when its pod is gone or finished (for a pod being deleted: once all its main
 *   containers have terminated) (Released), or when its hold is older than spec.ttl (Expired: a Warning on
 *   the old holder and on the Lease). The next
 *   waiter is granted in the same decision (same status write), with a strictly larger fencing token, so a
 *   stale holder can be told apart downstream.
 * - Waiters are ordered like a semaphore's (priority desc, arrival asc, UID asc); a pod without a
 *   konductor.io/priority annotation has the Lease's spec.priority (default 0).
 * - An invalid or missing ttl stops new grants (Ready=False InvalidSpec); the current holder is still
 *   released normally.
 * - The first decision of a Lease (no status yet) adopts the pod still running on a grant of an earlier
 *   Lease of the same name, and starts its tokens above every earlier one (adoption.ts).
 */
import type { Lease, LeaseHolder, LeaseStatus } from '../../api/types.ts';
import { adoptionMessage, adoptLeaseHolder, firstToken } from './adoption.ts';
import { type ConditionUpdate, setConditions } from './conditions.ts';
import { type PlannedEvent, podEvent, primitiveEvent } from './events.ts';
import { holdStartedAt, type PodView, releaseReason } from './podView.ts';
import { jsonEqual } from './statusEquality.ts';
import { fromIso, readDuration, toIso } from './timestamps.ts';
import {
  indexByUid,
  isWaiting,
  oldestArrival,
  orderWaiters,
  QUEUE_STATUS_LIMIT,
  toQueueEntry,
} from './waitingQueue.ts';

export interface LeaseArbitrationInput {
  lease: Lease;
  /**
   * The managed pods that reference this lease (any state), plus a view of the holder's pod if it still
   * exists: a holder without a view is released as gone, so the caller confirms absence with a GET.
   */
  pods: readonly PodView[];
  now: number;
}

export interface LeaseArbitrationResult {
  status: LeaseStatus;
  changed: boolean;
  events: PlannedEvent[];
  /** The holder granted by this decision, if any. */
  granted?: LeaseHolder;
  /** The holder removed by this decision (released or expired), if any. */
  removed?: LeaseHolder;
  /** Arbitrate again after this many ms (the holder's expiry). */
  requeueAfterMs?: number;
}

/** The lease's waiters in grant order (the holder excluded), unset priorities defaulted to spec.priority. */
export function leaseQueue(lease: Lease, pods: readonly PodView[], holderUid: string | undefined): PodView[] {
  return orderWaiters(
    pods.filter((p) => isWaiting(p) && p.uid !== holderUid),
    lease.spec?.priority ?? 0,
  );
}

export function arbitrateLease(input: LeaseArbitrationInput): LeaseArbitrationResult {
  const { lease, now } = input;
  const ref = `lease ${lease.metadata.namespace ?? 'default'}/${lease.metadata.name ?? ''}`;
  const nowIso = toIso(now);
  const old = lease.status;
  const ttl = readDuration('ttl', lease.spec?.ttl);
  const specProblem =
    ttl.kind === 'invalid' ? ttl.message : ttl.kind === 'absent' ? 'spec.ttl is required' : undefined;
  const pods = indexByUid(input.pods);
  const events: PlannedEvent[] = [];
  const result: Omit<LeaseArbitrationResult, 'status' | 'changed'> = { events };

  // 0. A new Lease (no status yet) adopts the pod still running on an earlier one's grant.
  // (A status without nextToken was never written by a decision: at most a refused write's condition.)
  const fresh = old?.nextToken === undefined;
  let holder = fresh ? adoptLeaseHolder(input.pods, now) : old?.holder;
  if (fresh && holder !== undefined) {
    const msg = adoptionMessage(ref, 'the lease');
    events.push(podEvent(holder, 'Normal', 'Adopted', msg));
    events.push(primitiveEvent('Normal', 'Adopted', `pod ${holder.pod} ${msg}`));
  }

  // 1. Release or expire the holder.
  if (holder !== undefined) {
    const pod = pods.get(holder.uid);
    const why = releaseReason(pod);
    const acquiredAt = fromIso(holder.acquiredAt);
    const what = `${ref} (token ${holder.token})`;
    if (why !== undefined) {
      result.removed = holder;
      events.push(podEvent(holder, 'Normal', 'Released', `released ${what}: ${why}`));
      events.push(primitiveEvent('Normal', 'Released', `pod ${holder.pod} released ${what}: ${why}`));
      holder = undefined;
    } else if (
      ttl.kind === 'valid' &&
      acquiredAt !== undefined &&
      (holdStartedAt(pod!, acquiredAt) ?? Number.POSITIVE_INFINITY) + ttl.ms <= now
    ) {
      result.removed = holder;
      const msg = `held for longer than ttl ${lease.spec.ttl} since ${holder.acquiredAt}`;
      events.push(podEvent(holder, 'Warning', 'Expired', `lost ${what}: ${msg}`));
      events.push(primitiveEvent('Warning', 'Expired', `pod ${holder.pod} lost ${what}: ${msg}`));
      holder = undefined;
    } else if (ttl.kind === 'valid' && acquiredAt !== undefined) {
      // follows spec.ttl changes; counts from the end of the pod's wait (see holdStartedAt)
      holder = { ...holder, expiresAt: toIso((holdStartedAt(pod!, acquiredAt) ?? acquiredAt) + ttl.ms) };
    }
  }

  // 2. Hand over to the head of the queue.
  let nextToken = Math.max(
    old?.nextToken ?? firstToken(lease.metadata.resourceVersion),
    1,
    (old?.holder?.token ?? 0) + 1,
    (old?.token ?? 0) + 1,
  );
  const queue = leaseQueue(lease, input.pods, holder?.uid);
  let served = 0;
  const head = queue[0];
  if (holder === undefined && head !== undefined && ttl.kind === 'valid' && specProblem === undefined) {
    holder = {
      pod: head.name,
      uid: head.uid,
      token: nextToken,
      acquiredAt: nowIso,
      expiresAt: toIso(now + ttl.ms),
    };
    nextToken += 1;
    served = 1;
    result.granted = holder;
    events.push(podEvent(head, 'Normal', 'Granted', `granted ${ref} (token ${holder.token})`));
    events.push(primitiveEvent('Normal', 'Granted', `granted to pod ${head.name} (token ${holder.token})`));
  }
  const remaining = queue.slice(served);

  const previouslyListed = new Set((old?.queue ?? []).map((e) => e.uid));
  remaining.slice(0, QUEUE_STATUS_LIMIT).forEach((pod, i) => {
    if (previouslyListed.has(pod.uid)) return;
    events.push(
      podEvent(pod, 'Normal', 'Queued', `waiting for ${ref}: position ${i + 1} of ${remaining.length}`),
    );
  });

  // 3. Status.
  const generation = lease.metadata.generation;
  const ready: ConditionUpdate =
    specProblem !== undefined
      ? { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: specProblem }
      : holder !== undefined
        ? {
            type: 'Ready',
            status: 'True',
            reason: 'Held',
            message: `held by pod ${holder.pod} until ${holder.expiresAt}, ${remaining.length} waiting`,
          }
        : { type: 'Ready', status: 'True', reason: 'Available', message: 'not held' };
  ready.observedGeneration = generation;
  const status: LeaseStatus = {
    phase: holder !== undefined ? 'Held' : 'Available',
    waiting: remaining.length,
    nextToken,
  };
  if (holder !== undefined) {
    status.holder = holder;
    status.token = holder.token;
    status.acquiredAt = holder.acquiredAt;
    status.expiresAt = holder.expiresAt;
  }
  status.queue = remaining.slice(0, QUEUE_STATUS_LIMIT).map(toQueueEntry);
  const oldest = oldestArrival(remaining);
  if (oldest !== undefined) status.oldestWaitingSince = oldest;
  status.conditions = setConditions(old?.conditions, [ready], nowIso);
  if (generation !== undefined) status.observedGeneration = generation;

  const out: LeaseArbitrationResult = { status, changed: !jsonEqual(old, status), ...result };
  const expiresAt = fromIso(holder?.expiresAt);
  // A holder still in its wait is not counting down (holdStartedAt); its pod's next update re-arbitrates.
  const holderPod = holder === undefined ? undefined : pods.get(holder.uid);
  if (holder !== undefined && holderPod?.passedWait && ttl.kind === 'valid' && expiresAt !== undefined) {
    out.requeueAfterMs = Math.max(0, Math.ceil(expiresAt - now));
  }
  return out;
}
