/**
 * A holder is released as gone only once a GET confirms it. A holder's pod can vanish from the managed-pod
 * cache while it runs (its managed label removed, its konductor.io/ annotations edited); a holder without a
 * view would be released by arbitration. So the pod is read from the API server: a pod that still exists
 * (same UID) gets a view (never eligible: it waits for nothing) and keeps its grant while it runs; only a 404,
 * or a pod of that name with another UID, lets it go. Such a holder is looked at again every
 * CONFIRMED_POD_TTL_MS until it finishes (no watch event reaches a pod outside the managed-pod cache).
 */
import type { Logger } from 'pino';
import type { PrimitiveKind } from '../api/kinds.ts';
import { isNotFound, type KubeClient } from '../api/kubeClient.ts';
import { resourcePath } from '../api/kubeRequest.ts';
import type { Pod, Primitive } from '../api/types.ts';
import type { HeldGrant } from './arbitration/kindRules.ts';
import { type PodIndex, type PrimitiveKey, slimPod } from './arbitration/podIndex.ts';
import { type PodView, toPodView } from './arbitration/podView.ts';

/**
 * How long a GET that found a holder's pod outside the managed-pod cache stands for it; such a holder is
 * re-checked this often until it finishes.
 */
export const CONFIRMED_POD_TTL_MS = 5000;

export interface HolderConfirmationOptions {
  client: KubeClient;
  log: Logger;
  podIndex: PodIndex;
  now: () => number;
}

export class HolderConfirmation {
  private readonly opts: HolderConfirmationOptions;
  /** Holders' pods found by GET outside the managed-pod cache (uid -> pod, when fetched). */
  private readonly confirmed = new Map<string, { pod: Pod; at: number }>();
  /**
   * Holders whose pod is in the managed-pod cache but no longer references the primitive (annotations
   * edited): pod uid -> those primitives, so the pod's own events re-arbitrate them too.
   */
  private readonly foreign = new Map<string, Set<PrimitiveKey>>();

  constructor(opts: HolderConfirmationOptions) {
    this.opts = opts;
  }

  /** GET a pod; undefined when it is gone (404, or a pod of that name with another UID). */
  async fetchPod(namespace: string, name: string, uid: string): Promise<Pod | undefined> {
    try {
      const pod = await this.opts.client.get<Pod>(
        resourcePath({ version: 'v1', plural: 'pods', namespace, name }),
      );
      return pod.metadata.uid === uid ? pod : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** A pod read outside the managed-pod cache stands for its holder until CONFIRMED_POD_TTL_MS. */
  confirm(uid: string, pod: Pod): void {
    this.confirmed.set(uid, { pod: slimPod(pod), at: this.opts.now() });
  }

  /** The pod is gone, or back in the managed-pod cache: nothing to confirm any more. */
  forgetPod(uid: string): void {
    this.confirmed.delete(uid);
  }

  /** The primitives a managed pod holds without referencing them (its events re-arbitrate them). */
  foreignHoldings(uid: string): Iterable<PrimitiveKey> {
    return this.foreign.get(uid) ?? [];
  }

  /** The primitive is gone (or about to be decided afresh): forget which pods hold it from outside. */
  forgetPrimitive(key: PrimitiveKey): void {
    for (const [uid, keys] of this.foreign) {
      keys.delete(key);
      if (keys.size === 0) this.foreign.delete(uid);
    }
  }

  /**
   * Views of the holders whose pods are not among `views` (the managed pods that reference the primitive),
   * read from the pod index or by GET; `recheckAfterMs` when one of them still runs outside the cache.
   */
  async absentHolderViews(
    kind: PrimitiveKind,
    key: PrimitiveKey,
    obj: Primitive,
    holders: readonly HeldGrant[],
    views: readonly PodView[],
  ): Promise<{ views: PodView[]; recheckAfterMs?: number }> {
    this.forgetPrimitive(key);
    const present = new Set(views.map((v) => v.uid));
    const out: PodView[] = [];
    let recheck = false;
    for (const h of holders) {
      if (present.has(h.uid)) continue;
      const request = { permits: h.permits };
      const indexed = this.opts.podIndex.get(h.uid);
      if (indexed) {
        out.push(toPodView(indexed.pod, request, { eligible: false }));
        const keys = this.foreign.get(h.uid) ?? new Set<PrimitiveKey>();
        keys.add(key);
        this.foreign.set(h.uid, keys);
        continue;
      }
      let hit = this.confirmed.get(h.uid);
      if (!hit || this.opts.now() - hit.at >= CONFIRMED_POD_TTL_MS) {
        const fresh = await this.fetchPod(obj.metadata.namespace ?? '', h.pod, h.uid);
        if (fresh === undefined) {
          this.confirmed.delete(h.uid);
          continue;
        }
        this.confirm(h.uid, fresh);
        hit = this.confirmed.get(h.uid)!;
        this.opts.log.info(
          { pod: `${obj.metadata.namespace}/${h.pod}`, [kind.toLowerCase()]: obj.metadata.name },
          'holder is not in the managed-pod cache but its pod still exists: keeping its grant',
        );
      }
      const view = toPodView(hit.pod, request, { eligible: false });
      out.push(view);
      if (!view.finished) recheck = true;
    }
    return recheck ? { views: out, recheckAfterMs: CONFIRMED_POD_TTL_MS } : { views: out };
  }
}
