/**
 * Events the arbitration core plans. Pure data: the controller records them (on the pod or on the
 * primitive) after the status write that carries the decision has succeeded, so an event never
 * announces a decision that was lost to a write conflict — except an announcement (`beforeWrite`): a grant
 * taken from a pod that may still run (a ttl expiry) is announced first and only then written, so a manager
 * that dies between the two never leaves a revocation nobody was told of (the fault campaign found one:
 * the manager SIGKILLed 0.4 s after the status write, its Expired Events still queued).
 */

import type { EventReason } from '../../api/reasons.ts';

export type { EventReason };

/** Where an event goes: the primitive being arbitrated, or one pod (named and identified by UID). */
export type EventTarget = 'primitive' | { pod: string; uid: string };

export type EventType = 'Normal' | 'Warning';

export interface PlannedEvent {
  target: EventTarget;
  type: EventType;
  reason: EventReason;
  message: string;
  /** Sent, and accepted by the API server, before the status write that carries the decision. */
  beforeWrite?: true;
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
