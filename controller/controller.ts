/**
 * The konductor controller: informers for every kind of the kind table (primitiveCache.ts), the managed pods,
 * and what the kinds that read other objects need (objectReads.ts: Namespaces for the Gate opt-in, the Jobs
 * Gates reference); a de-duplicating work queue keyed by primitive; level-triggered reconciles
 * (reconciler.ts) that let the kind decide and write the decision as ONE status update guarded by
 * resourceVersion. Only the leader writes. The caches are only caches: every decision is derived from the
 * objects in the API server, and a holder is released as gone only once a GET confirms it
 * (holderConfirmation.ts). The agent API reads it through agentView.ts.
 */
import type { Logger } from 'pino';
import { MANAGED_LABEL } from '../api/constants.ts';
import { Informer, type InformerEvent } from '../api/informer.ts';
import type { PrimitiveKind } from '../api/kinds.ts';
import { isConflict, type KubeClient } from '../api/kubeClient.ts';
import { resourcePath } from '../api/kubeRequest.ts';
import type { Pod, Primitive } from '../api/types.ts';
import { AgentView, type ReleaseCheck } from './agentView.ts';
import {
  type IndexedPod,
  PodIndex,
  type PrimitiveKey,
  primitiveKey,
  slimPod,
} from './arbitration/podIndex.ts';
import type { PodView } from './arbitration/podView.ts';
import { type StageState, waitersAt } from './arbitration/stages.ts';
import { DecisionPause } from './decisionPause.ts';
import { EventRecorder } from './eventRecorder.ts';
import { HolderConfirmation } from './holderConfirmation.ts';
import { LeaderElector } from './leaderElection.ts';
import type { ControllerMetrics } from './metrics.ts';
import { ReadTracker } from './objectReads.ts';
import { olderVersion, PrimitiveCache } from './primitiveCache.ts';
import { Reconciler } from './reconciler.ts';
import { SchedulingGates } from './schedulingGates.ts';
import { WorkQueue } from './workQueue.ts';

export { CONFIRMED_POD_TTL_MS } from './holderConfirmation.ts';
export type { ReleaseCheck };

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

export class KonductorController {
  readonly podIndex = new PodIndex();
  private readonly opts: ControllerOptions;
  private readonly log: Logger;
  private readonly cache: PrimitiveCache;
  private readonly podInformer: Informer<Pod>;
  private readonly reads: ReadTracker;
  private readonly confirmation: HolderConfirmation;
  private readonly agents: AgentView;
  private readonly reconciler: Reconciler;
  private readonly queue: WorkQueue;
  private readonly gates: SchedulingGates;
  private readonly events: EventRecorder;
  private readonly elector: LeaderElector | undefined;
  private leading: boolean;
  private readonly pause: DecisionPause;

  constructor(opts: ControllerOptions) {
    this.opts = opts;
    const { client } = opts;
    this.log = opts.logger;
    this.leading = !opts.leaderElect;
    this.pause = new DecisionPause(
      this.log,
      () => this.cache.gap() ?? (this.podInformer.current ? undefined : 'pod cache'),
    );
    const now = () => (opts.now ? opts.now() : Date.now());
    const onError = (what: string, err: unknown, attempt: number) => this.watchError(what, err, attempt);
    const enqueue = (key: PrimitiveKey) => this.queue.add(key);
    const viewsOf = (key: PrimitiveKey, kind: PrimitiveKind): PodView[] =>
      waitersAt(this.podIndex.podsOf(key), key, kind, (k) => this.cache.get(k)).map((w) => w.view);

    this.cache = new PrimitiveCache({
      client,
      namespace: opts.namespace,
      onEvent: (kind, ev) => this.onPrimitive(kind, ev),
      onError,
      onRelisted: () => this.onRelisted(),
    });
    this.podInformer = new Informer<Pod>(client, {
      path: resourcePath({ version: 'v1', plural: 'pods', namespace: opts.namespace }),
      labelSelector: `${MANAGED_LABEL}=true`,
      transform: slimPod,
      onEvent: (ev) => this.onPod(ev),
      onError: (err, n) => onError('pod informer', err, n),
      onRelisted: () => this.onRelisted(),
    });
    this.reads = new ReadTracker({ client, log: this.log, cache: this.cache, enqueue, onError });
    this.confirmation = new HolderConfirmation({ client, log: this.log, podIndex: this.podIndex, now });
    this.agents = new AgentView({
      podIndex: this.podIndex,
      primitive: (key) => this.cache.get(key),
      viewsOf,
      confirmation: this.confirmation,
      enqueue,
      metrics: opts.metrics,
    });
    this.events = new EventRecorder({
      client,
      instance: opts.identity,
      onError: (err, willRetry) =>
        willRetry
          ? this.log.debug({ err }, 'event not recorded yet; retrying')
          : this.log.warn({ err }, 'event not recorded'),
    });
    this.reconciler = new Reconciler({
      client,
      log: this.log,
      cache: this.cache,
      podsOf: (key) => this.podIndex.podsOf(key),
      viewsOf,
      confirmation: this.confirmation,
      refreshPod: (namespace, name, uid) => this.refreshPod(namespace, name, uid),
      reads: this.reads,
      events: this.events,
      metrics: opts.metrics,
      now,
      written: (key, kind, namespace, name) => {
        this.agents.primitivesChanged();
        this.afterPrimitiveChange(key, kind, namespace, name);
      },
    });
    this.gates = new SchedulingGates({
      client,
      log: this.log,
      podIndex: this.podIndex,
      primitive: (key) => this.cache.get(key),
      active: () => this.leading && this.hasSynced,
    });
    this.queue = new WorkQueue({
      concurrency: opts.concurrency ?? 4,
      process: async (key) =>
        this.pause.mayDecide(this.leading, this.hasSynced) ? this.reconciler.reconcile(key) : undefined,
      onError: (key, err, attempt) => {
        if (!isConflict(err)) this.log.warn({ key, err, attempt }, 'reconcile failed; retrying');
      },
    });
    if (opts.leaderElect) {
      this.elector = new LeaderElector({
        client,
        namespace: opts.leaderElectionNamespace ?? 'default',
        name: opts.leaderElectionName ?? 'konductor-leader',
        identity: opts.identity,
        onStartedLeading: () => {
          this.log.info({ identity: opts.identity }, 'became leader');
          this.leading = true;
          this.enqueueAll();
          this.gates.enqueueAll();
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

  private watchError(what: string, err: unknown, attempt: number): void {
    const level = attempt > 3 ? 'warn' : 'debug';
    this.log[level]({ err, attempt }, `${what}: watch interrupted, resuming`);
  }

  start(): this {
    this.cache.start();
    this.podInformer.start();
    this.reads.start();
    void this.synced().then(() => {
      this.log.info({ pods: this.podIndex.size }, 'caches synced');
      if (this.elector) this.elector.start();
      else {
        this.enqueueAll();
        this.gates.enqueueAll();
      }
    });
    return this;
  }

  /** Resolves when every informer has listed once (the /readyz condition). */
  async synced(): Promise<void> {
    await Promise.all([this.cache.synced, this.podInformer.synced]);
  }

  get hasSynced(): boolean {
    return this.cache.hasSynced && this.podInformer.hasSynced;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** A cache re-listed after a gap: decide everything again from the complete caches (decisionPause.ts). */
  private onRelisted(): void {
    if (this.pause.relisted()) this.enqueueAll();
  }

  /** Primitives waiting in the work queue (a metric). */
  get queueDepth(): number {
    return this.queue.length;
  }

  get podIndexSize(): number {
    return this.podIndex.size;
  }

  /** Every cached primitive (the metrics' per-primitive gauges). */
  primitives(): Iterable<{ kind: PrimitiveKind; primitive: Primitive }> {
    return this.cache.all();
  }

  /** Every managed pod in the index. */
  pods(): Iterable<IndexedPod> {
    return this.podIndex.all();
  }

  async stop(): Promise<void> {
    await this.elector?.stop();
    this.leading = false;
    await this.queue.shutdown();
    await this.gates.shutdown();
    this.events.flushAggregates();
    this.cache.stop();
    this.podInformer.stop();
    this.reads.stop();
  }

  private enqueueAll(): void {
    for (const { kind, primitive: p } of this.cache.all())
      this.queue.add(primitiveKey(kind, p.metadata.namespace ?? '', p.metadata.name ?? ''));
  }

  /** The freshest copy of a primitive (the cache, or our last write when newer). */
  primitive(key: PrimitiveKey): Primitive | undefined {
    return this.cache.get(key);
  }

  primitiveExists(kind: PrimitiveKind, namespace: string, name: string): boolean {
    return this.cache.exists(kind, namespace, name);
  }

  // ---- the agent API's view (agentView.ts) --------------------------------------------------------

  /** Subscribe to changes that may affect a pod's standing; returns the unsubscribe function. */
  subscribe(uid: string, fn: () => void): () => void {
    return this.agents.subscribe(uid, fn);
  }

  /** The pod's state in each of its stages, in acquisition order (up to the first it has not passed). */
  standing(uid: string): { pod: IndexedPod; stages: StageState[] } | undefined {
    return this.agents.standing(uid);
  }

  /** The hold sidecar's release hint (agentView.ts recheck): what the API state lets go, and what it keeps. */
  recheck(pod: { namespace: string; name: string; uid: string }): Promise<ReleaseCheck> {
    return this.agents.recheck(pod);
  }

  // ---- event handlers -----------------------------------------------------------------------------

  private onPrimitive(kind: PrimitiveKind, ev: InformerEvent<Primitive>): void {
    const namespace = ev.object.metadata.namespace ?? '';
    const name = ev.object.metadata.name ?? '';
    const key = primitiveKey(kind, namespace, name);
    this.agents.primitivesChanged();
    if (ev.type === 'deleted') {
      this.agents.forget(key);
      this.confirmation.forgetPrimitive(key);
    }
    this.queue.add(key);
    this.reads.primitiveEvent(kind);
    this.afterPrimitiveChange(key, kind, namespace, name);
  }

  /** A primitive's status changed: wake its waiters, re-arbitrate later stages and dependent readers. */
  private afterPrimitiveChange(
    key: PrimitiveKey,
    kind: PrimitiveKind,
    namespace: string,
    name: string,
  ): void {
    for (const p of this.podIndex.podsOf(key)) {
      this.agents.notify(p.pod.metadata.uid ?? '');
      this.gates.enqueue(p.pod.metadata.uid ?? '');
      if (p.stages.length > 1) for (const st of p.stages) if (st.key !== key) this.queue.add(st.key);
    }
    this.reads.primitiveChanged(kind, namespace, name);
  }

  /** A pod read from the API server replaces its cached copy when newer (a decision that must not trust the cache). */
  private async refreshPod(namespace: string, name: string, uid: string): Promise<void> {
    const fresh = await this.confirmation.fetchPod(namespace, name, uid);
    if (!fresh) return; // gone: its delete event follows, and the holder is confirmed gone on that path
    const indexed = this.podIndex.get(uid);
    if (indexed && olderVersion(fresh.metadata.resourceVersion, indexed.pod.metadata.resourceVersion)) return;
    this.podIndex.upsert(slimPod(fresh));
  }

  private onPod(ev: InformerEvent<Pod>): void {
    const uid = ev.object.metadata.uid ?? '';
    this.agents.podsChanged();
    for (const k of this.confirmation.foreignHoldings(uid)) this.queue.add(k);
    this.opts.metrics?.podChanged(ev.type, ev.object);
    if (ev.type === 'deleted') {
      this.confirmation.forgetPod(uid);
      for (const k of this.podIndex.remove(uid)) this.queue.add(k);
    } else {
      // A GET on the release path may have put a fresher copy in the index than this event carries.
      const indexed = this.podIndex.get(uid);
      if (indexed && olderVersion(ev.object.metadata.resourceVersion, indexed.pod.metadata.resourceVersion))
        return;
      for (const k of this.podIndex.upsert(ev.object)) this.queue.add(k);
      this.gates.enqueue(uid);
    }
    this.agents.notify(uid);
  }
}
