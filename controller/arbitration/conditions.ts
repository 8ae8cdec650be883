/**
 * metav1.Condition bookkeeping: a condition's lastTransitionTime changes only when its status changes,
 * so re-arbitrating unchanged inputs yields a byte-identical status (and no write).
 */
import { MAX_STATUS_MESSAGE } from '../../api/limits.ts';
import type { ConditionReason } from '../../api/reasons.ts';
import type { Condition, ConditionStatus } from '../../api/types.ts';
import type { PlannedEvent } from './events.ts';
import { jsonEqual } from './statusEquality.ts';

/**
 * A message as konductor stores it in a status: at most MAX_STATUS_MESSAGE characters (a longer one ends in
 * "..."), so status stays compact however many objects a message names.
 */
export function statusMessage(message: string): string {
  return message.length <= MAX_STATUS_MESSAGE ? message : `${message.slice(0, MAX_STATUS_MESSAGE - 3)}...`;
}

/** A condition to set; konductor's own are typed by its vocabulary (the defaults). */
export interface ConditionUpdate<
  Type extends string = 'Ready' | 'Satisfiable',
  Reason extends string = ConditionReason,
> {
  type: Type;
  status: ConditionStatus;
  reason: Reason;
  message: string;
  observedGeneration?: number | undefined;
}

/**
 * Returns a new condition list with `update` applied: an existing condition of the same type is replaced in
 * place (keeping its lastTransitionTime when the status did not change), a new one is appended.
 * `nowIso` is the transition time to use when the status does change.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate<string, string>,
  nowIso: string,
): Condition[] {
  const list = conditions ? [...conditions] : [];
  const index = list.findIndex((c) => c.type === update.type);
  const previous = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    type: update.type,
    status: update.status,
    reason: update.reason,
    message: statusMessage(update.message),
    lastTransitionTime:
      previous !== undefined && previous.status === update.status ? previous.lastTransitionTime : nowIso,
  };
  if (update.observedGeneration !== undefined) next.observedGeneration = update.observedGeneration;
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

/** Applies several updates in order. */
export function setConditions(
  conditions: readonly Condition[] | undefined,
  updates: readonly ConditionUpdate[],
  nowIso: string,
): Condition[] {
  let list = conditions ? [...conditions] : [];
  for (const update of updates) list = setCondition(list, update, nowIso);
  return list;
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * The Ready condition of a latched (Open or Failed) Barrier or Gate: the stored one when present, else the
 * one its phase implies. A latched primitive never changes its verdict.
 */
export function latchedReady(
  old: { phase?: string; conditions?: Condition[] },
  ref: string,
): ConditionUpdate {
  const kept = findCondition(old.conditions, 'Ready');
  // written by an earlier decision of this controller: a reason of the vocabulary
  if (kept)
    return {
      type: 'Ready',
      status: kept.status,
      reason: kept.reason as ConditionReason,
      message: kept.message,
    };
  return old.phase === 'Open'
    ? { type: 'Ready', status: 'True', reason: 'Opened', message: `${ref} is open` }
    : { type: 'Ready', status: 'False', reason: 'TimedOut', message: `${ref} failed` };
}

/**
 * Sets the Ready condition (and any `others`, e.g. a Semaphore's Satisfiable) and observedGeneration on a new
 * status, each condition observing `generation`. Every kind's decision ends here.
 */
export function withReady<S extends { conditions?: Condition[]; observedGeneration?: number }>(
  old: S | undefined,
  status: S,
  ready: ConditionUpdate,
  generation: number | undefined,
  nowIso: string,
  others: readonly ConditionUpdate[] = [],
): S {
  const updates = [ready, ...others];
  for (const c of updates) c.observedGeneration = generation;
  status.conditions = setConditions(old?.conditions, updates, nowIso);
  if (generation !== undefined) status.observedGeneration = generation;
  return status;
}

/** A decision of a kind whose status says Ready: the new status, whether it differs, its Events. */
export interface ReadyDecision<S> {
  status: S;
  changed: boolean;
  events: PlannedEvent[];
  /** Decide again after this many ms (a deadline), absent when only a change would. */
  requeueAfterMs?: number;
}

/**
 * The last step of such a decision, shared by the kinds that latch a verdict (Barrier, Gate): stamps the
 * Ready condition on the new status (withReady) and compares it with the old one.
 */
export function readyDecision<S extends { conditions?: Condition[]; observedGeneration?: number }>(
  old: S | undefined,
  generation: number | undefined,
  nowIso: string,
  events: PlannedEvent[],
): (status: S, ready: ConditionUpdate, requeueAfterMs?: number) => ReadyDecision<S> {
  return (status, ready, requeueAfterMs) => {
    withReady(old, status, ready, generation, nowIso);
    const result: ReadyDecision<S> = { status, changed: !jsonEqual(old, status), events };
    if (requeueAfterMs !== undefined) result.requeueAfterMs = requeueAfterMs;
    return result;
  };
}
