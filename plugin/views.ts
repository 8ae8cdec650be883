/**
 * What `kubectl konductor` shows, as plain data (the JSON and YAML outputs; plugin/render.ts draws the
 * tables). Pure functions of a Snapshot and the time.
 *
 * Queues are computed from the pods with the controller's own ordering functions (semaphoreQueue,
 * leaseQueue, eligibleFor, stageState, queueOrder): the plugin shows the order the manager grants in, for
 * the whole queue (the primitive's status lists only its head).
 */
import { ANNOTATION_PREFIX, ANNOTATIONS, type PrimitiveKind, WAIT_CONTAINER } from '../api/constants.ts';
import { parseDuration } from '../api/duration.ts';
import type { Barrier, Gate, Lease, Pod, Primitive, Semaphore } from '../api/types.ts';
import { barrierNeeded } from '../controller/arbitration/barrier.ts';
import { leaseQueue } from '../controller/arbitration/lease.ts';
import {
  type IndexedPod,
  type PrimitiveKey,
  primitiveKey,
  type Stage,
} from '../controller/arbitration/podIndex.ts';
import { type PodView, podRequestFor, toPodView } from '../controller/arbitration/podView.ts';
import { capacityOf, primitiveGauges } from '../controller/arbitration/queueFigures.ts';
import { semaphoreCapacity, semaphoreQueue } from '../controller/arbitration/semaphore.ts';
import { eligibleFor, queueOrder, stagePassed, stageState } from '../controller/arbitration/stages.ts';
import type { PrimitiveRef } from './refs.ts';
import { figuresSource, type Snapshot } from './snapshot.ts';

const lower = (kind: PrimitiveKind) => kind.toLowerCase();
const iso = (ms: number | undefined) =>
  ms === undefined || ms >= Number.MAX_SAFE_INTEGER ? undefined : new Date(ms).toISOString();
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function phaseOf(p: Primitive): string {
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

interface Waiter {
  view: PodView;
  indexed: IndexedPod;
  stageIndex: number;
}

/** The pods that reference `key`, with their PodView for that primitive (eligibility from the snapshot). */
function waitersOf(s: Snapshot, key: PrimitiveKey, kind: PrimitiveKind): Waiter[] {
  const lookup = (k: string) => s.primitives.get(k)?.primitive;
  return s.pods.podsOf(key).map((indexed) => {
    const stageIndex = indexed.stages.findIndex((st) => st.key === key);
    const uid = indexed.pod.metadata.uid ?? '';
    const view = toPodView(indexed.pod, podRequestFor(indexed.pod, indexed.request, kind), {
      eligible: eligibleFor(indexed.stages, stageIndex, lookup, uid),
    });
    return { view, indexed, stageIndex };
  });
}

export function findPrimitive(s: Snapshot, namespace: string, ref: PrimitiveRef): Primitive | undefined {
  return s.primitives.get(primitiveKey(ref.kind, namespace, ref.name))?.primitive;
}

/** The whole queue of a primitive in grant order, then the pods that reference it but are not queued yet. */
export function queueView(s: Snapshot, namespace: string, ref: PrimitiveRef): QueueView | undefined {
  const primitive = findPrimitive(s, namespace, ref);
  if (!primitive) return undefined;
  const key = primitiveKey(ref.kind, namespace, ref.name);
  const waiters = waitersOf(s, key, ref.kind);
  const byUid = new Map(waiters.map((w) => [w.view.uid, w]));
  const { capacity, inUse } = capacityOf(primitive);
  const entries: QueueEntryView[] = [];
  const entry = (
    w: Waiter,
    position: number | null,
    reason: string,
    priorityFallback = 0,
  ): QueueEntryView => {
    const e: QueueEntryView = {
      position,
      pod: w.view.name,
      uid: w.view.uid,
      priority: w.view.priority ?? priorityFallback,
      permits: w.view.permits,
      reason,
    };
    const since = iso(w.view.scheduledAt);
    if (since) e.waitingSince = since;
    return e;
  };
  const views = waiters.map((w) => w.view);
  const queued = new Set<string>();

  if (ref.kind === 'Semaphore') {
    const sem = primitive as Semaphore;
    const holders = sem.status?.holders ?? [];
    const cap = semaphoreCapacity(sem) ?? 0;
    const q = semaphoreQueue(cap, views, new Set(holders.map((h) => h.uid)));
    const free = Math.max(0, cap - inUse);
    q.ordered.forEach((v, i) => {
      queued.add(v.uid);
      const reason =
        i > 0
          ? `behind ${plural(i, 'pod')} (strict order: nobody is granted past the head)`
          : v.permits <= free
            ? `next: ${plural(free, 'permit')} free, the manager grants it now`
            : `needs ${plural(v.permits, 'permit')}, ${free} free: waits for holders to release ${v.permits - free} more`;
      entries.push(entry(byUid.get(v.uid)!, i + 1, reason));
    });
    q.oversize.forEach((v, i) => {
      queued.add(v.uid);
      const reason = `asks ${plural(v.permits, 'permit')}, more than spec.permits ${cap}: not granted until spec.permits is raised`;
      entries.push(entry(byUid.get(v.uid)!, q.ordered.length + i + 1, reason));
    });
  } else if (ref.kind === 'Lease') {
    const lease = primitive as Lease;
    const holder = lease.status?.holder;
    const q = leaseQueue(lease, views, holder?.uid);
    q.forEach((v, i) => {
      queued.add(v.uid);
      const reason =
        i > 0
          ? `behind ${plural(i, 'pod')}`
          : holder
            ? `next: held by pod ${holder.pod} until it finishes or its ttl ends at ${holder.expiresAt}`
            : 'next: the lease is free, the manager grants it now';
      entries.push(entry(byUid.get(v.uid)!, i + 1, reason, lease.spec?.priority ?? 0));
    });
  } else {
    // Barrier and Gate: no order, every eligible pod passes when it opens.
    const reason =
      ref.kind === 'Barrier' ? barrierReason(primitive as Barrier) : gateReason(primitive as Gate);
    for (const w of waiters) {
      if (!w.view.bound || w.view.finished || w.view.passedWait || !w.view.eligible) continue;
      if (stagePassed(w.indexed.stages[w.stageIndex]!, primitive, w.view.uid)) continue;
      queued.add(w.view.uid);
      entries.push(entry(w, null, reason));
    }
    entries.sort(
      (a, b) => (a.waitingSince ?? '').localeCompare(b.waitingSince ?? '') || a.pod.localeCompare(b.pod),
    );
  }
  const inQueue = entries.length;
  // Pods that reference it but are not waiting at it yet.
  for (const w of waiters.sort((a, b) => a.view.name.localeCompare(b.view.name))) {
    if (queued.has(w.view.uid) || w.view.finished || w.view.passedWait) continue;
    if (stagePassed(w.indexed.stages[w.stageIndex]!, primitive, w.view.uid)) continue;
    const reason = !w.view.bound
      ? 'not in the queue: the pod is not scheduled to a node yet'
      : `not in the queue: waits for ${firstUnpassed(s, w.indexed) ?? 'an earlier primitive'} first`;
    entries.push(entry(w, null, reason));
  }
  return {
    kind: ref.kind,
    namespace,
    name: ref.name,
    phase: phaseOf(primitive),
    capacity,
    inUse,
    waiting: inQueue,
    entries,
  };
}

function firstUnpassed(s: Snapshot, p: IndexedPod): string | undefined {
  const uid = p.pod.metadata.uid ?? '';
  const st = p.stages.find((x) => !stagePassed(x, s.primitives.get(x.key)?.primitive, uid));
  return st ? `${lower(st.kind)} ${st.name}` : undefined;
}

function barrierReason(b: Barrier): string {
  if (b.status?.phase === 'Failed') return `the barrier failed: ${conditionMessage(b) ?? 'timed out'}`;
  const need = barrierNeeded(b) ?? b.spec?.expected ?? 0;
  const arrived = b.status?.arrived ?? 0;
  return `opens at ${need} arrivals, ${arrived} arrived: ${Math.max(0, need - arrived)} more must arrive`;
}

function gateReason(g: Gate): string {
  if (g.status?.phase === 'Failed') return `the gate failed: ${conditionMessage(g) ?? 'timed out'}`;
  const unmet = (g.status?.conditionStatuses ?? []).filter((c) => !c.met).map((c) => c.message);
  return unmet.length > 0 ? `conditions not met: ${unmet.join('; ')}` : 'conditions not evaluated yet';
}

function conditionMessage(p: Primitive): string | undefined {
  return (p.status as { conditions?: { type: string; message: string }[] } | undefined)?.conditions?.find(
    (c) => c.type === 'Ready',
  )?.message;
}

// ---- holders --------------------------------------------------------------------------------------

export interface HolderView {
  pod: string;
  uid: string;
  permits: number;
  /** Fencing token (0 for barrier arrivals). */
  token: number;
  grantedAt?: string;
  expiresAt?: string;
}

export interface HoldersView extends PrimitiveSummary {
  holders: HolderView[];
  /** Why there is no holder list (Gate). */
  note?: string;
}

export function holdersView(s: Snapshot, namespace: string, ref: PrimitiveRef): HoldersView | undefined {
  const primitive = findPrimitive(s, namespace, ref);
  if (!primitive) return undefined;
  const base = {
    kind: ref.kind,
    namespace,
    name: ref.name,
    phase: phaseOf(primitive),
    ...capacityOf(primitive),
  };
  const holder = (
    pod: string,
    uid: string,
    permits: number,
    token: number,
    grantedAt: string,
    expiresAt?: string,
  ) => ({
    pod,
    uid,
    permits,
    token,
    grantedAt,
    ...(expiresAt ? { expiresAt } : {}),
  });
  switch (ref.kind) {
    case 'Semaphore':
      return {
        ...base,
        holders: ((primitive as Semaphore).status?.holders ?? []).map((h) =>
          holder(h.pod, h.uid, h.permits, h.token, h.grantedAt, h.expiresAt),
        ),
      };
    case 'Lease': {
      const h = (primitive as Lease).status?.holder;
      return { ...base, holders: h ? [holder(h.pod, h.uid, 1, h.token, h.acquiredAt, h.expiresAt)] : [] };
    }
    case 'Barrier':
      return {
        ...base,
        holders: ((primitive as Barrier).status?.arrivals ?? []).map((a) =>
          holder(a.pod, a.uid, 0, 0, a.arrivedAt),
        ),
        note: 'a barrier holds nothing: these are its arrivals (grantedAt: when each arrived)',
      };
    case 'Gate':
      return { ...base, holders: [], note: 'a gate holds nothing: pods pass while it is open' };
  }
}

// ---- why ------------------------------------------------------------------------------------------

export type StageStateName = 'passed' | 'waiting' | 'failed' | 'missing' | 'not-reached';

export interface StageWhy {
  kind: PrimitiveKind;
  name: string;
  state: StageStateName;
  /** 1-based place in the queue (Semaphore, Lease). */
  position?: number;
  queueLength?: number;
  /** What the state means, in one line. */
  detail: string;
  /** What must happen for the pod to get past this primitive (absent once passed). */
  toStart?: string;
}

export interface WhyView {
  pod: string;
  namespace: string;
  uid: string;
  phase: string;
  managed: boolean;
  /** The pod's konductor.io/ annotations. */
  annotations: Record<string, string>;
  /** It waits in konductor-wait now. */
  waiting: boolean;
  /** One sentence. */
  summary: string;
  /** One per primitive, in acquisition order (gate, barrier, lease, semaphore). */
  stages: StageWhy[];
  /** konductor.io/wait-timeout, and when the pod gives up (wait container start + timeout). */
  waitTimeout?: { duration: string; deadline?: string };
}

/** What the pod waits for, where it stands at each of its primitives, and what must happen for it to start. */
export function whyView(s: Snapshot, pod: Pod): WhyView {
  const meta = pod.metadata;
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta.annotations ?? {}))
    if (k.startsWith(ANNOTATION_PREFIX)) annotations[k] = v;
  const uid = meta.uid ?? '';
  const namespace = meta.namespace ?? 'default';
  const base = {
    pod: meta.name ?? '',
    namespace,
    uid,
    phase: pod.status?.phase ?? '',
    annotations,
  };
  const indexed = s.pods.get(uid);
  if (!indexed) {
    const summary =
      Object.keys(annotations).length === 0
        ? 'not managed by konductor: the pod has no konductor.io/ annotations'
        : 'not managed by konductor: the webhook did not inject it (created before konductor was installed, or its namespace is excluded)';
    return { ...base, managed: false, waiting: false, summary, stages: [] };
  }
  const lookup = (k: string) => s.primitives.get(k)?.primitive;
  const ref = { name: base.pod, namespace, uid };
  const stages: StageWhy[] = [];
  let blocked = false;
  for (const stage of indexed.stages) {
    if (blocked) {
      stages.push({
        kind: stage.kind,
        name: stage.name,
        state: 'not-reached',
        detail: 'acquired after the primitives before it (order: gate, barrier, lease, semaphore)',
      });
      continue;
    }
    const primitive = lookup(stage.key);
    const order = () =>
      primitive && (stage.kind === 'Semaphore' || stage.kind === 'Lease')
        ? queueOrder(
            stage.kind,
            primitive,
            waitersOf(s, stage.key, stage.kind).map((w) => w.view),
          )
        : { index: new Map<string, number>(), length: 0 };
    const st = stageState(stage, primitive, ref, order);
    const why = describeStage(s, stage, primitive, st, indexed);
    stages.push(why);
    if (why.state !== 'passed') blocked = true;
  }
  const view = toPodView(pod, podRequestFor(pod, indexed.request, indexed.stages[0]?.kind ?? 'Gate'), {
    eligible: true,
  });
  const current = stages.find((x) => x.state !== 'passed' && x.state !== 'not-reached');
  const waiting = !view.passedWait && !view.finished && current !== undefined;
  const out: WhyView = {
    ...base,
    managed: true,
    waiting,
    summary: summaryOf(base, view, current, stages),
    stages,
  };
  const timeout = annotations[ANNOTATIONS.waitTimeout];
  if (timeout) {
    out.waitTimeout = { duration: timeout };
    const started = pod.status?.initContainerStatuses?.find((c) => c.name === WAIT_CONTAINER)?.state?.running
      ?.startedAt;
    try {
      if (started)
        out.waitTimeout.deadline = new Date(Date.parse(started) + parseDuration(timeout)).toISOString();
    } catch {
      /* an invalid duration was denied at admission */
    }
  }
  return out;
}

function summaryOf(
  base: { pod: string; namespace: string },
  view: PodView,
  current: StageWhy | undefined,
  stages: readonly StageWhy[],
): string {
  const who = `pod ${base.namespace}/${base.pod}`;
  if (view.finished) return `${who} has finished: it holds nothing`;
  if (view.passedWait) return `${who} is running: it passed all ${plural(stages.length, 'primitive')}`;
  if (!view.bound) return `${who} is not scheduled to a node yet: it takes no place in a queue until it is`;
  if (!current) return `${who} has been granted everything: konductor-wait is about to exit`;
  const where = `${lower(current.kind)} ${base.namespace}/${current.name}`;
  if (current.state === 'failed') return `${who} will not start: ${where} failed`;
  if (current.state === 'missing') return `${who} waits for ${where}, which does not exist`;
  return `${who} waits for ${where}${current.position ? ` (position ${current.position} of ${current.queueLength})` : ''}`;
}

function describeStage(
  s: Snapshot,
  stage: Stage,
  primitive: Primitive | undefined,
  st: ReturnType<typeof stageState>,
  pod: IndexedPod,
): StageWhy {
  const out = { kind: stage.kind, name: stage.name };
  const where = `${lower(stage.kind)} ${pod.pod.metadata.namespace}/${stage.name}`;
  if (st.state === 'passed') {
    const g = st.grant;
    return {
      ...out,
      state: 'passed',
      detail:
        stage.kind === 'Semaphore' || stage.kind === 'Lease'
          ? `granted${stage.kind === 'Semaphore' ? ` ${plural(stage.permits, 'permit')}` : ''} at ${g.grantedAt} (token ${g.token})`
          : `open since ${g.grantedAt}`,
    };
  }
  if (st.state === 'failed')
    return {
      ...out,
      state: 'failed',
      detail: st.message,
      toStart: `nothing: recreate the ${lower(stage.kind)} and the pod`,
    };
  const standing = st.standing;
  if (standing.missing || !primitive) {
    return {
      ...out,
      state: 'missing',
      detail: `${where} does not exist`,
      toStart: `${stage.kind} ${stage.name} must be created in namespace ${pod.pod.metadata.namespace}`,
    };
  }
  const base = { ...out, state: 'waiting' as const };
  switch (stage.kind) {
    case 'Semaphore': {
      const sem = primitive as Semaphore;
      const cap = semaphoreCapacity(sem) ?? 0;
      const inUse = sem.status?.inUse ?? 0;
      const asks = standing.requested ?? stage.permits;
      const detail = `${inUse}/${cap} permits in use; it asks ${asks}`;
      if (!standing.position) return { ...base, detail, toStart: 'the pod must be scheduled first' };
      if (asks > cap) {
        return {
          ...base,
          position: standing.position,
          queueLength: standing.queueLength,
          detail,
          toStart: `spec.permits (${cap}) must be raised to at least ${asks}`,
        };
      }
      const q = semaphoreQueue(
        cap,
        waitersOf(s, stage.key, 'Semaphore').map((w) => w.view),
        new Set((sem.status?.holders ?? []).map((h) => h.uid)),
      );
      const ahead = q.ordered.slice(0, standing.position - 1);
      const needed = ahead.reduce((n, p) => n + p.permits, 0) + asks;
      const free = Math.max(0, cap - inUse);
      const release = Math.max(0, needed - free);
      const holders = (sem.status?.holders ?? []).map((h) => `${h.pod} (${plural(h.permits, 'permit')})`);
      const parts: string[] = [];
      if (ahead.length > 0)
        parts.push(`the ${plural(ahead.length, 'pod')} ahead of it (${names(ahead)}) must be granted first`);
      if (release > 0)
        parts.push(
          `${plural(release, 'permit')} must be released (held now by ${holders.join(', ') || 'nobody'})`,
        );
      return {
        ...base,
        position: standing.position,
        queueLength: standing.queueLength,
        detail,
        toStart: parts.length > 0 ? parts.join('; then ') : 'nothing: the manager grants it now',
      };
    }
    case 'Lease': {
      const lease = primitive as Lease;
      const holder = lease.status?.holder;
      const detail = holder
        ? `held by pod ${holder.pod} (token ${holder.token}) until ${holder.expiresAt}`
        : 'not held';
      if (!standing.position) return { ...base, detail, toStart: 'the pod must be scheduled first' };
      const ahead = leaseQueue(
        lease,
        waitersOf(s, stage.key, 'Lease').map((w) => w.view),
        holder?.uid,
      ).slice(0, standing.position - 1);
      const parts: string[] = [];
      if (holder) parts.push(`pod ${holder.pod} must finish, or its hold expire at ${holder.expiresAt}`);
      if (ahead.length > 0)
        parts.push(
          `the ${plural(ahead.length, 'pod')} ahead of it (${names(ahead)}) must hold it and finish`,
        );
      return {
        ...base,
        position: standing.position,
        queueLength: standing.queueLength,
        detail,
        toStart: parts.length > 0 ? parts.join('; then ') : 'nothing: the manager grants it now',
      };
    }
    case 'Barrier': {
      const need = standing.expected ?? 0;
      const arrived = standing.arrived ?? 0;
      const timeout = (primitive as Barrier).spec?.timeout;
      return {
        ...base,
        detail: `${arrived} of ${need} pods arrived`,
        toStart: `${plural(Math.max(0, need - arrived), 'more pod')} must arrive${timeout ? ` within ${timeout} of the first arrival` : ''}`,
      };
    }
    case 'Gate': {
      const unmet = standing.unmet ?? [];
      return {
        ...base,
        detail: unmet.length > 0 ? `${plural(unmet.length, 'condition')} not met` : 'not evaluated yet',
        toStart: unmet.length > 0 ? unmet.join('; ') : 'the manager must evaluate the gate (is it running?)',
      };
    }
  }
}

function names(pods: readonly PodView[]): string {
  const shown = pods.slice(0, 3).map((p) => p.name);
  return pods.length > 3 ? `${shown.join(', ')} and ${pods.length - 3} more` : shown.join(', ');
}
