/**
 * What a benchmarked server process saw, for bench/webhook.ts: on SIGUSR2 it prints one JSON line with
 * its GC pauses and event-loop delay since the previous SIGUSR2 (node:perf_hooks) and starts over. Shared
 * by the webhook server and its floor, so that a slow request caused by garbage collection can be told
 * from one caused by the scheduler (other processes on the core).
 */
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

export interface ServerStats {
  gc: { count: number; totalMs: number; maxMs: number; over1Ms: number };
  eventLoopDelayMs: { p50: number; p99: number; max: number };
}

export function reportStatsOnSigusr2(write: (line: string) => void): void {
  let gcMs: number[] = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs.push(e.duration);
  }).observe({ entryTypes: ['gc'] });
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  process.on('SIGUSR2', () => {
    const sorted = [...gcMs].sort((a, b) => a - b);
    const stats: ServerStats = {
      gc: {
        count: sorted.length,
        totalMs: Math.round(sorted.reduce((a, b) => a + b, 0) * 100) / 100,
        maxMs: Math.round((sorted[sorted.length - 1] ?? 0) * 100) / 100,
        over1Ms: sorted.filter((d) => d > 1).length,
      },
      eventLoopDelayMs: {
        p50: loopDelay.percentile(50) / 1e6,
        p99: loopDelay.percentile(99) / 1e6,
        max: loopDelay.max / 1e6,
      },
    };
    gcMs = [];
    loopDelay.reset();
    write(`${JSON.stringify(stats)}\n`);
  });
}
