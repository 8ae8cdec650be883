/**
 * What `kubectl konductor status|queue|holders` shows, as plain data (the JSON and YAML outputs;
 * plugin/render.ts draws the tables); `why` is plugin/why.ts. Pure functions of a Snapshot and the time.
 *
 * Every kind is read through the kind table (controller/arbitration/kinds.ts): queues in the order the
 * manager grants in (the kind's own `queue`, for the whole queue: the primitive's status lists only its
 * head), figures, holders and the words for each of them.
 */
import type { PrimitiveKind } from '../api/constants.ts';
import type { Primitive } from '../api/types.ts';
import type { HeldGrant } from '../controller/arbitration/kindRules.ts';
import { rulesOf } from '../controller/arbitration/kinds.ts';
import { type IndexedPod, type PrimitiveKey, primitiveKey } from '../controller/arbitration/podIndex.ts';
import { isPresent, type PodView } from '../controller/arbitration/podView.ts';
import { capacityOf, primitiveGauges } from '../controller/arbitration/queueFigures.ts';
import { stagePassed, type Waiter, waitersAt } from '../controller/arbitration/stages.ts';
import type { PrimitiveRef } from './refs.ts';
import { figuresSource, type Snapshot } from './snapshot.ts';

const lower = (kind: PrimitiveKind) => kind.toLowerCase();
const iso = (ms: number | undefined) =>
  ms === undefined || ms >= Number.MAX_SAFE_INTEGER ? undefined : new Date(ms).toISOString();

export function phaseOf(p: Primitive): string {
  return (p.status as { phase?: string } | undefined)?.phase ?? '';
}

// ---- status ---------------------------------------------------------------------------------------

/** What every view says of its primitive. */
export interface PrimitiveSummary {
  kind: PrimitiveKind;
  namespace: string;
  name: string;
  phase: string;
  /** Semaphore permits, Lease 1, Barrier arrivals needed, Gate conditions. */
  capacity: number;
  /** Semaphore permits held, Lease held (1), Barrier arrivals, Gate conditions met. */
  inUse: number;
}

export interface StatusRow extends PrimitiveSummary {
  waiting: number;
  /** Since when the longest-waiting pod waits (its arrival); absent when none waits. */
  oldestWaitingSince?: string;
  oldestWaitSeconds: number;
}

/** Every primitive: capacity, in use, waiting, oldest wait (by kind, namespace, name). */
export function statusView(s: Snapshot): StatusRow[] {
  const rows = primitiveGauges(figuresSource(s), s.now).map((g): StatusRow => {
    const p = s.primitives.get(primitiveKey(g.kind, g.namespace, g.name))?.primitive;
    const row: StatusRow = {
      kind: g.kind,
      namespace: g.namespace,
      name: g.name,
      phase: p ? phaseOf(p) : '',
      capacity: g.capacity,
      inUse: g.inUse,
      waiting: g.waiting,
      oldestWaitSeconds: Math.round(g.oldestWaitSeconds),
    };
    if (g.waiting > 0) row.oldestWaitingSince = new Date(s.now - g.oldestWaitSeconds * 1000).toISOString();
    return row;
  });
  return rows.sort(
    (a, b) =>
      a.namespace.localeCompare(b.namespace) || a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name),
  );
}

// ---- queue ----------------------------------------------------------------------------------------

export interface QueueEntryView {
  /** 1-based place in grant order; null for a pod that is not in the queue yet (see reason). */
  position: number | null;
  pod: string;
  uid: string;
  priority: number;
  /** Permits asked (Semaphore); 1 otherwise. */
  permits: number;
  /** The pod's arrival (PodScheduled), the start of its wait. */
  waitingSince?: string;
  /** Why it is not granted (yet). */
  reason: string;
}

export interface QueueView extends PrimitiveSummary {
  /** Pods in the queue (position set). */
  waiting: number;
  entries: QueueEntryView[];
}

/** The pods that reference `key`, with their PodView for that primitive (eligibility from the snapshot). */
export function waitersOf(s: Snapshot, key: PrimitiveKey, kind: PrimitiveKind): Waiter[] {
  return waitersAt(s.pods.podsOf(key), key, kind, (k) => s.primitives.get(k)?.primitive);
}

export function findPrimitive(s: Snapshot, namespace: string, ref: PrimitiveRef): Primitive | undefined {
  return s.primitives.get(primitiveKey(ref.kind, namespace, ref.name))?.primitive;
}

function summaryOf(namespace: string, ref: PrimitiveRef, primitive: Primitive): PrimitiveSummary {
  return {
    kind: ref.kind,
    namespace,
    name: ref.name,
    phase: phaseOf(primitive),
    ...capacityOf(ref.kind, primitive),
  };
}

/** The whole queue of a primitive in grant order, then the pods that reference it but are not queued yet. */
export function queueView(s: Snapshot, namespace: string, ref: PrimitiveRef): QueueView | undefined {
  const primitive = findPrimitive(s, namespace, ref);
  if (!primitive) return undefined;
  const rules = rulesOf(ref.kind);
  const waiters = waitersOf(s, primitiveKey(ref.kind, namespace, ref.name), ref.kind);
  const passed = (w: Waiter) => stagePassed(w.indexed.stages[w.stageIndex]!, primitive, w.view.uid);
  const entry = (view: PodView, position: number | null, reason: string): QueueEntryView => {
    const e: QueueEntryView = {
      position,
      pod: view.name,
      uid: view.uid,
      priority: view.priority ?? 0,
      permits: view.permits,
      reason,
    };
    const since = iso(view.scheduledAt);
    if (since) e.waitingSince = since;
    return e;
  };
  const queue = rules.queue?.(
    primitive,
    waiters.map((w) => w.view),
  );
  const entries: QueueEntryView[] = queue
    ? // in grant order (the kind's queue gives each waiter the priority it is ordered by)
      queue.map((v, i) => entry(v, i + 1, rules.explain.queueReason(primitive, i, v)))
    : // no order: every eligible pod passes when it opens
      waiters
        .filter(
          (w) => isPresent(w.view) && !w.view.finished && !w.view.passedWait && w.view.eligible && !passed(w),
        )
        .map((w) => entry(w.view, null, rules.explain.queueReason(primitive, -1, w.view)))
        .sort(
          (a, b) => (a.waitingSince ?? '').localeCompare(b.waitingSince ?? '') || a.pod.localeCompare(b.pod),
        );
  const queued = new Set(entries.map((e) => e.uid));
  const inQueue = entries.length;
  // Pods that reference it but are not waiting at it yet.
  for (const w of waiters.sort((a, b) => a.view.name.localeCompare(b.view.name))) {
    if (queued.has(w.view.uid) || w.view.finished || w.view.passedWait || passed(w)) continue;
    const reason = !isPresent(w.view)
      ? 'not in the queue: the pod is not scheduled to a node yet'
      : `not in the queue: waits for ${firstUnpassed(s, w.indexed) ?? 'an earlier primitive'} first`;
    entries.push(entry(w.view, null, reason));
  }
  return { ...summaryOf(namespace, ref, primitive), waiting: inQueue, entries };
}

/** `gate ready`: the pod's first primitive it has not passed. */
export function firstUnpassed(s: Snapshot, p: IndexedPod): string | undefined {
  const uid = p.pod.metadata.uid ?? '';
  const st = p.stages.find((x) => !stagePassed(x, s.primitives.get(x.key)?.primitive, uid));
  return st ? `${lower(st.kind)} ${st.name}` : undefined;
}

// ---- holders --------------------------------------------------------------------------------------

/** A holder as `holders` lists it: permits, fencing token (0 for a barrier's arrivals), since, expiry. */
export type HolderView = HeldGrant;

export interface HoldersView extends PrimitiveSummary {
  holders: HolderView[];
  /** Why there is no holder list (a kind that holds nothing). */
  note?: string;
}

export function holdersView(s: Snapshot, namespace: string, ref: PrimitiveRef): HoldersView | undefined {
  const primitive = findPrimitive(s, namespace, ref);
  if (!primitive) return undefined;
  const { rows, note } = rulesOf(ref.kind).explain.listed(primitive);
  return { ...summaryOf(namespace, ref, primitive), holders: rows, ...(note ? { note } : {}) };
}
