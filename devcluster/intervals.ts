/**
 * Ground truth from the containers themselves: given when each one started and ended (their own log
 * lines, on one clock), how many ran at once. Used where a pod's API status lags the containers (the
 * real node's kubelet reports up to a second late): the demo and the e2e tests.
 */
export interface Interval {
  start: number;
  end: number;
}

/** The largest number of intervals running at once (half-open: one ending as another starts is not overlap). */
export function maxConcurrent(list: readonly Interval[]): number {
  const events = list.flatMap((i) => [
    { t: i.start, d: 1 },
    { t: i.end, d: -1 },
  ]);
  events.sort((a, b) => a.t - b.t || a.d - b.d);
  let now = 0;
  let max = 0;
  for (const e of events) {
    now += e.d;
    max = Math.max(max, now);
  }
  return max;
}
