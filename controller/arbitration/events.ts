/**
 * Events the arbitration core plans. Pure data: the controller records them (on the pod or on the
 * primitive) after the status write that carries the decision has succeeded, so an event never
 * announces a decision that was lost to a write conflict.
 */

/** Where an event goes: the primitive being arbitrated, or one pod (named and identified by UID). */
export type EventTarget = 'primitive' | { pod: string; uid: string };

export type EventType = 'Normal' | 'Warning';

export type EventReason =
  /** A pod joined the head of a semaphore or lease queue (see docs/arbitration.md, "Queued events"). */
  | 'Queued'
  /** A pod was granted permits of a semaphore or the lease. */
  | 'Granted'
  /** A holder gave its grant back (its pod finished, or was deleted and its containers stopped, or is gone). */
  | 'Released'
  /** A holder exceeded the ttl and lost its grant. */
  | 'Expired'
  /** A new object adopted a pod that still runs on a grant of an earlier object of the same name. */
  | 'Adopted'
  /** A pod asks for more permits than the semaphore has at all; it is skipped, not queued ahead of others. */
  | 'PermitsExceedCapacity'
  /** A pod arrived at a barrier. */
  | 'Arrived'
  /** A barrier or gate opened. */
  | 'Opened'
  /** A barrier or gate timed out and failed. */
  | 'Failed';

export interface PlannedEvent {
  target: EventTarget;
  type: EventType;
  reason: EventReason;
  message: string;
}

export function primitiveEvent(type: EventType, reason: EventReason, message: string): PlannedEvent {
  return { target: 'primitive', type, reason, message };
}

/** An event on a pod, given as a PodView-like `{name, uid}` or a holder-like `{pod, uid}`. */
export function podEvent(
  pod: { name: string; uid: string } | { pod: string; uid: string },
  type: EventType,
  reason: EventReason,
  message: string,
): PlannedEvent {
  const name = 'pod' in pod ? pod.pod : pod.name;
  return { target: { pod: name, uid: pod.uid }, type, reason, message };
}
