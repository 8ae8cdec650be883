/**
 * The reconciler: level-triggered, one primitive at a time. It reads the primitive and the pods that
 * reference it from the caches, lets the primitive's kind decide (the kind table, pure), and writes the
 * decision as ONE status update guarded by resourceVersion (optimistic concurrency); the decision's Events are
 * recorded once the write succeeded. It names no kind: what a kind decides is in its row of the table.
 */
import type { Logger } from 'pino';
import { API_VERSION } from '../api/constants.ts';
import { KINDS, type PrimitiveKind } from '../api/kinds.ts';
import { isConflict, isNotFound, type KubeClient } from '../api/kubeClient.ts';
import type { Primitive } from '../api/types.ts';
import type { PlannedEvent } from './arbitration/events.ts';
import type { Decision, ObjectReads } from './arbitration/kindRules.ts';
import { rulesOf } from './arbitration/kinds.ts';
import { type IndexedPod, type PrimitiveKey, parsePrimitiveKey } from './arbitration/podIndex.ts';
import { type PodView, startTimedOut } from './arbitration/podView.ts';
import type { EventRecorder } from './eventRecorder.ts';
import type { HolderConfirmation } from './holderConfirmation.ts';
import type { ControllerMetrics } from './metrics.ts';
import { type PrimitiveCache, primitivePath } from './primitiveCache.ts';
import { type StatusRefusal, statusRefusal, withRefusalCondition } from './statusRefusal.ts';

export interface ReconcilerOptions {
  client: KubeClient;
  log: Logger;
  cache: PrimitiveCache;
  /** The managed pods that reference a primitive, and their views for its kind. */
  podsOf: (key: PrimitiveKey) => IndexedPod[];
  viewsOf: (key: PrimitiveKey, kind: PrimitiveKind) => PodView[];
  confirmation: HolderConfirmation;
  /** Reads a pod from the API server into the pod index (when newer than the cached copy). */
  refreshPod: (namespace: string, name: string, uid: string) => Promise<void>;
  reads: ObjectReads;
  events: EventRecorder;
  metrics: ControllerMetrics | undefined;
  now: () => number;
  /** A status write succeeded: wake the primitive's waiters and what depends on it. */
  written: (key: PrimitiveKey, kind: PrimitiveKind, namespace: string, name: string) => void;
}

export class Reconciler {
  private readonly opts: ReconcilerOptions;

  constructor(opts: ReconcilerOptions) {
    this.opts = opts;
  }

  /** Reconciles one primitive; a thrown error is retried by the work queue with backoff. */
  async reconcile(key: PrimitiveKey): Promise<{ requeueAfterMs?: number } | undefined> {
    const { client, cache, metrics } = this.opts;
    const { kind, namespace, name } = parsePrimitiveKey(key);
    const obj = cache.get(key);
    if (!obj) return undefined;
    const started = performance.now();
    const decision = await this.decide(kind, key, obj, this.opts.now());
    if (decision.changed) {
      const path = primitivePath(kind, namespace, name, 'status');
      // Announcements first: an Event the API server did not take throws, and the work queue retries the
      // whole decision later (the grant stays meanwhile: the safe side).
      await this.announce(kind, obj, decision.events);
      let updated: Primitive;
      const writeStartedAt = performance.now();
      try {
        updated = await client.replace<Primitive>(path, { ...obj, status: decision.status } as Primitive);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        if (isConflict(err)) {
          // Someone else wrote first (another replica, or a spec change): re-read and decide again.
          metrics?.conflicts.inc({ kind });
          cache.wrote(key, await client.get<Primitive>(primitivePath(kind, namespace, name)));
        }
        const refusal = statusRefusal(err);
        if (refusal) await this.recordRefusal(kind, key, path, obj, refusal, err);
        throw err;
      }
      cache.wrote(key, updated);
      metrics?.written({
        kind,
        key,
        before: obj,
        after: updated,
        pods: this.opts.podsOf(key),
        writeStartedAt,
      });
      this.recordEvents(
        kind,
        updated,
        decision.events.filter((ev) => !ev.beforeWrite),
      );
      this.opts.written(key, kind, namespace, name);
    }
    metrics?.reconcileSeconds.observe({ kind }, (performance.now() - started) / 1000);
    return decision.requeueAfterMs !== undefined ? { requeueAfterMs: decision.requeueAfterMs } : undefined;
  }

  /**
   * The kind's decision, from the pods that reference the primitive and, for a kind that holds, a view of
   * every holder's pod that still exists (confirmed by GET when it is not among them: holderConfirmation.ts).
   */
  private async decide(
    kind: PrimitiveKind,
    key: PrimitiveKey,
    obj: Primitive,
    now: number,
  ): Promise<Decision> {
    const rules = rulesOf(kind);
    let views = rules.readsPods ? this.opts.viewsOf(key, kind) : [];
    // A grant is withdrawn for its start timeout only from a pod the API server shows still not on a node: a
    // stale cache (a watch that lags or broke) must never take the grant of a pod that is already running.
    const holderUids = new Set(rules.holders(obj).map((h) => h.uid));
    const suspects = views.filter((v) => holderUids.has(v.uid) && startTimedOut(v, now));
    if (suspects.length > 0) {
      await Promise.all(suspects.map((v) => this.opts.refreshPod(v.namespace, v.name, v.uid)));
      views = this.opts.viewsOf(key, kind);
    }
    const absent =
      KINDS[kind].holds === 'nothing'
        ? { views: [] }
        : await this.opts.confirmation.absentHolderViews(kind, key, obj, rules.holders(obj), views);
    const d = rules.arbitrate({
      primitive: obj,
      pods: [...views, ...absent.views],
      now,
      reads: this.opts.reads,
    });
    if (absent.recheckAfterMs === undefined) return d;
    return {
      ...d,
      requeueAfterMs: Math.min(d.requeueAfterMs ?? absent.recheckAfterMs, absent.recheckAfterMs),
    };
  }

  /**
   * The API server refused the status write (too large for etcd, or invalid for the schema): nothing this
   * decision grants or releases can be recorded. Say so where users look — the Ready condition (written onto
   * the current status, which fits) and a Warning Event — and keep retrying with backoff.
   */
  private async recordRefusal(
    kind: PrimitiveKind,
    key: PrimitiveKey,
    path: string,
    obj: Primitive,
    refusal: StatusRefusal,
    err: unknown,
  ): Promise<void> {
    const marked = withRefusalCondition(obj.status, refusal, this.opts.now());
    this.opts.log.warn({ key, reason: refusal.reason, err }, 'status write refused');
    if (!marked.changed) return;
    try {
      const updated = await this.opts.client.replace<Primitive>(path, {
        ...obj,
        status: marked.status,
      } as Primitive);
      this.opts.cache.wrote(key, updated);
      this.opts.events.record({
        target: this.primitiveTarget(kind, obj),
        type: 'Warning',
        reason: refusal.reason,
        message: refusal.message,
      });
    } catch (err) {
      this.opts.log.warn({ key, err }, 'could not record the refused status write in a condition');
    }
  }

  private recordEvents(kind: PrimitiveKind, obj: Primitive, events: PlannedEvent[]): void {
    for (const ev of events) this.opts.events.record(this.recorded(kind, obj, ev));
  }

  /** Sends the decision's announcements (`beforeWrite`) and waits until the API server has taken them. */
  private async announce(kind: PrimitiveKind, obj: Primitive, events: PlannedEvent[]): Promise<void> {
    const first = events.filter((ev) => ev.beforeWrite);
    if (first.length > 0)
      await Promise.all(first.map((ev) => this.opts.events.announce(this.recorded(kind, obj, ev))));
  }

  private recorded(kind: PrimitiveKind, obj: Primitive, ev: PlannedEvent) {
    const namespace = obj.metadata.namespace ?? '';
    const target =
      ev.target === 'primitive'
        ? this.primitiveTarget(kind, obj)
        : { apiVersion: 'v1', kind: 'Pod', name: ev.target.pod, namespace, uid: ev.target.uid };
    return { target, type: ev.type, reason: ev.reason, message: ev.message };
  }

  private primitiveTarget(kind: PrimitiveKind, obj: Primitive) {
    const namespace = obj.metadata.namespace ?? '';
    return { apiVersion: API_VERSION, kind, name: obj.metadata.name ?? '', namespace, uid: obj.metadata.uid };
  }
}
