/**
 * The primitives as the controller sees them: one informer per kind of the kind table, and a write-through
 * overlay of the copies our own status writes returned, fresher than the watch until it catches up (so the
 * next decision never starts from a status older than the one just written). Only a cache: every decision
 * is derived from the objects in the API server.
 */
import { GROUP, VERSION } from '../api/constants.ts';
import { Informer, type InformerEvent } from '../api/informer.ts';
import { KINDS, PRIMITIVE_KINDS, type PrimitiveKind } from '../api/kinds.ts';
import type { KubeClient } from '../api/kubeClient.ts';
import { resourcePath } from '../api/kubeRequest.ts';
import type { Primitive } from '../api/types.ts';
import { type PrimitiveKey, parsePrimitiveKey } from './arbitration/podIndex.ts';

export interface PrimitiveCacheOptions {
  client: KubeClient;
  /** Watch one namespace only; all namespaces when undefined. */
  namespace: string | undefined;
  onEvent: (kind: PrimitiveKind, ev: InformerEvent<Primitive>) => void;
  onError: (what: string, err: unknown, attempt: number) => void;
  /** An informer re-listed after a gap (its watch resumed into 410 Gone: events were missed). */
  onRelisted: () => void;
}

/** The path of a kind's objects (or of one object, or its status). */
export function primitivePath(
  kind: PrimitiveKind,
  namespace?: string,
  name?: string,
  subresource?: string,
): string {
  return resourcePath({
    group: GROUP,
    version: VERSION,
    plural: KINDS[kind].plural,
    namespace,
    ...(name !== undefined ? { name } : {}),
    ...(subresource !== undefined ? { subresource } : {}),
  });
}

/** True when resourceVersion `a` is older than `b` (etcd revisions; false when either is not a number). */
export function olderVersion(a: string | undefined, b: string | undefined): boolean {
  try {
    return BigInt(a ?? '') < BigInt(b ?? '');
  } catch {
    return false;
  }
}

export class PrimitiveCache {
  private readonly informers = new Map<PrimitiveKind, Informer<Primitive>>();
  /** Copies returned by our own status writes, fresher than the watch until it catches up. */
  private readonly written = new Map<PrimitiveKey, Primitive>();

  constructor(opts: PrimitiveCacheOptions) {
    for (const kind of PRIMITIVE_KINDS) {
      this.informers.set(
        kind,
        new Informer<Primitive>(opts.client, {
          path: primitivePath(kind, opts.namespace),
          onEvent: (ev) => {
            if (ev.type === 'deleted') this.written.delete(keyOf(kind, ev.object));
            opts.onEvent(kind, ev);
          },
          onError: (err, n) => opts.onError(`${kind} informer`, err, n),
          onRelisted: () => opts.onRelisted(),
        }),
      );
    }
  }

  start(): void {
    for (const inf of this.informers.values()) inf.start();
  }

  stop(): void {
    for (const inf of this.informers.values()) inf.stop();
  }

  get synced(): Promise<unknown> {
    return Promise.all([...this.informers.values()].map((i) => i.synced));
  }

  get hasSynced(): boolean {
    return [...this.informers.values()].every((i) => i.hasSynced);
  }

  /** The first kind's cache that missed events and has not re-listed yet (undefined: all are current). */
  gap(): string | undefined {
    for (const [kind, inf] of this.informers) if (!inf.current) return `${kind} cache`;
    return undefined;
  }

  /** The freshest copy: the cached object, or the one our last write returned when it is newer. */
  get(key: PrimitiveKey): Primitive | undefined {
    const { kind, namespace, name } = parsePrimitiveKey(key);
    const cached = this.informers.get(kind)?.get(`${namespace}/${name}`);
    const w = this.written.get(key);
    if (!w) return cached;
    if (!cached) {
      // deleted since we wrote it
      this.written.delete(key);
      return undefined;
    }
    if (atLeastAsNew(w, cached)) return w;
    this.written.delete(key);
    return cached;
  }

  exists(kind: PrimitiveKind, namespace: string, name: string): boolean {
    return this.informers.get(kind)?.get(`${namespace}/${name}`) !== undefined;
  }

  /** Records the copy a status write (or a re-read after a conflict) returned. */
  wrote(key: PrimitiveKey, obj: Primitive): void {
    this.written.set(key, obj);
  }

  /** Every cached primitive of every kind. */
  *all(): Iterable<{ kind: PrimitiveKind; primitive: Primitive }> {
    for (const [kind, inf] of this.informers) for (const p of inf.list()) yield { kind, primitive: p };
  }

  /** Every cached primitive of one kind. */
  list(kind: PrimitiveKind): Iterable<Primitive> {
    return this.informers.get(kind)?.list() ?? [];
  }
}

const keyOf = (kind: PrimitiveKind, p: Primitive): PrimitiveKey =>
  `${kind}/${p.metadata.namespace ?? ''}/${p.metadata.name ?? ''}`;

/** Compares resourceVersions as integers (etcd revisions): a written copy wins over an older watch event. */
function atLeastAsNew(a: Primitive, b: Primitive): boolean {
  try {
    return BigInt(a.metadata.resourceVersion ?? '0') >= BigInt(b.metadata.resourceVersion ?? '0');
  } catch {
    return false;
  }
}
