/**
 * Jittered exponential backoff for reconnecting to the manager: pure, with the random source injected.
 *
 * Attempt n (0-based) has a ceiling of min(maxMs, baseMs * 2^n); the delay is drawn uniformly from the
 * upper half of that ceiling ("equal jitter") and never drops below baseMs. So many agents reconnecting
 * after a manager restart spread out, yet none spins faster than baseMs or waits longer than maxMs.
 */

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

/** The agent's reconnect policy: 100 ms .. 3 s. */
export const RECONNECT_BACKOFF: BackoffPolicy = { baseMs: 100, maxMs: 3000 };

/** Delay before retry `attempt` (0 = first retry). `random` returns a number in [0, 1). */
export function backoffDelay(
  attempt: number,
  random: () => number,
  policy: BackoffPolicy = RECONNECT_BACKOFF,
): number {
  const n = Math.max(0, Math.floor(attempt));
  // 2^n overflows to Infinity for large n; Math.min keeps the ceiling finite.
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(n, 62));
  const drawn = random();
  const r = Number.isFinite(drawn) ? Math.min(Math.max(drawn, 0), 1) : 0;
  const delay = ceiling / 2 + (r * ceiling) / 2;
  return Math.round(Math.min(policy.maxMs, Math.max(policy.baseMs, delay)));
}
