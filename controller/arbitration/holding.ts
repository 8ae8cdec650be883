/**
 * The steps every kind that holds (Semaphore, Lease) takes in a decision, written once: reviewing each holder
 * (released when its pod is done, expired past its ttl, else kept with its expiry), and the Queued events of
 * the pods newly listed at the head of the queue.
 */
import type { QueueEntry } from '../../api/types.ts';
import { type PlannedEvent, podEvent, primitiveEvent } from './events.ts';
import { holdStartedAt, type PodView, releaseReason, startDeadline, startTimedOut } from './podView.ts';
import { type DurationField, fromIso, toIso } from './timestamps.ts';
import { QUEUE_STATUS_LIMIT } from './waitingQueue.ts';

/** A holder's fate in this decision; a kept holder's expiry follows spec.ttl (undefined: none). */
export type HolderFate =
  | { fate: 'released' | 'expired' | 'withdrawn' }
  | { fate: 'kept'; expiresAt: string | undefined };

/**
 * Releases the holder when its pod is gone or done (Released), withdraws the grant of a pod the scheduler did
 * not place within its start timeout (StartTimeout, a Warning on pod and primitive; see startTimedOut), expires
 * it when its hold is older than the ttl (Expired, a Warning on pod and primitive), else keeps it. The ttl counts from the end of the pod's wait
 * (holdStartedAt). `what` names the grant in the events: `2 permits of semaphore ns/x (token 7)`.
 */
export function reviewHolder(
  holder: { pod: string; uid: string; grantedAt: string },
  pod: PodView | undefined,
  ttl: DurationField,
  ttlSpec: string | undefined,
  now: number,
  what: string,
  events: PlannedEvent[],
): HolderFate {
  const why = releaseReason(pod);
  if (why !== undefined) {
    events.push(podEvent(holder, 'Normal', 'Released', `released ${what}: ${why}`));
    events.push(primitiveEvent('Normal', 'Released', `pod ${holder.pod} released ${what}: ${why}`));
    return { fate: 'released' };
  }
  if (pod && startTimedOut(pod, now)) {
    const msg =
      `the pod was not scheduled within its start timeout (${pod.startTimeoutMs} ms after its gate could go); ` +
      'it waits again at its place in the queue once it is on a node';
    events.push(podEvent(holder, 'Warning', 'StartTimeout', `lost ${what}: ${msg}`));
    events.push(primitiveEvent('Warning', 'StartTimeout', `pod ${holder.pod} lost ${what}: ${msg}`));
    return { fate: 'withdrawn' };
  }
  const grantedAt = fromIso(holder.grantedAt);
  const holdFrom = grantedAt === undefined ? undefined : holdStartedAt(pod!, grantedAt);
  if (ttl.kind === 'valid' && holdFrom !== undefined && holdFrom + ttl.ms <= now) {
    const msg = `held for longer than ttl ${ttlSpec} since ${holder.grantedAt}`;
    // Announced before the write: the pod may still be running when its grant goes (docs/arbitration.md).
    events.push({ ...podEvent(holder, 'Warning', 'Expired', `lost ${what}: ${msg}`), beforeWrite: true });
    events.push({
      ...primitiveEvent('Warning', 'Expired', `pod ${holder.pod} lost ${what}: ${msg}`),
      beforeWrite: true,
    });
    return { fate: 'expired' };
  }
  const from = grantedAt === undefined ? undefined : (holdFrom ?? grantedAt);
  return {
    fate: 'kept',
    expiresAt: ttl.kind === 'valid' && from !== undefined ? toIso(from + ttl.ms) : undefined,
  };
}

/** Milliseconds until the first of these holders' start timeouts is due (startDeadline); undefined: none. */
export function nextStartTimeout(
  holders: readonly { uid: string }[],
  pods: ReadonlyMap<string, PodView>,
  now: number,
): number | undefined {
  let first: number | undefined;
  for (const h of holders) {
    const pod = pods.get(h.uid);
    const due = pod && startDeadline(pod);
    if (due !== undefined) first = first === undefined ? due : Math.min(first, due);
  }
  return first === undefined ? undefined : Math.max(0, Math.ceil(first - now));
}

/** The earlier of two optional delays. */
export function earlier(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}

/**
 * A Queued event for each waiter newly listed in the head of the queue (status.queue), so re-arbitrating
 * repeats none; `waitingFor(pod)` names what it waits for.
 */
export function queuedEvents(
  previous: readonly QueueEntry[] | undefined,
  remaining: readonly PodView[],
  waitingFor: (pod: PodView) => string,
  events: PlannedEvent[],
): void {
  const listed = new Set((previous ?? []).map((e) => e.uid));
  remaining.slice(0, QUEUE_STATUS_LIMIT).forEach((pod, i) => {
    if (listed.has(pod.uid)) return;
    const msg = `waiting for ${waitingFor(pod)}: position ${i + 1} of ${remaining.length}`;
    events.push(podEvent(pod, 'Normal', 'Queued', msg));
  });
}
