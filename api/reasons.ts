/**
 * The reason vocabularies (docs/reasons.md): one CamelCase word per reason, stable across releases, so scripts
 * and alerts can match on them. test/unit/reasons.test.ts checks that docs/reasons.md lists each.
 */

/** Reasons of the conditions konductor sets on a primitive (Ready, and a Semaphore's Satisfiable). */
export const CONDITION_REASONS = [
  'PermitsAvailable',
  'Full',
  'OverCapacity',
  'InvalidSpec',
  'RequestsFit',
  'PermitsExceedCapacity',
  'Available',
  'Held',
  'Waiting',
  'Opened',
  'TimedOut',
  /** The API server refused the status write for its size (Ready=False; statusRefusal.ts). */
  'StatusTooLarge',
  /** The API server refused the status write for the schema (Ready=False). */
  'StatusInvalid',
] as const;
export type ConditionReason = (typeof CONDITION_REASONS)[number];

/** Reasons of the Events konductor records on pods and primitives. */
export const EVENT_REASONS = [
  /** A pod joined the head of a semaphore or lease queue (see docs/arbitration.md, "Queued events"). */
  'Queued',
  /** A pod was granted permits of a semaphore or the lease. */
  'Granted',
  /** A holder gave its grant back (its pod finished, or was deleted and its containers stopped, or is gone). */
  'Released',
  /** A holder exceeded the ttl and lost its grant. */
  'Expired',
  /**
   * A holder granted while unscheduled (scheduling-gate mode) was not placed on a node within its
   * konductor.io/start-timeout and lost its grant (docs/arbitration.md, "Wait modes").
   */
  'StartTimeout',
  /** A new object adopted a pod that still runs on a grant of an earlier object of the same name. */
  'Adopted',
  /** A pod asks for more permits than the semaphore has at all; it is skipped, not queued ahead of others. */
  'PermitsExceedCapacity',
  /** A pod arrived at a barrier. */
  'Arrived',
  /** A barrier or gate opened. */
  'Opened',
  /** A barrier or gate timed out and failed. */
  'Failed',
  /** The status write carrying a decision was refused (a Warning on the primitive, with the condition). */
  'StatusTooLarge',
  'StatusInvalid',
] as const;
export type EventReason = (typeof EVENT_REASONS)[number];

/** Why a wait stream ends without a grant (the `failed` event of the agent protocol). */
export const FAILURE_REASONS = [
  'WaitTimeout',
  'BarrierFailed',
  'GateFailed',
  'PodTerminating',
  'InvalidRequest',
  'Unauthorized',
  'Internal',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

/** `status.reason` of a denied AdmissionReview (Kubernetes' StatusReason words). */
export const ADMISSION_REASONS = ['BadRequest', 'Forbidden', 'InternalError'] as const;
export type AdmissionReason = (typeof ADMISSION_REASONS)[number];
