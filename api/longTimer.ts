/**
 * Timers for user-controlled durations. Node's setTimeout takes at most 2^31-1 ms (~596 h, 24.8 days): a
 * longer delay fires after 1 ms (with a TimeoutOverflowWarning), which turned a `konductor.io/wait-timeout`
 * of 600h into an immediate timeout and a ttl of 600h into a hot reconcile loop. setLongTimeout chains
 * timers of at most MAX_TIMER_MS, so any delay fires when it should. Every setTimeout whose delay comes from
 * a user (ttl, timeout, wait-timeout, requeue-after) goes through it.
 */

/** The longest delay one Node timer can take. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimeoutOptions {
  /** Do not keep the process alive for this timer (Timeout.unref). */
  unref?: boolean;
}

/**
 * Calls `fn` after `delayMs` (any length; Infinity never fires; negative or NaN fires on the next turn of
 * the timer queue). Returns the function that cancels it.
 */
export function setLongTimeout(fn: () => void, delayMs: number, opts: LongTimeoutOptions = {}): () => void {
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;
  const arm = (remaining: number) => {
    const step = Math.min(remaining, MAX_TIMER_MS);
    timer = setTimeout(() => {
      if (cancelled) return;
      const left = remaining - step;
      if (left > 0) arm(left);
      else fn();
    }, step);
    if (opts.unref) timer.unref();
  };
  if (delayMs !== Number.POSITIVE_INFINITY) arm(Number.isNaN(delayMs) ? 0 : Math.max(0, delayMs));
  return () => {
    cancelled = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}
