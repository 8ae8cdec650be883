/**
 * A keyed, de-duplicating work queue in the manner of client-go's workqueue:
 * a key added many times before it is processed is processed once; a key is never processed by two
 * workers at once (added while processing -> processed again right after); delayed adds for
 * requeue-after (ttl expiry, timeouts) keep only the earliest deadline; failures are retried with
 * per-key exponential backoff. Delays of any length work (api/longTimer.ts): a ttl of 600h requeues in
 * 600h, not in 1 ms.
 */
import { backoffDelay, RECONCILE_BACKOFF } from '../api/backoff.ts';
import { setLongTimeout } from '../api/longTimer.ts';

export type ProcessResult = { requeueAfterMs?: number } | undefined;

export interface WorkQueueOptions {
  concurrency?: number;
  process: (key: string) => Promise<ProcessResult>;
  onError?: (key: string, err: unknown, attempt: number) => void;
  minRetryMs?: number;
  maxRetryMs?: number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; cancel: () => void }>();
  private readonly failures = new Map<string, number>();
  private readonly opts: WorkQueueOptions;
  private active = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(opts: WorkQueueOptions) {
    this.opts = opts;
  }

  get length(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) existing.cancel();
    const cancel = setLongTimeout(
      () => {
        this.timers.delete(key);
        this.add(key);
      },
      delayMs,
      { unref: true },
    );
    this.timers.set(key, { at, cancel });
  }

  /** Stops taking work; resolves when the workers in flight are done. */
  async shutdown(): Promise<void> {
    this.stopped = true;
    for (const { cancel } of this.timers.values()) cancel();
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    await this.idle();
  }

  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private pump(): void {
    const limit = this.opts.concurrency ?? 4;
    while (!this.stopped && this.active < limit && this.queue.length > 0) {
      const key = this.queue.shift()!;
      this.queued.delete(key);
      this.processing.add(key);
      this.active++;
      void this.run(key);
    }
    if (this.active === 0 && this.queue.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private async run(key: string): Promise<void> {
    try {
      const result = await this.opts.process(key);
      this.failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      const attempt = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, attempt);
      this.opts.onError?.(key, err, attempt);
      const policy = {
        baseMs: this.opts.minRetryMs ?? RECONCILE_BACKOFF.baseMs,
        maxMs: this.opts.maxRetryMs ?? RECONCILE_BACKOFF.maxMs,
      };
      this.addAfter(key, backoffDelay(attempt - 1, Math.random, policy));
    } finally {
      this.processing.delete(key);
      this.active--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
    }
  }
}
