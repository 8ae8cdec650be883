/**
 * Records Kubernetes Events (core/v1) on pods and primitives, off the critical path: events are queued
 * and sent by a small pool; under overload the oldest are dropped (events are best effort in Kubernetes
 * too), never blocking arbitration.
 */
import type { KubeClient } from '../api/kubeClient.ts';

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
  reason: string;
  message: string;
}

export interface EventRecorderOptions {
  client: KubeClient;
  component?: string;
  instance?: string;
  maxPending?: number;
  concurrency?: number;
  onError?: (err: unknown) => void;
}

export class EventRecorder {
  private readonly pending: RecordedEvent[] = [];
  private readonly opts: EventRecorderOptions;
  private inFlight = 0;
  dropped = 0;

  constructor(opts: EventRecorderOptions) {
    this.opts = opts;
  }

  record(ev: RecordedEvent): void {
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

  private async send(ev: RecordedEvent): Promise<void> {
    const now = new Date().toISOString();
    const component = this.opts.component ?? 'konductor';
    const body = {
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
      count: 1,
    };
    try {
      await this.opts.client.create(`/api/v1/namespaces/${ev.target.namespace}/events`, body);
    } catch (err) {
      this.opts.onError?.(err);
    }
  }
}
