/**
 * Semaphore arbitration: one pure decision from (the Semaphore, the pods that reference it, now) to the
 * next status, the events to record and when to look again; and the Semaphore's row of the kind table.
 *
 * Policy (docs/arbitration.md has the long form):
 * - Releases first (holding.ts: pod gone or finished -> Released; held past spec.ttl -> Expired); the grants
 *   they make possible are decided in the same call, so they land in the same write.
 * - The first decision (no status yet) adopts the pods still running on a grant of an earlier Semaphore of
 *   the same name and starts its tokens above every earlier one (adoption.ts).
 * - Waiters are granted in arbitration order (priority desc, arrival asc, UID asc) with STRICT HEAD-OF-LINE
 *   BLOCKING: when the head needs more permits than are free, nobody behind it is granted, even a request
 *   that would fit (bypass would starve a big request forever under steady small load).
 * - A request for more than spec.permits can never be granted: it leaves the queue order (listed last in
 *   status.queue, counted in status.waiting), gets a PermitsExceedCapacity Warning and Satisfiable=False,
 *   and is granted in its normal place once spec.permits grows enough.
 * - Every grant takes the fencing token status.nextToken and increments it.
 * - Lowering spec.permits never revokes a live holder; an invalid spec stops grants, releases still happen.
 *
 * Safety: a grant needs permits <= spec.permits - inUse, so if the invariant held before a decision it
 * holds after it.
 */
import type { Holder, QueueEntry, Semaphore, SemaphoreStatus } from '../../api/types.ts';
import { adoptionMessage, adoptSemaphoreHolders, firstToken } from './adoption.ts';
import { type ConditionUpdate, withReady } from './conditions.ts';
import { type PlannedEvent, podEvent, primitiveEvent } from './events.ts';
import { earlier, nextStartTimeout, queuedEvents, reviewHolder } from './holding.ts';
import type { Decision, KindRules } from './kindRules.ts';
import { holdStartedAt, type PodView } from './podView.ts';
import { jsonEqual } from './statusEquality.ts';
import { type DurationField, fromIso, readDuration, toIso } from './timestamps.ts';
import {
  indexByUid,
  oldestArrival,
  QUEUE_STATUS_LIMIT,
  queueEntries,
  waitersInOrder,
} from './waitingQueue.ts';
import { plural, podNames } from './wording.ts';

/** `pods`: as ArbitrationInput's (kindRules.ts), every holder's pod that still exists included. */
export interface SemaphoreArbitrationInput {
  semaphore: Semaphore;
  pods: readonly PodView[];
  now: number;
}

export interface SemaphoreArbitrationResult extends Decision {
  status: SemaphoreStatus;
  /** Holders granted by this decision. */
  granted: Holder[];
  /** Holders removed by this decision (released or expired). */
  removed: Holder[];
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
  const waiting = waitersInOrder(pods, (uid) => holderUids.has(uid));
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
    const what = `${plural(holder.permits, 'permit')} of ${ref} (token ${holder.token})`;
    const review = reviewHolder(holder, pods.get(holder.uid), ttl, semaphore.spec?.ttl, now, what, events);
    if (review.fate !== 'kept') removed.push(holder);
    else kept.push(withExpiry(holder, review.expiresAt));
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
        ttl.kind === 'valid' ? toIso(now + ttl.ms) : undefined,
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
  const listed: QueueEntry[] = [...queueEntries(remaining), ...queueEntries(queue.oversize)];
  queuedEvents(old?.queue, remaining, (pod) => `${plural(pod.permits, 'permit')} of ${ref}`, events);
  const previouslyListed = new Set((old?.queue ?? []).map((e) => e.uid));
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
  const ready: ConditionUpdate =
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
        };
  const satisfiable: ConditionUpdate =
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
        };
  const status: SemaphoreStatus = {
    inUse,
    available,
    phase: available === 0 ? 'Full' : 'Ready',
    holders,
    waiting,
    queue: listed,
    nextToken,
  };
  const oldest = oldestArrival([...remaining, ...queue.oversize]);
  if (oldest !== undefined) status.oldestWaitingSince = oldest;
  withReady(old, status, ready, semaphore.metadata.generation, nowIso, [satisfiable]);

  const result: SemaphoreArbitrationResult = {
    status,
    changed: !jsonEqual(old, status),
    events,
    granted,
    removed,
  };
  const requeue = earlier(earliestExpiry(holders, pods, ttl, now), nextStartTimeout(holders, pods, now));
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

/** The holder with its expiry under the current spec (none without a valid ttl). */
function withExpiry(holder: Holder, expiresAt: string | undefined): Holder {
  const { expiresAt: _dropped, ...rest } = holder;
  return expiresAt === undefined ? rest : { ...rest, expiresAt };
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

/** The Semaphore's row of the kind table (./kinds.ts). */
export const semaphoreRules: KindRules<Semaphore> = {
  arbitrate: ({ primitive, pods, now }) => arbitrateSemaphore({ semaphore: primitive, pods, now }),
  readsPods: true,
  holders: (s) =>
    (s.status?.holders ?? []).map((h) => ({
      pod: h.pod,
      uid: h.uid,
      permits: h.permits,
      token: h.token,
      grantedAt: h.grantedAt,
      ...(h.expiresAt ? { expiresAt: h.expiresAt } : {}),
    })),
  grantOf: (s, uid) => {
    const held = (s.status?.holders ?? []).find((h) => h.uid === uid);
    return held && { token: held.token, grantedAt: held.grantedAt };
  },
  queue: (s, views) => {
    const q = semaphoreQueue(
      semaphoreCapacity(s) ?? 0,
      views,
      new Set((s.status?.holders ?? []).map((h) => h.uid)),
    );
    return [...q.ordered, ...q.oversize];
  },
  standing: (s, stage, _pod, place) => ({
    waiting: { ...place(), inUse: s.status?.inUse ?? 0, capacity: s.spec.permits, requested: stage.permits },
  }),
  figures: (s) => ({
    capacity: s.spec?.permits ?? 0,
    inUse: s.status?.inUse ?? 0,
    waiting: s.status?.waiting ?? 0,
  }),
  explain: {
    use: (f) => `${f.inUse}/${f.capacity} permits in use`,
    passed: (stage, g) => `granted ${plural(stage.permits, 'permit')} at ${g.grantedAt} (token ${g.token})`,
    queueReason: (s, i, v) => {
      const cap = semaphoreCapacity(s) ?? 0;
      const free = Math.max(0, cap - (s.status?.inUse ?? 0));
      if (v.permits > cap)
        return `asks ${plural(v.permits, 'permit')}, more than spec.permits ${cap}: not granted until spec.permits is raised`;
      if (i > 0) return `behind ${plural(i, 'pod')} (strict order: nobody is granted past the head)`;
      return v.permits <= free
        ? `next: ${plural(free, 'permit')} free, the manager grants it now`
        : `needs ${plural(v.permits, 'permit')}, ${free} free: waits for holders to release ${v.permits - free} more`;
    },
    waiting: (s, stage, standing, ahead) => {
      const cap = semaphoreCapacity(s) ?? 0;
      const inUse = s.status?.inUse ?? 0;
      const asks = standing.requested ?? stage.permits;
      const detail = `${inUse}/${cap} permits in use; it asks ${asks}`;
      if (!standing.position) return { detail, toStart: 'the pod must be scheduled first' };
      if (asks > cap) return { detail, toStart: `spec.permits (${cap}) must be raised to at least ${asks}` };
      const before = ahead();
      const release = Math.max(
        0,
        before.reduce((n, p) => n + p.permits, 0) + asks - Math.max(0, cap - inUse),
      );
      const holders = (s.status?.holders ?? []).map((h) => `${h.pod} (${plural(h.permits, 'permit')})`);
      const parts: string[] = [];
      if (before.length > 0)
        parts.push(
          `the ${plural(before.length, 'pod')} ahead of it (${podNames(before)}) must be granted first`,
        );
      if (release > 0)
        parts.push(
          `${plural(release, 'permit')} must be released (held now by ${holders.join(', ') || 'nobody'})`,
        );
      return {
        detail,
        toStart: parts.length > 0 ? parts.join('; then ') : 'nothing: the manager grants it now',
      };
    },
    holderColumns: 'grants',
    listed: (s) => ({ rows: [...semaphoreRules.holders(s)] }),
  },
};
