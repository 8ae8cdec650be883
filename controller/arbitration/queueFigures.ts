/**
 * Per-primitive figures computed from the caches (or a kubectl plugin's snapshot): capacity and use from
 * each primitive's spec and status, waiting pods and the oldest wait from the pods themselves. Pure; shared
 * by the manager's metrics (controller/metrics.ts) and `kubectl konductor status` (plugin/).
 */
import type { PrimitiveKind } from '../../api/constants.ts';
import type { Primitive } from '../../api/types.ts';
import { rulesOf } from './kinds.ts';
import type { IndexedPod, PrimitiveKey } from './podIndex.ts';
import { arrivalOf, hasPassedWait, isFinished, isGated } from './podView.ts';
import { stagePassed } from './stages.ts';

export interface PrimitiveGauge {
  kind: PrimitiveKind;
  namespace: string;
  name: string;
  capacity: number;
  inUse: number;
  waiting: number;
  /** Seconds the oldest waiting pod has waited (0 when none waits). */
  oldestWaitSeconds: number;
}

export interface FiguresSource {
  /** Every primitive. */
  primitives(): Iterable<{ kind: PrimitiveKind; primitive: Primitive }>;
  /** Every managed pod, with its stages. */
  pods(): Iterable<IndexedPod>;
  primitive(key: PrimitiveKey): Primitive | undefined;
}

/** Capacity and use of one primitive, from its spec and status (the kind table's figures). */
export function capacityOf(kind: PrimitiveKind, p: Primitive): { capacity: number; inUse: number } {
  const { capacity, inUse } = rulesOf(kind).figures(p);
  return { capacity, inUse };
}

/**
 * Per-primitive figures for the gauges: capacity and use from each primitive, waiting pods and the oldest
 * wait from the pods (a pod waits at the first of its primitives it has not passed, once it is bound or
 * held unscheduled by konductor's scheduling gate, until it passes its wait container or finishes).
 */
export function primitiveGauges(source: FiguresSource, now: number): PrimitiveGauge[] {
  const rows = new Map<PrimitiveKey, PrimitiveGauge>();
  for (const { kind, primitive } of source.primitives()) {
    const namespace = primitive.metadata.namespace ?? '';
    const name = primitive.metadata.name ?? '';
    rows.set(`${kind}/${namespace}/${name}`, {
      kind,
      namespace,
      name,
      ...capacityOf(kind, primitive),
      waiting: 0,
      oldestWaitSeconds: 0,
    });
  }
  for (const p of source.pods()) {
    // Cheap checks first: this runs over every managed pod at each scrape.
    const pod = p.pod;
    if ((!pod.spec?.nodeName && !isGated(pod)) || isFinished(pod) || hasPassedWait(pod)) continue;
    const uid = pod.metadata.uid ?? '';
    const stage = p.stages.find((st) => !stagePassed(st, source.primitive(st.key), uid));
    if (!stage) continue;
    const row = rows.get(stage.key);
    if (!row) continue; // the primitive does not exist (yet)
    row.waiting += 1;
    const since = arrivalOf(pod);
    if (since !== undefined)
      row.oldestWaitSeconds = Math.max(row.oldestWaitSeconds, Math.max(0, now - since) / 1000);
  }
  return [...rows.values()];
}
