/**
 * Records Kubernetes Events (core/v1) on pods and primitives, off the critical path: events are queued
 * and sent by a small pool; under overload the oldest are dropped (events are best effort in Kubernetes
 * too), never blocking arbitration. Normal events on a primitive (Granted/Released of a busy Semaphore)
 * are aggregated per reason over a short window into one Event with a count, like client-go's
 * EventCorrelator: they were most of the manager's API requests under load (docs/benchmarks.md), and the
 * per-pod events and the status already say the same.
 */
import { budgetedBackoffDelay, EVENT_RETRY, type RetryBudget } from '../api/backoff.ts';
import { KubeApiError, type KubeClient } from '../api/kubeClient.ts';
import type { EventReason } from '../api/reasons.ts';

const eventsPath = (ev: RecordedEvent) => `/api/v1/namespaces/${ev.target.namespace}/events`;

const retriable = (err: unknown) =>
  err instanceof KubeApiError && (err.statusCode === 0 || err.statusCode === 429 || err.statusCode >= 500);

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
}

export interface RecordedEvent {
  target: EventTarget;
  type: 'Normal' | 'Warning';
  reason: EventReason;
  message: string;
}

export interface EventRecorderOptions {
  client: KubeClient;
  component?: string;
  instance?: string;
  maxPending?: number;
  concurrency?: number;
  /** Aggregation window for Normal events on non-Pod objects, ms (default 1000; 0 = off). */
  aggregateMs?: number;
  /** The backoff of a send that failed for a retriable reason, and its budget (default EVENT_RETRY: ~30 s). */
  retry?: RetryBudget;
  /** A send failed; willRetry: it is tried again after a pause. */
  onError?: (err: unknown, willRetry: boolean) => void;
}

export class EventRecorder {
  private readonly pending: (RecordedEvent & { count?: number })[] = [];
  private readonly aggregates = new Map<string, { ev: RecordedEvent; count: number }>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly opts: EventRecorderOptions;
  private inFlight = 0;
  dropped = 0;

  constructor(opts: EventRecorderOptions) {
    this.opts = opts;
  }

  record(ev: RecordedEvent): void {
    const window = this.opts.aggregateMs ?? 1000;
    if (window > 0 && ev.type === 'Normal' && ev.target.kind !== 'Pod') {
      const key = `${ev.target.namespace}/${ev.target.kind}/${ev.target.name}/${ev.reason}`;
      const agg = this.aggregates.get(key);
      if (agg) {
        agg.count++;
        agg.ev = ev;
      } else {
        this.aggregates.set(key, { ev, count: 1 });
      }
      this.flushTimer ??= setTimeout(() => this.flushAggregates(), window);
      this.flushTimer.unref?.();
      return;
    }
    this.enqueue(ev);
  }

  /** Sends what the aggregation window collected: one Event per (object, reason), with its count. */
  flushAggregates(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const { ev, count } of this.aggregates.values()) {
      this.enqueue(
        count === 1
          ? ev
          : {
              ...ev,
              message: `${ev.message} (and ${count - 1} more ${ev.reason} since the last report)`,
              count,
            },
      );
    }
    this.aggregates.clear();
  }

  private enqueue(ev: RecordedEvent & { count?: number }): void {
    if (this.pending.length >= (this.opts.maxPending ?? 5000)) {
      this.pending.shift();
      this.dropped++;
    }
    this.pending.push(ev);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight < (this.opts.concurrency ?? 4) && this.pending.length > 0) {
      const ev = this.pending.shift()!;
      this.inFlight++;
      void this.send(ev).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  /**
   * Sends one Event now, outside the queue, and resolves once the API server has taken it; rejects when it
   * did not (the caller retries). For an announcement that must precede what it announces.
   */
  async announce(ev: RecordedEvent): Promise<void> {
    await this.opts.client.create(eventsPath(ev), this.body(ev));
  }

  private body(ev: RecordedEvent & { count?: number }) {
    const now = new Date().toISOString();
    const component = this.opts.component ?? 'konductor';
    return {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${ev.target.name}.`, namespace: ev.target.namespace },
      involvedObject: {
        apiVersion: ev.target.apiVersion,
        kind: ev.target.kind,
        name: ev.target.name,
        namespace: ev.target.namespace,
        uid: ev.target.uid,
      },
      reason: ev.reason,
      message: ev.message,
      type: ev.type,
      source: { component },
      reportingComponent: component,
      reportingInstance: this.opts.instance ?? component,
      firstTimestamp: now,
      lastTimestamp: now,
      count: ev.count ?? 1,
    };
  }

  private async send(ev: RecordedEvent & { count?: number }): Promise<void> {
    const body = this.body(ev);
    const budget = this.opts.retry ?? EVENT_RETRY;
    for (let attempt = 0, waitedMs = 0; ; attempt++) {
      try {
        await this.opts.client.create(eventsPath(ev), body);
        return;
      } catch (err) {
        const delay = retriable(err)
          ? budgetedBackoffDelay(attempt, waitedMs, Math.random, budget)
          : undefined;
        this.opts.onError?.(err, delay !== undefined);
        if (delay === undefined) return;
        waitedMs += delay;
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  }
}
