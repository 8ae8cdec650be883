/**
 * The controller as the agent API sees it: subscriptions to a pod's changes, the pod's standing in each of
 * its stages (the wait stream's progress lines), and the release hint of the hold sidecar. Read-only over the
 * caches, but for the hint, which reads the pod from the API server at once.
 */
import type { PrimitiveKind } from '../api/kinds.ts';
import type { Primitive } from '../api/types.ts';
import { rulesOf } from './arbitration/kinds.ts';
import { type IndexedPod, type PodIndex, type PrimitiveKey, slimPod } from './arbitration/podIndex.ts';
import { releaseReason, toPodView } from './arbitration/podView.ts';
import { NO_QUEUE, type QueueOrder, queueOrder, type StageState, stageState } from './arbitration/stages.ts';
import type { HolderConfirmation } from './holderConfirmation.ts';
import type { ControllerMetrics } from './metrics.ts';
import { olderVersion } from './primitiveCache.ts';

/** What POST /v1/release answers: what the API state lets go now, and what stays held until it does. */
export interface ReleaseCheck {
  /** Grants the pod's state in the API (gone, finished) lets go: released by the next status write. */
  released: { kind: PrimitiveKind; name: string; namespace: string; token: number }[];
  /** Grants kept: the API does not show the pod's main containers stopped (yet). */
  held: { kind: PrimitiveKind; name: string; namespace: string; token: number }[];
}

export interface AgentViewOptions {
  podIndex: PodIndex;
  primitive: (key: PrimitiveKey) => Primitive | undefined;
  /** The views of the pods that reference `key` (for queue orders). */
  viewsOf: (key: PrimitiveKey, kind: PrimitiveKind) => ReturnType<typeof toPodView>[];
  confirmation: HolderConfirmation;
  enqueue: (key: PrimitiveKey) => void;
  metrics: ControllerMetrics | undefined;
}

export class AgentView {
  private readonly opts: AgentViewOptions;
  private readonly listeners = new Map<string, Set<() => void>>();
  /** Queue orders for progress lines, valid while neither the primitive nor any managed pod changed. */
  private readonly queueOrders = new Map<PrimitiveKey, { stamp: string; order: QueueOrder }>();
  /** Bumped on every managed-pod change: invalidates the memoized queue orders. */
  private podEpoch = 0;
  /** Bumped on every primitive event and write (eligibility for later stages depends on earlier ones). */
  private primitiveEpoch = 0;

  constructor(opts: AgentViewOptions) {
    this.opts = opts;
  }

  podsChanged(): void {
    this.podEpoch++;
  }

  primitivesChanged(): void {
    this.primitiveEpoch++;
  }

  /** The primitive is gone. */
  forget(key: PrimitiveKey): void {
    this.queueOrders.delete(key);
  }

  /** Subscribe to changes that may affect a pod's standing; returns the unsubscribe function. */
  subscribe(uid: string, fn: () => void): () => void {
    let set = this.listeners.get(uid);
    if (!set) {
      set = new Set();
      this.listeners.set(uid, set);
    }
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.listeners.delete(uid);
    };
  }

  notify(uid: string): void {
    const set = this.listeners.get(uid);
    if (set) for (const fn of [...set]) fn();
  }

  /** The pod's state in each of its stages, in acquisition order (up to the first it has not passed). */
  standing(uid: string): { pod: IndexedPod; stages: StageState[] } | undefined {
    const indexed = this.opts.podIndex.get(uid);
    if (!indexed) return undefined;
    const pod = indexed.pod;
    const ref = { name: pod.metadata.name ?? '', namespace: pod.metadata.namespace ?? '', uid };
    const states: StageState[] = [];
    for (const stage of indexed.stages) {
      const primitive = this.opts.primitive(stage.key);
      const state = stageState(stage, primitive, ref, () =>
        this.queueOrderOf(stage.key, stage.kind, primitive),
      );
      states.push(state);
      if (state.state !== 'passed') break;
    }
    return { pod: indexed, stages: states };
  }

  private queueOrderOf(key: PrimitiveKey, kind: PrimitiveKind, primitive: Primitive | undefined): QueueOrder {
    if (!primitive || !rulesOf(kind).queue) return NO_QUEUE;
    // Eligibility for a stage depends on the earlier stages' primitives: any primitive change invalidates too.
    const stamp = `${primitive.metadata.resourceVersion}|${this.podEpoch}|${this.primitiveEpoch}`;
    const hit = this.queueOrders.get(key);
    if (hit?.stamp === stamp) return hit.order;
    const order = queueOrder(kind, primitive, this.opts.viewsOf(key, kind));
    this.queueOrders.set(key, { stamp, order });
    return order;
  }

  /**
   * The hold sidecar (or anyone holding a token bound to the pod) says the pod is stopping: a HINT, never a
   * release by itself. The pod is read from the API server at once and the primitives it references are
   * re-arbitrated from that; a grant goes back only if the API says the pod is gone or finished (a token
   * minted for a running pod releases nothing). Answers what the API state lets go and what it keeps.
   */
  async recheck(pod: { namespace: string; name: string; uid: string }): Promise<ReleaseCheck> {
    const { podIndex, confirmation, enqueue } = this.opts;
    this.opts.metrics?.releaseRequested(pod.uid);
    const fresh = await confirmation.fetchPod(pod.namespace, pod.name, pod.uid);
    const indexed = podIndex.get(pod.uid);
    this.podEpoch++;
    if (fresh === undefined) {
      confirmation.forgetPod(pod.uid);
      if (indexed) for (const k of podIndex.remove(pod.uid)) enqueue(k);
    } else if (indexed) {
      confirmation.forgetPod(pod.uid);
      if (!olderVersion(fresh.metadata.resourceVersion, indexed.pod.metadata.resourceVersion))
        for (const k of podIndex.upsert(slimPod(fresh))) enqueue(k);
    } else {
      confirmation.confirm(pod.uid, fresh);
    }
    this.notify(pod.uid);
    const view = fresh === undefined ? undefined : toPodView(slimPod(fresh), {}, { eligible: false });
    const goes = releaseReason(view) !== undefined;
    const out: ReleaseCheck = { released: [], held: [] };
    for (const st of indexed?.stages ?? []) {
      const p = this.opts.primitive(st.key);
      const token =
        p &&
        rulesOf(st.kind)
          .holders(p)
          .find((h) => h.uid === pod.uid)?.token;
      if (token === undefined) continue;
      (goes ? out.released : out.held).push({
        kind: st.kind,
        name: st.name,
        namespace: pod.namespace,
        token,
      });
      enqueue(st.key);
    }
    return out;
  }
}
