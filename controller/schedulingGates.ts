/**
 * Removes konductor's scheduling gate from the pods that have passed every primitive (scheduling-gate wait mode):
 * level-triggered, one pod at a time from a de-duplicating work queue keyed by pod UID, retried with backoff.
 * The decision is arbitration/schedulingGate.ts (pure, from the cached pod and the primitives' statuses); this
 * module only sends the patch. Only the leader patches (as only the leader grants); a new leader looks at every
 * gated pod once. When a Barrier opens, every pod at it is enqueued at once, so the gang's gates go together.
 */
import type { Logger } from 'pino';
import { isNotFound, type KubeClient } from '../api/kubeClient.ts';
import { resourcePath } from '../api/kubeRequest.ts';
import type { Primitive } from '../api/types.ts';
import type { PodIndex } from './arbitration/podIndex.ts';
import { isGated } from './arbitration/podView.ts';
import { schedulingGateRemoval } from './arbitration/schedulingGate.ts';
import { eligibleFor } from './arbitration/stages.ts';
import { WorkQueue } from './workQueue.ts';

export interface SchedulingGateOptions {
  client: KubeClient;
  log: Logger;
  podIndex: PodIndex;
  primitive: (key: string) => Primitive | undefined;
  /** Patch only while this is true (the leader, with synced caches). */
  active: () => boolean;
  /** Pods patched at once (a Barrier's gang goes together); default 16. */
  concurrency?: number;
}

export class SchedulingGates {
  private readonly opts: SchedulingGateOptions;
  private readonly queue: WorkQueue;

  constructor(opts: SchedulingGateOptions) {
    this.opts = opts;
    this.queue = new WorkQueue({
      concurrency: opts.concurrency ?? 16,
      process: async (uid) => {
        if (this.opts.active()) await this.removeIfCleared(uid);
        return undefined;
      },
      onError: (uid, err, attempt) =>
        this.opts.log[attempt > 3 ? 'warn' : 'debug'](
          { uid, err, attempt },
          'scheduling gate not removed; retrying',
        ),
    });
  }

  /** Look at this pod (if it carries the gate). */
  enqueue(uid: string): void {
    const indexed = this.opts.podIndex.get(uid);
    if (indexed && isGated(indexed.pod)) this.queue.add(uid);
  }

  /** Look at every gated pod (a new leader, or caches just synced). */
  enqueueAll(): void {
    for (const p of this.opts.podIndex.all()) this.enqueue(p.pod.metadata.uid ?? '');
  }

  shutdown(): Promise<void> {
    return this.queue.shutdown();
  }

  private async removeIfCleared(uid: string): Promise<void> {
    const indexed = this.opts.podIndex.get(uid);
    if (!indexed) return;
    const { pod, stages } = indexed;
    const cleared = eligibleFor(stages, stages.length, this.opts.primitive, uid);
    const patch = schedulingGateRemoval(pod, cleared);
    if (!patch) return;
    const namespace = pod.metadata.namespace ?? '';
    const name = pod.metadata.name ?? '';
    try {
      await this.opts.client.patchJson(
        resourcePath({ version: 'v1', plural: 'pods', namespace, name }),
        patch,
      );
      this.opts.log.info({ pod: `${namespace}/${name}` }, 'granted: scheduling gate removed');
    } catch (err) {
      if (isNotFound(err)) return;
      // A refused test (the cached pod is stale) or any other error: retried with backoff from the cache,
      // which the pod's next watch event refreshes.
      throw err;
    }
  }
}
