/**
 * What the plugin reads: the primitives and the managed pods of one namespace (or all), as one consistent
 * picture for the views. Loaded with plain LISTs (one-shot commands) or kept by informers (`-w`). The pods
 * are indexed with the controller's own PodIndex, so their stages (acquisition order) are the manager's.
 */
import { GROUP, KINDS, MANAGED_LABEL, type PrimitiveKind, VERSION } from '../api/constants.ts';
import { konductorError } from '../api/errors.ts';
import { Informer } from '../api/informer.ts';
import { isNotFound, type KubeClient } from '../api/kubeClient.ts';
import { resourcePath } from '../api/kubeRequest.ts';
import type { Pod, Primitive } from '../api/types.ts';
import { PodIndex, type PrimitiveKey, primitiveKey } from '../controller/arbitration/podIndex.ts';

export const PRIMITIVE_KINDS = Object.keys(KINDS) as PrimitiveKind[];

export interface Snapshot {
  /** The namespace looked at; undefined for all namespaces. */
  namespace: string | undefined;
  primitives: Map<PrimitiveKey, { kind: PrimitiveKind; primitive: Primitive }>;
  pods: PodIndex;
  /** Wall clock of the snapshot (ms). */
  now: number;
}

export function buildSnapshot(
  namespace: string | undefined,
  primitives: Iterable<{ kind: PrimitiveKind; primitive: Primitive }>,
  pods: Iterable<Pod>,
  now: number,
): Snapshot {
  const byKey = new Map<PrimitiveKey, { kind: PrimitiveKind; primitive: Primitive }>();
  for (const p of primitives) {
    byKey.set(primitiveKey(p.kind, p.primitive.metadata.namespace ?? '', p.primitive.metadata.name ?? ''), p);
  }
  const index = new PodIndex();
  for (const pod of pods) index.upsert(pod);
  return { namespace, primitives: byKey, pods: index, now };
}

/** The snapshot as the figures (controller/arbitration/queueFigures.ts) read it. */
export function figuresSource(s: Snapshot) {
  return {
    primitives: () => s.primitives.values(),
    pods: () => s.pods.all(),
    primitive: (key: PrimitiveKey) => s.primitives.get(key)?.primitive,
  };
}

const primitivesPath = (kind: PrimitiveKind, namespace: string | undefined) =>
  resourcePath({ group: GROUP, version: VERSION, plural: KINDS[kind].plural, namespace });
const podsPath = (namespace: string | undefined) =>
  resourcePath({ version: 'v1', plural: 'pods', namespace });
const MANAGED = `${MANAGED_LABEL}=true`;

function crdsMissing(err: unknown): never {
  if (isNotFound(err)) {
    throw konductorError('KDR_PLUGIN_NO_CRDS', GROUP).causedBy(err);
  }
  throw err;
}

/** Lists everything once. */
export async function loadSnapshot(client: KubeClient, namespace: string | undefined): Promise<Snapshot> {
  const lists = await Promise.all(
    PRIMITIVE_KINDS.map(async (kind) => {
      const list = await client.list<Primitive>(primitivesPath(kind, namespace)).catch(crdsMissing);
      return list.items.map((primitive) => ({ kind, primitive }));
    }),
  );
  const pods = await client.list<Pod>(podsPath(namespace), { labelSelector: MANAGED });
  return buildSnapshot(namespace, lists.flat(), pods.items, Date.now());
}

/** Informers on the same objects, for `-w`: `onChange` after each change once all have listed. */
export function watchSnapshot(
  client: KubeClient,
  namespace: string | undefined,
  onChange: (s: Snapshot) => void,
  onError: (err: unknown) => void,
): { stop(): void; synced: Promise<void> } {
  const primitiveInformers = PRIMITIVE_KINDS.map(
    (kind) =>
      [
        kind,
        new Informer<Primitive>(client, {
          path: primitivesPath(kind, namespace),
          onEvent: () => changed(),
          onError: (err) => onError(err),
        }),
      ] as const,
  );
  const podInformer = new Informer<Pod>(client, {
    path: podsPath(namespace),
    labelSelector: MANAGED,
    onEvent: () => changed(),
    onError: (err) => onError(err),
  });
  const all = [...primitiveInformers.map(([, i]) => i), podInformer];
  let timer: NodeJS.Timeout | undefined;
  let synced = false;
  const take = () =>
    buildSnapshot(
      namespace,
      primitiveInformers.flatMap(([kind, inf]) => [...inf.list()].map((primitive) => ({ kind, primitive }))),
      podInformer.list(),
      Date.now(),
    );
  // Bursts of events (a Job's pods, one grant touching many objects) render once.
  function changed(): void {
    if (!synced || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      onChange(take());
    }, 100);
  }
  for (const i of all) i.start();
  const ready = Promise.all(all.map((i) => i.synced)).then(() => {
    synced = true;
    onChange(take());
  });
  return {
    synced: ready,
    stop: () => {
      clearTimeout(timer);
      for (const i of all) i.stop();
    },
  };
}
