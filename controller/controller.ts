/**
 * The konductor controller: informers for the four primitives, managed pods, Namespaces (the Gate
 * opt-in) and the Jobs that Gates reference; a de-duplicating work queue keyed by primitive; level-triggered
 * reconciles that run the pure arbitration and write the decision as ONE status update guarded by
 * resourceVersion (optimistic concurrency). Only the leader writes. The caches are only caches: every
 * decision is derived from the objects in the API server, and a holder is released as gone only once a GET
 * confirms it (a pod can vanish from the label-filtered cache while it runs: label removed, annotations
 * edited).
 */
import type { Logger } from 'pino';
import {
  API_VERSION,
  GATE_READERS_ANNOTATION,
  KINDS,
  MANAGED_LABEL,
  type PrimitiveKind,
} from '../api/constants.ts';
import { Informer, type InformerEvent } from '../api/informer.ts';
import { isConflict, isNotFound, type KubeClient, resourcePath } from '../api/kubeClient.ts';
import type { Barrier, Gate, Job, Lease, ObjectMeta, Pod, Primitive, Semaphore } from '../api/types.ts';
import { arbitrateBarrier } from './arbitration/barrier.ts';
import type { PlannedEvent } from './arbitration/events.ts';
import { evaluateGate, type GateTarget, gateReadersAllow, referencesOf } from './arbitration/gate.ts';
import { arbitrateLease } from './arbitration/lease.ts';
import {
  type IndexedPod,
  PodIndex,
  type PrimitiveKey,
  parsePrimitiveKey,
  primitiveKey,
  slimPod,
} from './arbitration/podIndex.ts';
import { type PodView, podRequestFor, releaseReason, toPodView } from './arbitration/podView.ts';
import { arbitrateSemaphore } from './arbitration/semaphore.ts';
import {
  eligibleFor,
  type QueueOrder,
  queueOrder,
  type StageState,
  stageState,
} from './arbitration/stages.ts';
import { EventRecorder } from './eventRecorder.ts';
import { LeaderElector } from './leaderElection.ts';
import type { ControllerMetrics } from './metrics.ts';
import { type StatusRefusal, statusRefusal, withRefusalCondition } from './statusRefusal.ts';
import { WorkQueue } from './workQueue.ts';

/**
 * How long a GET that found a holder's pod outside the managed-pod cache (label removed, annotations edited)
 * stands for it; such a holder is re-checked this often until it finishes (no watch event would tell).
 */
export const CONFIRMED_POD_TTL_MS = 5000;

/** A Namespace as the controller keeps it: its name and the Gate opt-in annotation. */
interface NamespaceObject {
  metadata: ObjectMeta;
}

/** What POST /v1/release answers: what the API state lets go now, and what stays held until it does. */
export interface ReleaseCheck {
  /** Grants the pod's state in the API (gone, finished) lets go: released by the next status write. */
  released: { kind: PrimitiveKind; name: string; namespace: string; token: number }[];
  /** Grants kept: the API does not show the pod's main containers stopped (yet). */
  held: { kind: PrimitiveKind; name: string; namespace: string; token: number }[];
}

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

/** True when resourceVersion `a` is older than `b` (etcd revisions; false when either is not a number). */
function olderVersion(a: string | undefined, b: string | undefined): boolean {
  try {
    return BigInt(a ?? '') < BigInt(b ?? '');
  } catch {
    return false;
  }
}

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
  private readonly namespaceInformer: Informer<NamespaceObject>;
  /** Job informers, one per namespace that a waiting Gate may read Jobs of (never every Job in the cluster). */
  private readonly jobInformers = new Map<string, Informer<Job>>();
  /** Copies returned by our own status writes, fresher than the watch until it catches up. */
  private readonly written = new Map<PrimitiveKey, Primitive>();
  /** Holders' pods found by GET outside the managed-pod cache (uid -> pod, when fetched). */
  private readonly confirmed = new Map<string, { pod: Pod; at: number }>();
  /**
   * Holders whose pod is in the managed-pod cache but no longer references the primitive (annotations
   * edited): pod uid -> those primitives, so the pod's own events re-arbitrate them too.
   */
  private readonly foreignHolders = new Map<string, Set<PrimitiveKey>>();
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
    this.namespaceInformer = new Informer<NamespaceObject>(this.client, {
      path: resourcePath({ version: 'v1', plural: 'namespaces' }),
      transform: (n) => {
        const readers = n.metadata.annotations?.[GATE_READERS_ANNOTATION];
        return {
          metadata: {
            name: n.metadata.name,
            uid: n.metadata.uid,
            resourceVersion: n.metadata.resourceVersion,
            ...(readers !== undefined ? { annotations: { [GATE_READERS_ANNOTATION]: readers } } : {}),
          },
        };
      },
      onEvent: (ev) => this.onNamespace(ev),
      onError: (err, n) => this.watchError('namespace informer', err, n),
    });
    this.queue = new WorkQueue({
      concurrency: opts.concurrency ?? 4,
      process: (key) => this.reconcile(key),
      onError: (key, err, attempt) => {
        if (!isConflict(err)) this.log.warn({ key, err, attempt }, 'reconcile failed; retrying');
      },
    });
    this.events = new EventRecorder({
      client: this.client,
      instance: opts.identity,
      onError: (err) => this.log.debug({ err }, 'event not recorded'),
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
        onError: (err) => this.log.warn({ err }, 'leader election error'),
      });
    }
    opts.metrics?.observe(this);
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }

  private watchError(what: string, err: unknown, attempt: number): void {
    const level = attempt > 3 ? 'warn' : 'debug';
    this.log[level]({ err, attempt }, `${what}: watch interrupted, resuming`);
  }

  start(): this {
    for (const inf of this.primitiveInformers.values()) inf.start();
    this.podInformer.start();
    this.namespaceInformer.start();
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
    ]);
  }

  get hasSynced(): boolean {
    return [...this.primitiveInformers.values()].every((i) => i.hasSynced) && this.podInformer.hasSynced;
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
    this.namespaceInformer.stop();
    for (const inf of this.jobInformers.values()) inf.stop();
    this.jobInformers.clear();
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
      this.forgetForeignHolders(key);
    }
    this.queue.add(key);
    if (kind === 'Gate') this.syncJobInformers();
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

  /** Gates still waiting (not latched Open or Failed). */
  private *waitingGates(): Generator<Gate> {
    const gates = this.primitiveInformers.get('Gate');
    if (!gates) return;
    for (const g of gates.list()) {
      const gate = g as Gate;
      if (gate.status?.phase !== 'Open' && gate.status?.phase !== 'Failed') yield gate;
    }
  }

  /** Enqueues the waiting gates that reference the object (any name when `name` is undefined). */
  private enqueueGatesReferencing(type: string | undefined, namespace: string, name?: string): void {
    for (const gate of this.waitingGates()) {
      if (
        referencesOf(gate).some(
          (r) =>
            (type === undefined || r.type === type) &&
            (name === undefined || r.name === name) &&
            r.namespace === namespace,
        )
      ) {
        this.queue.add(primitiveKey('Gate', gate.metadata.namespace ?? '', gate.metadata.name ?? ''));
      }
    }
  }

  private onPod(ev: InformerEvent<Pod>): void {
    const uid = ev.object.metadata.uid ?? '';
    this.podEpoch++;
    for (const k of this.foreignHolders.get(uid) ?? []) this.queue.add(k);
    this.opts.metrics?.podChanged(ev.type, ev.object);
    if (ev.type === 'deleted') {
      this.confirmed.delete(uid);
      for (const k of this.podIndex.remove(uid)) this.queue.add(k);
    } else {
      // A GET on the release path may have put a fresher copy in the index than this event carries.
      const indexed = this.podIndex.get(uid);
      if (indexed && olderVersion(ev.object.metadata.resourceVersion, indexed.pod.metadata.resourceVersion))
        return;
      for (const k of this.podIndex.upsert(ev.object)) this.queue.add(k);
    }
    this.notifyPod(uid);
  }

  private onJob(ev: InformerEvent<Job>): void {
    this.enqueueGatesReferencing('Job', ev.object.metadata.namespace ?? '', ev.object.metadata.name ?? '');
  }

  private onNamespace(ev: InformerEvent<NamespaceObject>): void {
    const name = ev.object.metadata.name ?? '';
    // Only a change of the opt-in matters (a namespace without it, added or deleted, changes nothing).
    const readers = (o: NamespaceObject | undefined) => o?.metadata.annotations?.[GATE_READERS_ANNOTATION];
    const before = ev.type === 'added' ? undefined : readers(ev.type === 'updated' ? ev.old : ev.object);
    const after = ev.type === 'deleted' ? undefined : readers(ev.object);
    if (before === after) return;
    this.syncJobInformers();
    this.enqueueGatesReferencing(undefined, name);
  }

  /**
   * May gates of namespace `from` read namespace `target` (its konductor.io/gate-readers annotation)? Until the
   * Namespace informer has listed (or without RBAC to list Namespaces), no: the Namespace informer does not
   * hold back arbitration, it only widens what gates may read once it knows.
   */
  private mayRead(target: string, from: string): boolean {
    return (
      target === from || gateReadersAllow(this.namespaceInformer.get(target)?.metadata.annotations, from)
    );
  }

  /**
   * Runs one Job informer per namespace that a waiting Gate has a Job condition on and may read, and stops
   * the others: the manager never lists or watches the Jobs of namespaces no Gate needs (or may read).
   */
  private syncJobInformers(): void {
    const wanted = new Set<string>();
    for (const gate of this.waitingGates()) {
      const from = gate.metadata.namespace ?? '';
      for (const r of referencesOf(gate))
        if (r.type === 'Job' && this.mayRead(r.namespace, from)) wanted.add(r.namespace);
    }
    for (const [ns, inf] of this.jobInformers) {
      if (wanted.has(ns)) continue;
      inf.stop();
      this.jobInformers.delete(ns);
      this.log.info({ namespace: ns }, 'stopped watching Jobs: no waiting Gate reads this namespace');
    }
    for (const ns of wanted) {
      if (this.jobInformers.has(ns)) continue;
      const inf = new Informer<Job>(this.client, {
        path: resourcePath({ group: 'batch', version: 'v1', plural: 'jobs', namespace: ns }),
        transform: slimJob,
        onEvent: (ev) => this.onJob(ev),
        onError: (err, n) => this.watchError(`job informer (namespace ${ns})`, err, n),
      });
      this.jobInformers.set(ns, inf);
      inf.start();
      this.log.info({ namespace: ns }, 'watching Jobs: a waiting Gate reads this namespace');
    }
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

  /**
   * The hold sidecar (or anyone holding a token bound to the pod) says the pod is stopping: a HINT, never a
   * release by itself. The pod is read from the API server at once and the primitives it references are
   * re-arbitrated from that; a grant goes back only if the API says the pod is gone or finished (a token
   * minted for a running pod releases nothing). Answers what the API state lets go and what it keeps.
   */
  async recheck(pod: { namespace: string; name: string; uid: string }): Promise<ReleaseCheck> {
    this.opts.metrics?.releaseRequested(pod.uid);
    const fresh = await this.fetchPod(pod.namespace, pod.name, pod.uid);
    const indexed = this.podIndex.get(pod.uid);
    this.podEpoch++;
    if (fresh === undefined) {
      this.confirmed.delete(pod.uid);
      if (indexed) for (const k of this.podIndex.remove(pod.uid)) this.queue.add(k);
    } else if (indexed) {
      this.confirmed.delete(pod.uid);
      if (!olderVersion(fresh.metadata.resourceVersion, indexed.pod.metadata.resourceVersion))
        for (const k of this.podIndex.upsert(slimPod(fresh))) this.queue.add(k);
    } else {
      this.confirmed.set(pod.uid, { pod: slimPod(fresh), at: this.now() });
    }
    this.notifyPod(pod.uid);
    const view = fresh === undefined ? undefined : toPodView(slimPod(fresh), {}, { eligible: false });
    const goes = releaseReason(view) !== undefined;
    const out: ReleaseCheck = { released: [], held: [] };
    for (const st of indexed?.stages ?? []) {
      const p = this.primitive(st.key);
      const token =
        st.kind === 'Semaphore'
          ? (p as Semaphore | undefined)?.status?.holders?.find((x) => x.uid === pod.uid)?.token
          : st.kind === 'Lease' && (p as Lease | undefined)?.status?.holder?.uid === pod.uid
            ? (p as Lease).status?.holder?.token
            : undefined;
      if (token === undefined) continue;
      (goes ? out.released : out.held).push({
        kind: st.kind,
        name: st.name,
        namespace: pod.namespace,
        token,
      });
      this.queue.add(st.key);
    }
    return out;
  }

  private forgetForeignHolders(key: PrimitiveKey): void {
    for (const [uid, keys] of this.foreignHolders) {
      keys.delete(key);
      if (keys.size === 0) this.foreignHolders.delete(uid);
    }
  }

  /** GET a pod; undefined when it is gone (404, or a pod of that name with another UID). */
  private async fetchPod(namespace: string, name: string, uid: string): Promise<Pod | undefined> {
    try {
      const pod = await this.client.get<Pod>(
        resourcePath({ version: 'v1', plural: 'pods', namespace, name }),
      );
      return pod.metadata.uid === uid ? pod : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
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
        }),
      );
    }
    return views;
  }

  /**
   * Views of the holders whose pods are not among `views` (the managed pods that reference the primitive):
   * a holder vanishes from them when its pod is deleted — or when its managed label is removed or its
   * konductor.io/ annotations edited while it runs. Only a GET tells these apart: a pod that still exists
   * (same UID) gets a view (never eligible: it waits for nothing) and keeps its grant while it runs; only a
   * 404, or a pod of that name with another UID, lets arbitration release it as gone. `recheck` says when to
   * look again (no watch event reaches a pod outside the managed-pod cache).
   */
  private async absentHolderViews(
    kind: PrimitiveKind,
    key: PrimitiveKey,
    obj: Primitive,
    views: readonly PodView[],
  ): Promise<{ views: PodView[]; recheckAfterMs?: number }> {
    this.forgetForeignHolders(key);
    const holders =
      kind === 'Semaphore'
        ? ((obj as Semaphore).status?.holders ?? [])
        : kind === 'Lease' && (obj as Lease).status?.holder
          ? [(obj as Lease).status!.holder!]
          : [];
    const present = new Set(views.map((v) => v.uid));
    const out: PodView[] = [];
    let recheck = false;
    for (const h of holders) {
      if (present.has(h.uid)) continue;
      const request = { permits: 'permits' in h ? h.permits : 1 };
      const indexed = this.podIndex.get(h.uid);
      if (indexed) {
        out.push(toPodView(indexed.pod, request, { eligible: false }));
        const keys = this.foreignHolders.get(h.uid) ?? new Set<PrimitiveKey>();
        keys.add(key);
        this.foreignHolders.set(h.uid, keys);
        continue;
      }
      let hit = this.confirmed.get(h.uid);
      if (!hit || this.now() - hit.at >= CONFIRMED_POD_TTL_MS) {
        const fresh = await this.fetchPod(obj.metadata.namespace ?? '', h.pod, h.uid);
        if (fresh === undefined) {
          this.confirmed.delete(h.uid);
          continue;
        }
        hit = { pod: slimPod(fresh), at: this.now() };
        this.confirmed.set(h.uid, hit);
        this.log.info(
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

  private async decide(
    kind: PrimitiveKind,
    key: PrimitiveKey,
    obj: Primitive,
    now: number,
  ): Promise<Decision> {
    switch (kind) {
      case 'Semaphore':
      case 'Lease': {
        const views = this.viewsOf(key, kind);
        const absent = await this.absentHolderViews(kind, key, obj, views);
        const pods = [...views, ...absent.views];
        const d: Decision =
          kind === 'Semaphore'
            ? (() => {
                const r = arbitrateSemaphore({ semaphore: obj as Semaphore, pods, now });
                return { ...r, grants: r.granted.length };
              })()
            : (() => {
                const r = arbitrateLease({ lease: obj as Lease, pods, now });
                return { ...r, grants: r.granted ? 1 : 0 };
              })();
        if (absent.recheckAfterMs !== undefined)
          d.requeueAfterMs = Math.min(d.requeueAfterMs ?? absent.recheckAfterMs, absent.recheckAfterMs);
        return d;
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
          mayRead: (target, from) => this.mayRead(target, from),
        });
        return { ...r, grants: 0 };
      }
    }
  }

  private lookupForGate(type: string, namespace: string, name: string): GateTarget | undefined {
    if (type === 'Job') return this.jobInformers.get(namespace)?.get(`${namespace}/${name}`);
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
    const decision = await this.decide(kind, key, obj, this.now());
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
        const refusal = statusRefusal(err);
        if (refusal) await this.recordRefusal(kind, key, path, obj, refusal, err);
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
        writeStartedAt,
      });
      this.recordEvents(kind, updated, decision.events);
      this.afterPrimitiveChange(key, kind, namespace, name);
    }
    this.opts.metrics?.reconcileSeconds.observe({ kind }, (performance.now() - started) / 1000);
    return decision.requeueAfterMs !== undefined ? { requeueAfterMs: decision.requeueAfterMs } : undefined;
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
    const marked = withRefusalCondition(obj.status, refusal, this.now());
    this.log.warn({ key, reason: refusal.reason, err }, 'status write refused');
    if (!marked.changed) return;
    try {
      const updated = await this.client.replace<Primitive>(path, { ...obj, status: marked.status });
      this.written.set(key, updated);
      this.events.record({
        target: {
          apiVersion: API_VERSION,
          kind,
          name: obj.metadata.name ?? '',
          namespace: obj.metadata.namespace ?? '',
          uid: obj.metadata.uid,
        },
        type: 'Warning',
        reason: refusal.reason,
        message: refusal.message,
      });
    } catch (err) {
      this.log.warn({ key, err }, 'could not record the refused status write in a condition');
    }
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

/** A Job as the Gate reads it (conditions and counts), so caching Jobs costs little. */
function slimJob(j: Job): Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: j.metadata.name,
      namespace: j.metadata.namespace,
      uid: j.metadata.uid,
      resourceVersion: j.metadata.resourceVersion,
    },
    spec: {} as Job['spec'],
    status: {
      conditions: j.status?.conditions,
      // read by the Gate's condition message ("not Complete yet (active 1, succeeded 0, failed 0)")
      active: j.status?.active,
      succeeded: j.status?.succeeded,
      failed: j.status?.failed,
    },
  };
}
