/**
 * What the kinds that read other objects (a Gate's conditions; the kind table's `references`) need from the
 * API: the objects they name, looked up in the caches; the namespaces' opt-in to being read from elsewhere
 * (konductor.io/gate-readers, docs/security.md); and Job informers, one per namespace that a waiting reader
 * has a Job condition on and may read (never every Job in the cluster). A change of any object a waiting
 * reader names enqueues that reader: it is evaluated on watch events, never by polling.
 */
import type { Logger } from 'pino';
import { GATE_READERS_ANNOTATION } from '../api/constants.ts';
import { Informer, type InformerEvent } from '../api/informer.ts';
import { PRIMITIVE_KINDS, type PrimitiveKind } from '../api/kinds.ts';
import type { KubeClient } from '../api/kubeClient.ts';
import { resourcePath } from '../api/kubeRequest.ts';
import type { GateConditionType, Job, ObjectMeta } from '../api/types.ts';
import { gateReadersAllow } from './arbitration/gate.ts';
import type { ObjectReads, ReadTarget } from './arbitration/kindRules.ts';
import { rulesOf } from './arbitration/kinds.ts';
import { type PrimitiveKey, primitiveKey } from './arbitration/podIndex.ts';
import type { PrimitiveCache } from './primitiveCache.ts';

/** A Namespace as the controller keeps it: its name and the opt-in annotation. */
interface NamespaceObject {
  metadata: ObjectMeta;
}

export interface ReadTrackerOptions {
  client: KubeClient;
  log: Logger;
  cache: PrimitiveCache;
  enqueue: (key: PrimitiveKey) => void;
  onError: (what: string, err: unknown, attempt: number) => void;
}

/** The kinds whose primitives read other objects. */
const READER_KINDS = PRIMITIVE_KINDS.filter((k) => rulesOf(k).references !== undefined);

export class ReadTracker implements ObjectReads {
  private readonly opts: ReadTrackerOptions;
  private readonly namespaces: Informer<NamespaceObject>;
  /** Job informers, one per namespace that a waiting reader may read Jobs of. */
  private readonly jobs = new Map<string, Informer<Job>>();

  constructor(opts: ReadTrackerOptions) {
    this.opts = opts;
    this.namespaces = new Informer<NamespaceObject>(opts.client, {
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
      onError: (err, n) => opts.onError('namespace informer', err, n),
    });
  }

  /** The Namespace informer does not hold back arbitration: it only widens what readers may read once it knows. */
  start(): void {
    this.namespaces.start();
  }

  stop(): void {
    this.namespaces.stop();
    for (const inf of this.jobs.values()) inf.stop();
    this.jobs.clear();
  }

  lookup(type: GateConditionType, namespace: string, name: string): ReadTarget | undefined {
    if (type === 'Job') return this.jobs.get(namespace)?.get(`${namespace}/${name}`);
    return this.opts.cache.get(primitiveKey(type, namespace, name));
  }

  /**
   * May readers of namespace `from` read namespace `target` (its konductor.io/gate-readers annotation)? Until
   * the Namespace informer has listed (or without RBAC to list Namespaces), no.
   */
  mayRead(target: string, from: string): boolean {
    return target === from || gateReadersAllow(this.namespaces.get(target)?.metadata.annotations, from);
  }

  /** A primitive's status changed: re-evaluate the waiting readers that name it. */
  primitiveChanged(kind: PrimitiveKind, namespace: string, name: string): void {
    this.enqueueReadersOf(kind, namespace, name);
  }

  /** A primitive's watch event: a reader's may change which namespaces' Jobs are read. */
  primitiveEvent(kind: PrimitiveKind): void {
    if (READER_KINDS.includes(kind)) this.syncJobInformers();
  }

  /** Readers still waiting (not settled), with their kind. */
  private *waitingReaders() {
    for (const kind of READER_KINDS) {
      const rules = rulesOf(kind);
      for (const p of this.opts.cache.list(kind)) if (!rules.settled?.(p)) yield { kind, reader: p };
    }
  }

  /** Enqueues the waiting readers that name the object (any name when `name` is undefined). */
  private enqueueReadersOf(type: GateConditionType | undefined, namespace: string, name?: string): void {
    for (const { kind, reader } of this.waitingReaders()) {
      const names = rulesOf(kind).references!(reader).some(
        (r) =>
          (type === undefined || r.type === type) &&
          (name === undefined || r.name === name) &&
          r.namespace === namespace,
      );
      if (names)
        this.opts.enqueue(primitiveKey(kind, reader.metadata.namespace ?? '', reader.metadata.name ?? ''));
    }
  }

  private onJob(ev: InformerEvent<Job>): void {
    this.enqueueReadersOf('Job', ev.object.metadata.namespace ?? '', ev.object.metadata.name ?? '');
  }

  private onNamespace(ev: InformerEvent<NamespaceObject>): void {
    // Only a change of the opt-in matters (a namespace without it, added or deleted, changes nothing).
    const readers = (o: NamespaceObject | undefined) => o?.metadata.annotations?.[GATE_READERS_ANNOTATION];
    const before = ev.type === 'added' ? undefined : readers(ev.type === 'updated' ? ev.old : ev.object);
    const after = ev.type === 'deleted' ? undefined : readers(ev.object);
    if (before === after) return;
    this.syncJobInformers();
    this.enqueueReadersOf(undefined, ev.object.metadata.name ?? '');
  }

  /** Watches the Jobs of exactly the namespaces that a waiting reader has a Job condition on and may read. */
  private syncJobInformers(): void {
    const wanted = new Set<string>();
    for (const { kind, reader } of this.waitingReaders()) {
      const from = reader.metadata.namespace ?? '';
      for (const r of rulesOf(kind).references!(reader))
        if (r.type === 'Job' && this.mayRead(r.namespace, from)) wanted.add(r.namespace);
    }
    for (const [ns, inf] of this.jobs) {
      if (wanted.has(ns)) continue;
      inf.stop();
      this.jobs.delete(ns);
      this.opts.log.info({ namespace: ns }, 'stopped watching Jobs: no waiting Gate reads this namespace');
    }
    for (const ns of wanted) {
      if (this.jobs.has(ns)) continue;
      const inf = new Informer<Job>(this.opts.client, {
        path: resourcePath({ group: 'batch', version: 'v1', plural: 'jobs', namespace: ns }),
        transform: slimJob,
        onEvent: (ev) => this.onJob(ev),
        onError: (err, n) => this.opts.onError(`job informer (namespace ${ns})`, err, n),
      });
      this.jobs.set(ns, inf);
      inf.start();
      this.opts.log.info({ namespace: ns }, 'watching Jobs: a waiting Gate reads this namespace');
    }
  }
}

/** A Job as a reader needs it (conditions and counts), so caching Jobs costs little. */
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
