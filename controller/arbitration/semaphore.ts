/**
 * Semaphore arbitration: one pure decision from (the Semaphore, the pods that reference it, now) to the
 * next status, the events to record and when to look again.
 *
 * Policy (docs/arbitration.md has the long form):
 * - Releases first: a holder whose pod is gone or finished (phase terminal, or its main containers
 *   terminated: for a pod being deleted, ALL of them — a deletionTimestamp alone releases nothing) is removed
 *   (Released); a holder older than spec.ttl is removed (Expired, a Warning on pod and semaphore).
 *   The grants those releases make possible are decided in the same call, so they land in the same write.
 * - The first decision of a Semaphore (no status yet) adopts the pods that still run on a grant of an
 *   earlier Semaphore of the same name and starts its tokens above every earlier one (adoption.ts).
 * - Waiters are granted in arbitration order (priority desc, arrival asc, UID asc) with STRICT
 *   HEAD-OF-LINE BLOCKING: when the head of the queue needs more permits than are free, nobody behind it is
 *   granted, even a request that would fit. Letting small requests bypass would starve a big request
 *   forever under steady small load; blocking guarantees the head is served as soon as enough permits come
 *   back, and FIFO-within-priority stays the only rule a user has to understand.
 * - A request for more permits than spec.permits can never be granted. It would block the queue forever,
 *   so it is taken out of the queue order (listed at the end of status.queue, counted in status.waiting),
 *   gets a PermitsExceedCapacity Warning and the Satisfiable=False condition, and is granted in its normal
 *   place once spec.permits grows enough.
 * - Every grant takes the fencing token status.nextToken and increments it (the first decision starts it at
 *   firstToken(resourceVersion), so tokens also grow across a delete and recreate).
 * - Lowering spec.permits never revokes a live holder: nothing is granted until inUse drops below it.
 * - An invalid spec (permits < 1, unparsable ttl) stops new grants; releases still happen.
 *
 * Safety: holders' permits never exceed spec.permits through a grant (a grant needs permits <= free where
 * free = spec.permits - inUse), so if the invariant held before a decision it holds after it.
 */
import type { Holder, QueueEntry, Semaphore, SemaphoreStatus } from '../../api/types.ts';
import { adoptionMessage, adoptSemaphoreHolders, firstToken } from './adoption.ts';
import { type ConditionUpdate, setConditions } from './conditions.ts';
import { type PlannedEvent, podEvent, primitiveEvent } from './events.ts';
import { holdStartedAt, type PodView, releaseReason } from './podView.ts';
import { jsonEqual } from './statusEquality.ts';
import { type DurationField, fromIso, readDuration, toIso } from './timestamps.ts';
import {
  indexByUid,
  isWaiting,
  oldestArrival,
  orderWaiters,
  plural,
  QUEUE_STATUS_LIMIT,
  toQueueEntry,
} from './waitingQueue.ts';

export interface SemaphoreArbitrationInput {
  semaphore: Semaphore;
  /**
   * The managed pods that reference this semaphore (any state), plus a view of every holder's pod that still
   * exists: a holder without a view is released as gone, so the caller confirms absence with a GET.
   */
  pods: readonly PodView[];
  /** Decision time, epoch ms. */
  now: number;
}

export interface SemaphoreArbitrationResult {
  status: SemaphoreStatus;
  /** False when `status` deep-equals the current status: the caller skips the write. */
  changed: boolean;
  events: PlannedEvent[];
  /** Holders granted by this decision (to notify their agents once the write succeeded). */
  granted: Holder[];
  /** Holders removed by this decision (released or expired). */
  removed: Holder[];
  /** Arbitrate again after this many ms (the earliest ttl expiry); absent when nothing expires. */
  requeueAfterMs?: number;
}

/** The waiters of a semaphore as arbitration sees them (before this decision's grants). */
export interface SemaphoreQueue {
  /** Grantable waiters in grant order. */
  ordered: PodView[];
  /** Waiters asking for more than spec.permits, in arbitration order. */
  oversize: PodView[];
}

/** Splits the waiting pods (excluding `holderUids`) into the grant-ordered queue and the oversize requests. */
export function semaphoreQueue(
  capacity: number,
  pods: readonly PodView[],
  holderUids: ReadonlySet<string>,
): SemaphoreQueue {
  const waiting = orderWaiters(pods.filter((p) => isWaiting(p) && !holderUids.has(p.uid)));
  return {
    ordered: waiting.filter((p) => p.permits <= capacity),
    oversize: waiting.filter((p) => p.permits > capacity),
  };
}

/** spec.permits when it is a positive integer, else undefined (invalid spec). */
export function semaphoreCapacity(semaphore: Semaphore): number | undefined {
  const permits = semaphore.spec?.permits;
  return typeof permits === 'number' && Number.isInteger(permits) && permits >= 1 ? permits : undefined;
}

export function arbitrateSemaphore(input: SemaphoreArbitrationInput): SemaphoreArbitrationResult {
  const { semaphore, now } = input;
  const ref = `semaphore ${semaphore.metadata.namespace ?? 'default'}/${semaphore.metadata.name ?? ''}`;
  const nowIso = toIso(now);
  const old = semaphore.status;
  const capacity = semaphoreCapacity(semaphore);
  const ttl = readDuration('ttl', semaphore.spec?.ttl);
  const specProblem =
    capacity === undefined
      ? `spec.permits ${JSON.stringify(semaphore.spec?.permits)} is not a positive integer`
      : ttl.kind === 'invalid'
        ? ttl.message
        : undefined;
  const pods = indexByUid(input.pods);
  const events: PlannedEvent[] = [];

  // 0. A new Semaphore (no status yet) adopts the pods still running on an earlier one's grants.
  // (A status without nextToken was never written by a decision: at most a refused write's condition.)
  const fresh = old?.nextToken === undefined;
  const adopted = fresh ? adoptSemaphoreHolders(input.pods, now) : [];
  for (const holder of adopted) {
    const msg = adoptionMessage(ref, plural(holder.permits, 'permit'));
    events.push(podEvent(holder, 'Normal', 'Adopted', msg));
    events.push(primitiveEvent('Normal', 'Adopted', `pod ${holder.pod} ${msg}`));
  }

  // 1. Releases and expiries.
  const kept: Holder[] = [];
  const removed: Holder[] = [];
  for (const holder of fresh ? adopted : uniqueHolders(old?.holders ?? [])) {
    const pod = pods.get(holder.uid);
    const why = releaseReason(pod);
    const grantedAt = fromIso(holder.grantedAt);
    if (why !== undefined) {
      removed.push(holder);
      const what = `${plural(holder.permits, 'permit')} of ${ref} (token ${holder.token})`;
      events.push(podEvent(holder, 'Normal', 'Released', `released ${what}: ${why}`));
      events.push(primitiveEvent('Normal', 'Released', `pod ${holder.pod} released ${what}: ${why}`));
    } else if (
      ttl.kind === 'valid' &&
      grantedAt !== undefined &&
      (holdStartedAt(pod!, grantedAt) ?? Number.POSITIVE_INFINITY) + ttl.ms <= now
    ) {
      removed.push(holder);
      const what = `${plural(holder.permits, 'permit')} of ${ref} (token ${holder.token})`;
      const msg = `held for longer than ttl ${semaphore.spec.ttl} since ${holder.grantedAt}`;
      events.push(podEvent(holder, 'Warning', 'Expired', `lost ${what}: ${msg}`));
      events.push(primitiveEvent('Warning', 'Expired', `pod ${holder.pod} lost ${what}: ${msg}`));
    } else {
      kept.push(
        withExpiry(
          holder,
          grantedAt === undefined ? undefined : (holdStartedAt(pod!, grantedAt) ?? grantedAt),
          ttl,
        ),
      );
    }
  }

  // 2. Grants, in arbitration order, head-of-line blocking.
  let nextToken = Math.max(
    old?.nextToken ?? firstToken(semaphore.metadata.resourceVersion),
    1,
    ...kept.map((h) => h.token + 1),
  );
  let inUse = kept.reduce((sum, h) => sum + h.permits, 0);
  const holderUids = new Set(kept.map((h) => h.uid));
  const queue = semaphoreQueue(capacity ?? 0, input.pods, holderUids);
  const granted: Holder[] = [];
  let served = 0;
  if (specProblem === undefined && capacity !== undefined) {
    for (const pod of queue.ordered) {
      if (pod.permits > capacity - inUse) break; // strict head-of-line blocking
      const holder = withExpiry(
        { pod: pod.name, uid: pod.uid, permits: pod.permits, token: nextToken, grantedAt: nowIso },
        now,
        ttl,
      );
      nextToken += 1;
      inUse += pod.permits;
      granted.push(holder);
      served += 1;
      const what = `${plural(pod.permits, 'permit')} of ${ref} (token ${holder.token})`;
      events.push(podEvent(pod, 'Normal', 'Granted', `granted ${what}`));
      events.push(
        primitiveEvent(
          'Normal',
          'Granted',
          `granted ${what} to pod ${pod.name}; ${inUse}/${capacity} in use`,
        ),
      );
    }
  }
  const remaining = queue.ordered.slice(served);
  const waiting = remaining.length + queue.oversize.length;

  // 3. Queue display and queue events (only for pods newly listed, so re-arbitration repeats nothing).
  const queueEntries: QueueEntry[] = [
    ...remaining.slice(0, QUEUE_STATUS_LIMIT).map(toQueueEntry),
    ...queue.oversize.slice(0, QUEUE_STATUS_LIMIT).map(toQueueEntry),
  ];
  const previouslyListed = new Set((old?.queue ?? []).map((e) => e.uid));
  remaining.slice(0, QUEUE_STATUS_LIMIT).forEach((pod, i) => {
    if (previouslyListed.has(pod.uid)) return;
    const msg = `waiting for ${plural(pod.permits, 'permit')} of ${ref}: position ${i + 1} of ${remaining.length}`;
    events.push(podEvent(pod, 'Normal', 'Queued', msg));
  });
  for (const pod of queue.oversize.slice(0, QUEUE_STATUS_LIMIT)) {
    if (previouslyListed.has(pod.uid)) continue;
    const msg = `pod ${pod.name} asks for ${plural(pod.permits, 'permit')} but ${ref} has only ${capacity ?? 0}; it cannot be granted until spec.permits is raised`;
    events.push(podEvent(pod, 'Warning', 'PermitsExceedCapacity', msg));
    events.push(primitiveEvent('Warning', 'PermitsExceedCapacity', msg));
  }

  // 4. Status.
  const holders = [...kept, ...granted].sort((a, b) => a.token - b.token);
  const cap = capacity ?? 0;
  const available = Math.max(0, cap - inUse);
  const generation = semaphore.metadata.generation;
  const conditions: ConditionUpdate[] = [
    specProblem !== undefined
      ? { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: specProblem }
      : {
          type: 'Ready',
          status: 'True',
          reason: inUse > cap ? 'OverCapacity' : available === 0 ? 'Full' : 'PermitsAvailable',
          message:
            `${inUse} of ${plural(cap, 'permit')} in use, ${waiting} waiting` +
            (inUse > cap
              ? ' (spec.permits was lowered below the permits held; no grants until they return)'
              : ''),
        },
    queue.oversize.length > 0
      ? {
          type: 'Satisfiable',
          status: 'False',
          reason: 'PermitsExceedCapacity',
          message: `${describeOversize(queue.oversize)} more than spec.permits ${cap}`,
        }
      : {
          type: 'Satisfiable',
          status: 'True',
          reason: 'RequestsFit',
          message: 'every waiting pod asks for at most spec.permits',
        },
  ];
  for (const c of conditions) c.observedGeneration = generation;

  const status: SemaphoreStatus = {
    inUse,
    available,
    phase: available === 0 ? 'Full' : 'Ready',
    holders,
    waiting,
    queue: queueEntries,
    nextToken,
    conditions: setConditions(old?.conditions, conditions, nowIso),
  };
  if (generation !== undefined) status.observedGeneration = generation;
  const oldest = oldestArrival([...remaining, ...queue.oversize]);
  if (oldest !== undefined) status.oldestWaitingSince = oldest;

  const result: SemaphoreArbitrationResult = {
    status,
    changed: !jsonEqual(old, status),
    events,
    granted,
    removed,
  };
  const requeue = earliestExpiry(holders, pods, ttl, now);
  if (requeue !== undefined) result.requeueAfterMs = requeue;
  return result;
}

/** Holders by token, one per UID (a duplicate UID keeps its oldest grant). */
function uniqueHolders(holders: readonly Holder[]): Holder[] {
  const seen = new Set<string>();
  const out: Holder[] = [];
  for (const h of [...holders].sort((a, b) => a.token - b.token)) {
    if (seen.has(h.uid)) continue;
    seen.add(h.uid);
    out.push(h);
  }
  return out;
}

/** The holder with expiresAt = grantedAt + ttl under the current spec (none without a valid ttl). */
function withExpiry(holder: Holder, grantedAt: number | undefined, ttl: DurationField): Holder {
  const { expiresAt: _dropped, ...rest } = holder;
  if (ttl.kind !== 'valid' || grantedAt === undefined) return rest;
  return { ...rest, expiresAt: toIso(grantedAt + ttl.ms) };
}

function earliestExpiry(
  holders: readonly Holder[],
  pods: ReadonlyMap<string, PodView>,
  ttl: DurationField,
  now: number,
): number | undefined {
  if (ttl.kind !== 'valid') return undefined;
  let earliest: number | undefined;
  for (const h of holders) {
    const granted = fromIso(h.grantedAt);
    const pod = pods.get(h.uid);
    // A holder still in its wait is not counting down; its pod's next update re-arbitrates.
    const at = granted === undefined || !pod ? undefined : holdStartedAt(pod, granted);
    if (at === undefined) continue;
    const due = at + ttl.ms - now;
    earliest = earliest === undefined ? due : Math.min(earliest, due);
  }
  return earliest === undefined ? undefined : Math.max(0, Math.ceil(earliest));
}

function describeOversize(pods: readonly PodView[]): string {
  const shown = pods.slice(0, 5).map((p) => `${p.name} (${p.permits})`);
  const more = pods.length > 5 ? ` and ${pods.length - 5} more` : '';
  return `${pods.length === 1 ? 'pod' : 'pods'} ${shown.join(', ')}${more} ${pods.length === 1 ? 'asks' : 'ask'} for`;
}
