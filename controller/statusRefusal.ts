/**
 * A status write the API server refuses for what it is — too large for etcd (1.5 MiB by default), or invalid
 * for the CRD schema (e.g. more list items than maxItems) — will be refused again, unlike a conflict or an
 * outage. Nothing the decision grants or releases can be recorded until the cause is fixed, so the controller
 * says so on the object: the Ready condition (reason StatusTooLarge or StatusInvalid) written onto the status
 * it already has (which fits), and a Warning Event. Both pure: the classification of the API's answer and the
 * status that carries the condition.
 */

import { KubeApiError } from '../api/kubeClient.ts';
import type { ConditionReason } from '../api/reasons.ts';
import type { Condition } from '../api/types.ts';
import { setCondition } from './arbitration/conditions.ts';
import { jsonEqual } from './arbitration/statusEquality.ts';
import { toIso } from './arbitration/timestamps.ts';

export type RefusalReason = Extract<ConditionReason, 'StatusTooLarge' | 'StatusInvalid'>;

export interface StatusRefusal {
  reason: RefusalReason;
  /** What to tell the user (the API server's words, and what to do). */
  message: string;
}

/** etcd's answer to a request over --max-request-bytes, as kube-apiserver passes it on (HTTP 500). */
const ETCD_TOO_LARGE = /request is too large/i;

/** The refusal a failed status write stands for, or undefined when retrying may succeed. */
export function statusRefusal(err: unknown): StatusRefusal | undefined {
  if (!(err instanceof KubeApiError)) return undefined;
  const apiMessage = apiMessageOf(err);
  if (err.statusCode === 413 || ETCD_TOO_LARGE.test(apiMessage)) {
    return {
      reason: 'StatusTooLarge',
      message:
        `the status write was refused for its size (${apiMessage}); nothing can be granted or released until ` +
        'the status fits: fewer holders, waiters or conditions on this object (docs/arbitration.md, "Status size")',
    };
  }
  if (err.statusCode === 422) {
    return {
      reason: /must have at most|Too long|Too many/i.test(apiMessage) ? 'StatusTooLarge' : 'StatusInvalid',
      message: `the status write was refused by the schema (${apiMessage}); nothing can be granted or released until it is accepted`,
    };
  }
  return undefined;
}

function apiMessageOf(err: KubeApiError): string {
  const body = err.body as { message?: unknown } | undefined;
  return typeof body?.message === 'string' ? body.message : err.message;
}

/**
 * `status` (the one the API server holds) with Ready=False for the refusal. `changed` is false when it
 * already says exactly that (no write, no new Event).
 */
export function withRefusalCondition<S extends { conditions?: Condition[] }>(
  status: S | undefined,
  refusal: StatusRefusal,
  now: number,
): { status: S; changed: boolean } {
  const base = (status ?? {}) as S;
  const conditions = setCondition(
    base.conditions,
    { type: 'Ready', status: 'False', reason: refusal.reason, message: refusal.message },
    toIso(now),
  );
  const next = { ...base, conditions };
  return { status: next, changed: !jsonEqual(base.conditions, conditions) };
}
