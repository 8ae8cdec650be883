/**
 * Every version of a round's objects as etcd committed them (fed by the etcd watcher): pods, the four
 * primitives, Events and Jobs of the round's namespace, each with its revision and the time it was seen.
 * The checks read it: the status checks as versions arrive, the ground truth and liveness at the end.
 */
import type { Pod, Primitive } from '../api/types.ts';
import type { StoredVersion } from './etcdWatch.ts';

export type PrimitiveKindName = 'Semaphore' | 'Lease' | 'Barrier' | 'Gate';

const PLURALS: Record<string, PrimitiveKindName> = {
  semaphores: 'Semaphore',
  leases: 'Lease',
  barriers: 'Barrier',
  gates: 'Gate',
};

export interface Version<T> {
  name: string;
  uid: string;
  rev: number;
  observedAt: number;
  /** Undefined: the object was deleted at this revision. */
  object: T | undefined;
}

export interface KubeEvent {
  metadata: { name?: string; namespace?: string };
  involvedObject: { kind: string; name: string; uid?: string };
  reason: string;
  message: string;
  type: string;
}

export interface JobObject {
  metadata: { name?: string; uid?: string };
  status?: { conditions?: { type: string; status: string }[] };
}

export type HistoryUpdate =
  | { resource: 'pod'; version: Version<Pod> }
  | { resource: 'primitive'; kind: PrimitiveKindName; version: Version<Primitive> }
  | { resource: 'event'; version: Version<KubeEvent> }
  | { resource: 'job'; version: Version<JobObject> };

const uidOf = (o: Record<string, unknown> | undefined) =>
  ((o?.metadata as { uid?: string } | undefined)?.uid ?? '') as string;

export class RoundHistory {
  readonly namespace: string;
  /** Pod versions by UID, oldest first. */
  readonly pods = new Map<string, Version<Pod>[]>();
  /** Pod UIDs by name, in creation order (a name recreated has several). */
  readonly podUids = new Map<string, string[]>();
  /** Versions of every object of one primitive name (several objects when recreated), by `Kind/name`. */
  readonly primitives = new Map<string, Version<Primitive>[]>();
  readonly events: Version<KubeEvent>[] = [];
  readonly jobs = new Map<string, Version<JobObject>[]>();
  /** The UID each key holds now (a deletion carries no object). */
  private readonly current = new Map<string, string>();
  private readonly prefixes: { prefix: string; resource: string }[];

  constructor(namespace: string) {
    this.namespace = namespace;
    this.prefixes = [
      { prefix: `/registry/pods/${namespace}/`, resource: 'pods' },
      { prefix: `/registry/events/${namespace}/`, resource: 'events' },
      { prefix: `/registry/jobs/${namespace}/`, resource: 'jobs' },
      ...Object.keys(PLURALS).map((plural) => ({
        prefix: `/registry/sync.konductor.io/${plural}/${namespace}/`,
        resource: plural,
      })),
    ];
  }

  accept(key: string): boolean {
    return this.prefixes.some((p) => key.startsWith(p.prefix));
  }

  add(v: StoredVersion): HistoryUpdate | undefined {
    const match = this.prefixes.find((p) => v.key.startsWith(p.prefix));
    if (!match) return undefined;
    const name = v.key.slice(match.prefix.length);
    const uid = v.object ? uidOf(v.object) : (this.current.get(v.key) ?? '');
    if (v.object) this.current.set(v.key, uid);
    else this.current.delete(v.key);
    const base = { name, uid, rev: v.modRevision, observedAt: v.observedAt };
    switch (match.resource) {
      case 'pods': {
        const version = { ...base, object: v.object as Pod | undefined };
        const list = this.pods.get(uid) ?? [];
        if (list.length === 0) this.podUids.set(name, [...(this.podUids.get(name) ?? []), uid]);
        list.push(version);
        this.pods.set(uid, list);
        return { resource: 'pod', version };
      }
      case 'events': {
        const version = { ...base, object: v.object as KubeEvent | undefined };
        if (version.object) this.events.push(version);
        return { resource: 'event', version };
      }
      case 'jobs': {
        const version = { ...base, object: v.object as JobObject | undefined };
        this.jobs.set(name, [...(this.jobs.get(name) ?? []), version]);
        return { resource: 'job', version };
      }
      default: {
        const kind = PLURALS[match.resource] as PrimitiveKindName;
        const version = { ...base, object: v.object as Primitive | undefined };
        const key = `${kind}/${name}`;
        this.primitives.set(key, [...(this.primitives.get(key) ?? []), version]);
        return { resource: 'primitive', kind, version };
      }
    }
  }

  /** The pod's latest version committed before `rev` (undefined: not created yet). */
  podBefore(uid: string, rev: number): Version<Pod> | undefined {
    const list = this.pods.get(uid);
    if (!list) return undefined;
    let found: Version<Pod> | undefined;
    for (const v of list) {
      if (v.rev >= rev) break;
      found = v;
    }
    return found;
  }

  /** The pod's latest version. */
  podNow(uid: string): Version<Pod> | undefined {
    const list = this.pods.get(uid);
    return list?.[list.length - 1];
  }

  /** Versions of the primitive name `Kind/name` (every object of that name), oldest first. */
  versionsOf(kind: PrimitiveKindName, name: string): Version<Primitive>[] {
    return this.primitives.get(`${kind}/${name}`) ?? [];
  }

  /** The latest version of a primitive name (undefined when none, or deleted). */
  primitiveNow(kind: PrimitiveKindName, name: string): Primitive | undefined {
    const list = this.versionsOf(kind, name);
    return list[list.length - 1]?.object;
  }
}

// ---- what a pod version says (independent of the manager's own reading) ------------------------

/** Phase Succeeded or Failed, or every main container terminated for good (restartPolicy Never; OnFailure exit 0). */
export function podFinished(pod: Pod | undefined): boolean {
  if (!pod) return true;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return true;
  const policy = pod.spec?.restartPolicy ?? 'Always';
  const statuses = pod.status?.containerStatuses ?? [];
  const containers = pod.spec?.containers ?? [];
  const terminated = (name: string) => statuses.find((s) => s.name === name)?.state?.terminated;
  if (pod.metadata.deletionTimestamp) return containers.every((c) => terminated(c.name) !== undefined);
  if (policy === 'Always') return false;
  return containers.every((c) => {
    const t = terminated(c.name);
    return t !== undefined && (policy === 'Never' || t.exitCode === 0);
  });
}

/** The exit code of the pod's konductor-wait's last run: its state, or while it is restarted its last state. */
export function waitExitCode(pod: Pod | undefined): number | undefined {
  const s = pod?.status?.initContainerStatuses?.find((c) => c.name === 'konductor-wait');
  return s?.state?.terminated?.exitCode ?? s?.lastState?.terminated?.exitCode;
}

/**
 * A pod that is not finished but will never run: its konductor-wait exited 1 (BarrierFailed, GateFailed) and a
 * Barrier or Gate it waits at is Failed (latched). Under restartPolicy OnFailure Kubernetes retries a failed
 * init container with back-off for as long as the pod exists, so such a pod stays Pending until deleted.
 */
export function podStoppedAtFailed(
  pod: Pod | undefined,
  isFailed: (kind: 'Barrier' | 'Gate', name: string) => boolean,
): boolean {
  if (!pod || waitExitCode(pod) !== 1) return false;
  const a = pod.metadata.annotations ?? {};
  const barrier = a['konductor.io/barrier'];
  const gate = a['konductor.io/gate'];
  return (
    (barrier !== undefined && isFailed('Barrier', barrier)) || (gate !== undefined && isFailed('Gate', gate))
  );
}

/** A main container runs now. */
export function podRunning(pod: Pod | undefined): boolean {
  return pod?.status?.containerStatuses?.some((s) => s.state?.running !== undefined) ?? false;
}
