/**
 * The konductor controller: informers for the four primitives, managed pods and Jobs; a de-duplicating
 * work queue keyed by primitive; level-triggered reconciles that run the pure arbitration and write the
 * decision as ONE status update guarded by resourceVersion (optimistic concurrency). Only the leader
 * writes. The caches are only caches: every decision is derived from the objects in the API server.
 */
import type { Logger } from 'pino';
import { API_VERSION, KINDS, MANAGED_LABEL, type PrimitiveKind } from '../api/constants.ts';
import { Informer, type InformerEvent } from '../api/informer.ts';
import { isConflict, isNotFound, type KubeClient, resourcePath } from '../api/kubeClient.ts';
import type { Barrier, Gate, Job, Lease, Pod, Primitive, Semaphore } from '../api/types.ts';
import { arbitrateBarrier } from './arbitration/barrier.ts';
import type { PlannedEvent } from './arbitration/events.ts';
import { evaluateGate, type GateTarget, referencesOf } from './arbitration/gate.ts';
import { arbitrateLease } from './arbitration/lease.ts';
import { type PodView, podRequestFor, toPodView } from './arbitration/podView.ts';
import { arbitrateSemaphore } from './arbitration/semaphore.ts';
import { EventRecorder } from './eventRecorder.ts';
import { LeaderElector } from './leaderElection.ts';
import type { ControllerMetrics } from './metrics.ts';
import {
  type IndexedPod,
  PodIndex,
  type PrimitiveKey,
  parsePrimitiveKey,
  primitiveKey,
  slimPod,
} from './podIndex.ts';
import { eligibleFor, type QueueOrder, queueOrder, type StageState, stageState } from './stages.ts';
import { WorkQueue } from './workQueue.ts';

export interface ControllerOptions {
  client: KubeClient;
  logger: Logger;
  /** Watch one namespace only; all namespaces when undefined. */
  namespace?: string;
  identity: string;
  leaderElect?: boolean;
  leaderElectionNamespace?: string;
  leaderElectionName?: string;
  metrics?: ControllerMetrics;
  concurrency?: number;
  /** Clock (ms); injectable for tests. */
  now?: () => number;
}

interface Decision {
  status: unknown;
  changed: boolean;
  events: PlannedEvent[];
  requeueAfterMs?: number;
  grants: number;
}

const PRIMITIVE_KINDS = Object.keys(KINDS) as PrimitiveKind[];

/** Compares resourceVersions as integers (etcd revisions), so a fresher written copy wins over an older watch event. */
function newer(a: Primitive | undefined, b: Primitive | undefined): Primitive | undefined {
  if (!a) return b;
  if (!b) return a;
  try {
    return BigInt(a.metadata.resourceVersion ?? '0') >= BigInt(b.metadata.resourceVersion ?? '0') ? a : b;
  } catch {
    return b;
  }
}

export class KonductorController {
  readonly podIndex = new PodIndex();
  private readonly opts: ControllerOptions;
  private readonly client: KubeClient;
  private readonly log: Logger;
  private readonly primitiveInformers = new Map<PrimitiveKind, Informer<Primitive>>();
  private readonly podInformer: Informer<Pod>;
  private readonly jobInformer: Informer<Job>;
  /** Copies returned by our own status writes, fresher than the watch until it catches up. */
  private readonly written = new Map<PrimitiveKey, Primitive>();
  private readonly released = new Set<string>();
  /** Queue orders for progress lines, valid while neither the primitive nor any managed pod changed. */
  private readonly queueOrders = new Map<PrimitiveKey, { stamp: string; order: QueueOrder }>();
  /** Bumped on every managed-pod event: invalidates the memoized queue orders. */
  private podEpoch = 0;
  /** Bumped on every primitive event and write (eligibility for later stages depends on earlier ones). */
  private primitiveEpoch = 0;
  private readonly podListeners = new Map<string, Set<() => void>>();
  private readonly queue: WorkQueue;
  private readonly events: EventRecorder;
  private readonly elector: LeaderElector | undefined;
  private leading: boolean;

  constructor(opts: ControllerOptions) {
    this.opts = opts;
    this.client = opts.client;
    this.log = opts.logger;
    this.leading = !opts.leaderElect;
    const ns = opts.namespace;
    for (const kind of PRIMITIVE_KINDS) {
      const path = resourcePath({
        group: 'sync.konductor.io',
        version: 'v1',
        plural: KINDS[kind].plural,
        namespace: ns,
      });
      this.primitiveInformers.set(
        kind,
        new Informer<Primitive>(this.client, {
          path,
          onEvent: (ev) => this.onPrimitive(kind, ev),
          onError: (err, n) => this.watchError(`${kind} informer`, err, n),
        }),
      );
    }
    this.podInformer = new Informer<Pod>(this.client, {
      path: resourcePath({ version: 'v1', plural: 'pods', namespace: ns }),
      labelSelector: `${MANAGED_LABEL}=true`,
      transform: slimPod,
      onEvent: (ev) => this.onPod(ev),
      onError: (err, n) => this.watchError('pod informer', err, n),
    });
    this.jobInformer = new Informer<Job>(this.client, {
      path: resourcePath({ group: 'batch', version: 'v1', plural: 'jobs', namespace: ns }),
      transform: (j) =>
        ({
          apiVersion: 'batch/v1',
          kind: 'Job',
          metadata: {
            name: j.metadata.name,
            namespace: j.metadata.namespace,
            uid: j.metadata.uid,
            resourceVersion: j.metadata.resourceVersion,
          },
          spec: {},
          status: {
            conditions: j.status?.conditions,
            // read by the Gate's condition message ("not Complete yet (active 1, succeeded 0, failed 0)")
            active: j.status?.active,
            succeeded: j.status?.succeeded,
            failed: j.status?.failed,
          },
        }) as Job,
      onEvent: (ev) => this.onJob(ev),
      onError: (err, n) => this.watchError('job informer', err, n),
    });
    this.queue = new WorkQueue({
      concurrency: opts.concurrency ?? 4,
      process: (key) => this.reconcile(key),
      onError: (key, err, attempt) => {
        if (!isConflict(err)) this.log.warn({ key, err: String(err), attempt }, 'reconcile failed; retrying');
      },
    });
    this.events = new EventRecorder({
      client: this.client,
      instance: opts.identity,
      onError: (err) => this.log.debug({ err: String(err) }, 'event not recorded'),
    });
    if (opts.leaderElect) {
      this.elector = new LeaderElector({
        client: this.client,
        namespace: opts.leaderElectionNamespace ?? 'default',
        name: opts.leaderElectionName ?? 'konductor-leader',
        identity: opts.identity,
        onStartedLeading: () => {
          this.log.info({ identity: opts.identity }, 'became leader');
          this.leading = true;
          this.enqueueAll();
        },
        onStoppedLeading: () => {
          this.log.info({ identity: opts.identity }, 'stopped leading');
          this.leading = false;
        },
        onError: (err) => this.log.warn({ err: String(err) }, 'leader election error'),
      });
    }
    opts.metrics?.observe(this);
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }

  private watchError(what: string, err: unknown, attempt: number): void {
    const level = attempt > 3 ? 'warn' : 'debug';
    this.log[level]({ err: String(err), attempt }, `${what}: watch interrupted, resuming`);
  }

  start(): this {
    for (const inf of this.primitiveInformers.values()) inf.start();
    this.podInformer.start();
    this.jobInformer.start();
    void this.synced().then(() => {
      this.log.info({ pods: this.podIndex.size }, 'caches synced');
      if (this.elector) this.elector.start();
      else this.enqueueAll();
    });
    return this;
  }

  /** Resolves when every informer has listed once (the /readyz condition). */
  async synced(): Promise<void> {
    await Promise.all([
      ...[...this.primitiveInformers.values()].map((i) => i.synced),
      this.podInformer.synced,
      this.jobInformer.synced,
    ]);
  }

  get hasSynced(): boolean {
    return (
      [...this.primitiveInformers.values()].every((i) => i.hasSynced) &&
      this.podInformer.hasSynced &&
      this.jobInformer.hasSynced
    );
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Primitives waiting in the work queue (a metric). */
  get queueDepth(): number {
    return this.queue.length;
  }

  get podIndexSize(): number {
    return this.podIndex.size;
  }

  /** Every cached primitive (the metrics' per-primitive gauges). */
  *primitives(): Iterable<{ kind: PrimitiveKind; primitive: Primitive }> {
    for (const [kind, inf] of this.primitiveInformers)
      for (const p of inf.list()) yield { kind, primitive: p };
  }

  /** Every managed pod in the index. */
  pods(): Iterable<IndexedPod> {
    return this.podIndex.all();
  }

  async stop(): Promise<void> {
    await this.elector?.stop();
    this.leading = false;
    await this.queue.shutdown();
    this.events.flushAggregates();
    for (const inf of this.primitiveInformers.values()) inf.stop();
    this.podInformer.stop();
    this.jobInformer.stop();
  }

  private enqueueAll(): void {
    for (const [kind, inf] of this.primitiveInformers) {
      for (const p of inf.list())
        this.queue.add(primitiveKey(kind, p.metadata.namespace ?? '', p.metadata.name ?? ''));
    }
  }

  // ---- cache access -------------------------------------------------------------------------------

  primitive(key: PrimitiveKey): Primitive | undefined {
    const { kind, namespace, name } = parsePrimitiveKey(key);
    const cached = this.primitiveInformers.get(kind)?.get(`${namespace}/${name}`);
    const w = this.written.get(key);
    const best = newer(w, cached);
    if (w && best === cached && cached) this.written.delete(key);
    if (!cached && w) {
      // deleted since we wrote it
      this.written.delete(key);
      return undefined;
    }
    return best;
  }

  primitiveExists(kind: PrimitiveKind, namespace: string, name: string): boolean {
    return this.primitiveInformers.get(kind)?.get(`${namespace}/${name}`) !== undefined;
  }

  // ---- event handlers -----------------------------------------------------------------------------

  private onPrimitive(kind: PrimitiveKind, ev: InformerEvent<Primitive>): void {
    const key = primitiveKey(kind, ev.object.metadata.namespace ?? '', ev.object.metadata.name ?? '');
    this.primitiveEpoch++;
    if (ev.type === 'deleted') {
      this.written.delete(key);
      this.queueOrders.delete(key);
    }
    this.queue.add(key);
    this.afterPrimitiveChange(key, kind, ev.object.metadata.namespace ?? '', ev.object.metadata.name ?? '');
  }

  /** A primitive's status changed: wake its waiters, re-arbitrate later stages and dependent gates. */
  private afterPrimitiveChange(
    key: PrimitiveKey,
    kind: PrimitiveKind,
    namespace: string,
    name: string,
  ): void {
    for (const p of this.podIndex.podsOf(key)) {
      this.notifyPod(p.pod.metadata.uid ?? '');
      if (p.stages.length > 1) for (const st of p.stages) if (st.key !== key) this.queue.add(st.key);
    }
    this.enqueueGatesReferencing(kind, namespace, name);
  }

  private enqueueGatesReferencing(type: string, namespace: string, name: string): void {
    const gates = this.primitiveInformers.get('Gate');
    if (!gates) return;
    for (const g of gates.list()) {
      const gate = g as Gate;
      if (gate.status?.phase === 'Open' || gate.status?.phase === 'Failed') continue;
      const gns = gate.metadata.namespace ?? '';
      if (
        referencesOf(gate).some(
          (r) => r.type === type && r.name === name && (r.namespace ?? gns) === namespace,
        )
      ) {
        this.queue.add(primitiveKey('Gate', gns, gate.metadata.name ?? ''));
      }
    }
  }

  private onPod(ev: InformerEvent<Pod>): void {
    const uid = ev.object.metadata.uid ?? '';
    this.podEpoch++;
    const keys = ev.type === 'deleted' ? this.podIndex.remove(uid) : this.podIndex.upsert(ev.object);
    if (ev.type === 'deleted') this.released.delete(uid);
    this.opts.metrics?.podChanged(ev.type, ev.object);
    for (const k of keys) this.queue.add(k);
    this.notifyPod(uid);
  }

  private onJob(ev: InformerEvent<Job>): void {
    this.enqueueGatesReferencing('Job', ev.object.metadata.namespace ?? '', ev.object.metadata.name ?? '');
  }

  // ---- agent-facing -------------------------------------------------------------------------------

  /** Subscribe to changes that may affect a pod's standing; returns the unsubscribe function. */
  subscribe(uid: string, fn: () => void): () => void {
    let set = this.podListeners.get(uid);
    if (!set) {
      set = new Set();
      this.podListeners.set(uid, set);
    }
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.podListeners.delete(uid);
    };
  }

  private notifyPod(uid: string): void {
    const set = this.podListeners.get(uid);
    if (set) for (const fn of [...set]) fn();
  }

  /** The pod's state in each of its stages, in acquisition order (up to the first it has not passed). */
  standing(uid: string): { pod: IndexedPod; stages: StageState[] } | undefined {
    const indexed = this.podIndex.get(uid);
    if (!indexed) return undefined;
    const pod = indexed.pod;
    const ref = { name: pod.metadata.name ?? '', namespace: pod.metadata.namespace ?? '', uid };
    const states: StageState[] = [];
    for (const stage of indexed.stages) {
      const primitive = this.primitive(stage.key);
      const state = stageState(stage, primitive, ref, () =>
        this.queueOrderOf(stage.key, stage.kind, primitive),
      );
      states.push(state);
      if (state.state !== 'passed') break;
    }
    return { pod: indexed, stages: states };
  }

  /** The hold sidecar reports that the pod is terminating: give back what it holds. */
  release(uid: string): { kind: PrimitiveKind; name: string; namespace: string; token: number }[] {
    const indexed = this.podIndex.get(uid);
    if (!indexed) return [];
    this.released.add(uid);
    this.opts.metrics?.releaseRequested(uid);
    const out: { kind: PrimitiveKind; name: string; namespace: string; token: number }[] = [];
    for (const st of indexed.stages) {
      const p = this.primitive(st.key);
      if (st.kind === 'Semaphore') {
        const h = (p as Semaphore | undefined)?.status?.holders?.find((x) => x.uid === uid);
        if (h)
          out.push({
            kind: st.kind,
            name: st.name,
            namespace: indexed.pod.metadata.namespace ?? '',
            token: h.token,
          });
      } else if (st.kind === 'Lease') {
        const h = (p as Lease | undefined)?.status?.holder;
        if (h?.uid === uid)
          out.push({
            kind: st.kind,
            name: st.name,
            namespace: indexed.pod.metadata.namespace ?? '',
            token: h.token,
          });
      }
      this.queue.add(st.key);
    }
    return out;
  }

  private queueOrderOf(key: PrimitiveKey, kind: PrimitiveKind, primitive: Primitive | undefined): QueueOrder {
    if (!primitive || (kind !== 'Semaphore' && kind !== 'Lease')) return { index: new Map(), length: 0 };
    // Eligibility for a stage depends on the earlier stages' primitives: any primitive change invalidates too.
    const stamp = `${primitive.metadata.resourceVersion}|${this.podEpoch}|${this.primitiveEpoch}`;
    const hit = this.queueOrders.get(key);
    if (hit?.stamp === stamp) return hit.order;
    const order = queueOrder(kind, primitive, this.viewsOf(key, kind));
    this.queueOrders.set(key, { stamp, order });
    return order;
  }

  // ---- reconcile ----------------------------------------------------------------------------------

  private viewsOf(key: PrimitiveKey, kind: PrimitiveKind): PodView[] {
    const views: PodView[] = [];
    for (const p of this.podIndex.podsOf(key)) {
      const index = p.stages.findIndex((s) => s.key === key);
      const uid = p.pod.metadata.uid ?? '';
      views.push(
        toPodView(p.pod, podRequestFor(p.pod, p.request, kind), {
          eligible: eligibleFor(p.stages, index, (k) => this.primitive(k), uid),
          released: this.released.has(uid),
        }),
      );
    }
    return views;
  }

  private decide(kind: PrimitiveKind, key: PrimitiveKey, obj: Primitive, now: number): Decision {
    switch (kind) {
      case 'Semaphore': {
        const r = arbitrateSemaphore({ semaphore: obj as Semaphore, pods: this.viewsOf(key, kind), now });
        return { ...r, grants: r.granted.length };
      }
      case 'Lease': {
        const r = arbitrateLease({ lease: obj as Lease, pods: this.viewsOf(key, kind), now });
        return { ...r, grants: r.granted ? 1 : 0 };
      }
      case 'Barrier': {
        const r = arbitrateBarrier({ barrier: obj as Barrier, pods: this.viewsOf(key, kind), now });
        return { ...r, grants: 0 };
      }
      case 'Gate': {
        const r = evaluateGate({
          gate: obj as Gate,
          lookup: (t, ns, n) => this.lookupForGate(t, ns, n),
          now,
        });
        return { ...r, grants: 0 };
      }
    }
  }

  private lookupForGate(type: string, namespace: string, name: string): GateTarget | undefined {
    if (type === 'Job') return this.jobInformer.get(`${namespace}/${name}`);
    return this.primitive(primitiveKey(type as PrimitiveKind, namespace, name)) as GateTarget | undefined;
  }

  private async reconcile(key: PrimitiveKey): Promise<{ requeueAfterMs?: number } | undefined> {
    // Never decide from a partial cache: a holder whose pod is not listed yet would look gone and be
    // released. Every key is enqueued again once all informers have synced (start()).
    if (!this.leading || !this.hasSynced) return undefined;
    const { kind, namespace, name } = parsePrimitiveKey(key);
    const obj = this.primitive(key);
    if (!obj) return undefined;
    const started = performance.now();
    const decision = this.decide(kind, key, obj, this.now());
    if (decision.changed) {
      const path = resourcePath({
        group: 'sync.konductor.io',
        version: 'v1',
        plural: KINDS[kind].plural,
        namespace,
        name,
        subresource: 'status',
      });
      let updated: Primitive;
      const writeStartedAt = performance.now();
      try {
        updated = await this.client.replace<Primitive>(path, { ...obj, status: decision.status });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        if (isConflict(err)) {
          // Someone else wrote first (another replica, or a spec change): re-read and decide again.
          this.opts.metrics?.conflicts.inc({ kind });
          const fresh = await this.client.get<Primitive>(path.replace(/\/status$/, ''));
          this.written.set(key, fresh);
        }
        throw err;
      }
      this.written.set(key, updated);
      this.primitiveEpoch++;
      this.opts.metrics?.written({
        kind,
        key,
        before: obj,
        after: updated,
        pods: this.podIndex.podsOf(key),
        released: (uid) => this.released.has(uid),
        writeStartedAt,
      });
      this.recordEvents(kind, updated, decision.events);
      this.afterPrimitiveChange(key, kind, namespace, name);
    }
    this.opts.metrics?.reconcileSeconds.observe({ kind }, (performance.now() - started) / 1000);
    return decision.requeueAfterMs !== undefined ? { requeueAfterMs: decision.requeueAfterMs } : undefined;
  }

  private recordEvents(kind: PrimitiveKind, obj: Primitive, events: PlannedEvent[]): void {
    const namespace = obj.metadata.namespace ?? '';
    for (const ev of events) {
      const target =
        ev.target === 'primitive'
          ? { apiVersion: API_VERSION, kind, name: obj.metadata.name ?? '', namespace, uid: obj.metadata.uid }
          : { apiVersion: 'v1', kind: 'Pod', name: ev.target.pod, namespace, uid: ev.target.uid };
      this.events.record({ target, type: ev.type, reason: ev.reason, message: ev.message });
    }
  }
}
