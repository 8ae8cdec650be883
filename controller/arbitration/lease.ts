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
import { type ConditionUpdate, withReady } from './conditions.ts';
import { type PlannedEvent, podEvent, primitiveEvent } from './events.ts';
import { earlier, nextStartTimeout, queuedEvents, reviewHolder } from './holding.ts';
import type { Decision, KindRules } from './kindRules.ts';
import type { PodView } from './podView.ts';
import { jsonEqual } from './statusEquality.ts';
import { fromIso, readDuration, toIso } from './timestamps.ts';
import { indexByUid, oldestArrival, queueEntries, waitersInOrder } from './waitingQueue.ts';
import { plural, podNames } from './wording.ts';

export interface LeaseArbitrationInput {
  lease: Lease;
  /**
   * The managed pods that reference this lease (any state), plus a view of the holder's pod if it still
   * exists: a holder without a view is released as gone, so the caller confirms absence with a GET.
   */
  pods: readonly PodView[];
  now: number;
}

export interface LeaseArbitrationResult extends Decision {
  status: LeaseStatus;
  /** The holder granted by this decision, if any. */
  granted?: LeaseHolder;
  /** The holder removed by this decision (released or expired), if any. */
  removed?: LeaseHolder;
}

/** The lease's waiters in grant order (the holder excluded), unset priorities defaulted to spec.priority. */
export function leaseQueue(lease: Lease, pods: readonly PodView[], holderUid: string | undefined): PodView[] {
  return waitersInOrder(pods, (uid) => uid === holderUid, lease.spec?.priority ?? 0);
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
    const what = `${ref} (token ${holder.token})`;
    const held = { pod: holder.pod, uid: holder.uid, grantedAt: holder.acquiredAt };
    const review = reviewHolder(held, pods.get(holder.uid), ttl, lease.spec?.ttl, now, what, events);
    if (review.fate !== 'kept') {
      result.removed = holder;
      holder = undefined;
    } else if (review.expiresAt !== undefined) {
      // follows spec.ttl changes; counts from the end of the pod's wait (see holdStartedAt)
      holder = { ...holder, expiresAt: review.expiresAt };
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

  queuedEvents(old?.queue, remaining, () => ref, events);

  // 3. Status.
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
  status.queue = queueEntries(remaining);
  const oldest = oldestArrival(remaining);
  if (oldest !== undefined) status.oldestWaitingSince = oldest;
  withReady(old, status, ready, lease.metadata.generation, nowIso);

  const out: LeaseArbitrationResult = { status, changed: !jsonEqual(old, status), ...result };
  const expiresAt = fromIso(holder?.expiresAt);
  // A holder still in its wait is not counting down (holdStartedAt); its pod's next update re-arbitrates.
  const holderPod = holder === undefined ? undefined : pods.get(holder.uid);
  const ttlDue =
    holder !== undefined && holderPod?.passedWait && ttl.kind === 'valid' && expiresAt !== undefined
      ? Math.max(0, Math.ceil(expiresAt - now))
      : undefined;
  const requeue = earlier(ttlDue, nextStartTimeout(holder ? [holder] : [], pods, now));
  if (requeue !== undefined) out.requeueAfterMs = requeue;
  return out;
}

/** The Lease's row of the kind table (./kinds.ts). */
export const leaseRules: KindRules<Lease> = {
  arbitrate: ({ primitive, pods, now }) => arbitrateLease({ lease: primitive, pods, now }),
  readsPods: true,
  holders: (l) => {
    const h = l.status?.holder;
    return h
      ? [
          {
            pod: h.pod,
            uid: h.uid,
            permits: 1,
            token: h.token,
            grantedAt: h.acquiredAt,
            expiresAt: h.expiresAt,
          },
        ]
      : [];
  },
  grantOf: (l, uid) => {
    const h = l.status?.holder;
    return h?.uid === uid ? { token: h.token, grantedAt: h.acquiredAt } : undefined;
  },
  queue: (l, views) => leaseQueue(l, views, l.status?.holder?.uid),
  standing: (l, _stage, _pod, place) => ({ waiting: { ...place(), holder: l.status?.holder?.pod } }),
  figures: (l) => ({ capacity: 1, inUse: l.status?.holder ? 1 : 0, waiting: l.status?.waiting ?? 0 }),
  explain: {
    use: (f) => (f.inUse ? 'held' : 'free'),
    passed: (_stage, g) => `granted at ${g.grantedAt} (token ${g.token})`,
    queueReason: (l, i) => {
      const holder = l.status?.holder;
      if (i > 0) return `behind ${plural(i, 'pod')}`;
      return holder
        ? `next: held by pod ${holder.pod} until it finishes or its ttl ends at ${holder.expiresAt}`
        : 'next: the lease is free, the manager grants it now';
    },
    waiting: (l, _stage, standing, ahead) => {
      const holder = l.status?.holder;
      const detail = holder
        ? `held by pod ${holder.pod} (token ${holder.token}) until ${holder.expiresAt}`
        : 'not held';
      if (!standing.position) return { detail, toStart: 'the pod must be scheduled first' };
      const before = ahead();
      const parts: string[] = [];
      if (holder) parts.push(`pod ${holder.pod} must finish, or its hold expire at ${holder.expiresAt}`);
      if (before.length > 0)
        parts.push(
          `the ${plural(before.length, 'pod')} ahead of it (${podNames(before)}) must hold it and finish`,
        );
      return {
        detail,
        toStart: parts.length > 0 ? parts.join('; then ') : 'nothing: the manager grants it now',
      };
    },
    holderColumns: 'grants',
    listed: (l) => ({ rows: [...leaseRules.holders(l)] }),
  },
};
