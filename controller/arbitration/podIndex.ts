/**
 * The managed-pod side of the controller's cache: which pods reference which primitive, with their
 * parsed requests. Pods are slimmed before caching (only what arbitration and the agent API read), so
 * 10,000 managed pods cost a few MiB, not hundreds.
 */
import { type KonductorRequest, parseAnnotations, primitivesOf } from '../../api/annotations.ts';
import { ANNOTATION_PREFIX, type PrimitiveKind, WAIT_CONTAINER } from '../../api/constants.ts';
import type { Pod } from '../../api/types.ts';

export type PrimitiveKey = string; // `${kind}/${namespace}/${name}`

export const primitiveKey = (kind: PrimitiveKind, namespace: string, name: string): PrimitiveKey =>
  `${kind}/${namespace}/${name}`;

export function parsePrimitiveKey(key: PrimitiveKey): {
  kind: PrimitiveKind;
  namespace: string;
  name: string;
} {
  const [kind, namespace, name] = key.split('/') as [PrimitiveKind, string, string];
  return { kind, namespace, name };
}

export interface Stage {
  kind: PrimitiveKind;
  name: string;
  key: PrimitiveKey;
  permits: number;
}

export interface IndexedPod {
  pod: Pod;
  request: KonductorRequest;
  /** The pod's primitives in acquisition order. */
  stages: Stage[];
}

/** Keeps only the fields konductor reads (like client-go's cache transform). */
export function slimPod(pod: Pod): Pod {
  const m = pod.metadata;
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.annotations ?? {}))
    if (k.startsWith(ANNOTATION_PREFIX)) annotations[k] = v;
  const s = pod.status;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      creationTimestamp: m.creationTimestamp,
      deletionTimestamp: m.deletionTimestamp,
      annotations,
    },
    spec: {
      nodeName: pod.spec?.nodeName,
      schedulingGates: pod.spec?.schedulingGates?.map((g) => ({ name: g.name })),
      restartPolicy: pod.spec?.restartPolicy,
      containers: (pod.spec?.containers ?? []).map((c) => ({ name: c.name })),
    },
    status: s && {
      phase: s.phase,
      conditions: s.conditions?.filter((c) => c.type === 'PodScheduled'),
      initContainerStatuses: s.initContainerStatuses?.filter((c) => c.name === WAIT_CONTAINER),
      containerStatuses: s.containerStatuses?.map((c) => ({
        name: c.name,
        ready: c.ready,
        started: c.started,
        restartCount: c.restartCount,
        state: c.state,
        lastState: c.lastState?.terminated ? { terminated: c.lastState.terminated } : undefined,
      })),
    },
  } as Pod;
}

export class PodIndex {
  private readonly byUid = new Map<string, IndexedPod>();
  private readonly byPrimitive = new Map<PrimitiveKey, Set<string>>();

  /** Adds or replaces a pod; returns the primitive keys it referenced before and now. */
  upsert(pod: Pod): PrimitiveKey[] {
    const uid = pod.metadata.uid ?? '';
    const before = this.remove(uid);
    const parsed = parseAnnotations(pod.metadata.annotations);
    if (!parsed.ok || !parsed.request) return before;
    const ns = pod.metadata.namespace ?? 'default';
    const stages = primitivesOf(parsed.request).map((p) => ({
      kind: p.kind,
      name: p.name,
      permits: p.permits,
      key: primitiveKey(p.kind, ns, p.name),
    }));
    this.byUid.set(uid, { pod, request: parsed.request, stages });
    for (const st of stages) {
      let set = this.byPrimitive.get(st.key);
      if (!set) {
        set = new Set();
        this.byPrimitive.set(st.key, set);
      }
      set.add(uid);
    }
    return [...new Set([...before, ...stages.map((s) => s.key)])];
  }

  /** Removes a pod; returns the primitive keys it referenced. */
  remove(uid: string): PrimitiveKey[] {
    const old = this.byUid.get(uid);
    if (!old) return [];
    this.byUid.delete(uid);
    for (const st of old.stages) {
      const set = this.byPrimitive.get(st.key);
      set?.delete(uid);
      if (set?.size === 0) this.byPrimitive.delete(st.key);
    }
    return old.stages.map((s) => s.key);
  }

  get(uid: string): IndexedPod | undefined {
    return this.byUid.get(uid);
  }

  podsOf(key: PrimitiveKey): IndexedPod[] {
    const uids = this.byPrimitive.get(key);
    if (!uids) return [];
    const out: IndexedPod[] = [];
    for (const uid of uids) {
      const p = this.byUid.get(uid);
      if (p) out.push(p);
    }
    return out;
  }

  get size(): number {
    return this.byUid.size;
  }

  all(): IterableIterator<IndexedPod> {
    return this.byUid.values();
  }
}
