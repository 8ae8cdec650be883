/**
 * The one jittered exponential backoff of konductor: the agent reconnecting to the manager, an informer
 * resuming its watch, the work queue retrying a failed reconcile, the self-managed certificates retrying
 * their first sync, the manager resending an Event. Pure, with the random source injected.
 *
 * Attempt n (0-based) has a ceiling of min(maxMs, baseMs * 2^n); the delay is drawn uniformly from the
 * upper half of that ceiling ("equal jitter") and never drops below baseMs. So many clients retrying after
 * the same outage (agents after a manager restart, replicas after an API server restart) spread out, yet
 * none spins faster than baseMs or waits longer than maxMs.
 *
 * `backoffCeiling` is the same schedule without the jitter, for the few waits that are one process's own
 * (a devcluster component becoming ready, the process kubelet's CrashLoopBackOff, the test harness
 * restarting the manager): nothing else retries in step with them, and the kubelet shows the pause.
 */

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

/** The agent's reconnect policy: 100 ms .. 3 s. */
export const RECONNECT_BACKOFF: BackoffPolicy = { baseMs: 100, maxMs: 3000 };
/** An informer's list/watch retry: 100 ms .. 3 s. */
export const WATCH_BACKOFF: BackoffPolicy = { baseMs: 100, maxMs: 3000 };
/** A failed reconcile's retry (a conflict is retried at once, after baseMs): 5 ms .. 5 s. */
export const RECONCILE_BACKOFF: BackoffPolicy = { baseMs: 5, maxMs: 5000 };
/** The self-managed certificates' first sync: 250 ms .. 5 s. */
export const CERTIFICATE_SETUP_BACKOFF: BackoffPolicy = { baseMs: 250, maxMs: 5000 };

/** A backoff that gives up once its pauses add up to budgetMs. */
export interface RetryBudget extends BackoffPolicy {
  budgetMs: number;
}

/**
 * An Event the API server could not take (a transport failure, 429 or 5xx): 250 ms .. 15 s, ~30 s in all, so
 * an Event outlives an API server restart (an Expired warning is the only word a user gets that a pod lost
 * its grant while it ran) without holding a sender for long.
 */
export const EVENT_RETRY: RetryBudget = { baseMs: 250, maxMs: 15_000, budgetMs: 30_000 };

/** The ceiling of retry `attempt` (0 = first retry): baseMs doubling each attempt up to maxMs. */
export function backoffCeiling(attempt: number, policy: BackoffPolicy): number {
  const n = Math.max(0, Math.floor(attempt));
  // 2^n overflows to Infinity for large n; Math.min keeps the ceiling finite.
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(n, 62));
}

/** Delay before retry `attempt` (0 = first retry). `random` returns a number in [0, 1). */
export function backoffDelay(
  attempt: number,
  random: () => number,
  policy: BackoffPolicy = RECONNECT_BACKOFF,
): number {
  const ceiling = backoffCeiling(attempt, policy);
  const drawn = random();
  const r = Number.isFinite(drawn) ? Math.min(Math.max(drawn, 0), 1) : 0;
  const delay = ceiling / 2 + (r * ceiling) / 2;
  return Math.round(Math.min(policy.maxMs, Math.max(policy.baseMs, delay)));
}

/**
 * Pause before retry `attempt` when the pauses so far add up to `waitedMs`: the jittered delay, cut to what
 * is left of the budget; undefined once the budget is spent (give up). So the pauses of all retries add up
 * to exactly budgetMs.
 */
export function budgetedBackoffDelay(
  attempt: number,
  waitedMs: number,
  random: () => number,
  budget: RetryBudget,
): number | undefined {
  const left = budget.budgetMs - waitedMs;
  if (!(left > 0)) return undefined;
  return Math.min(left, backoffDelay(attempt, random, budget));
}
