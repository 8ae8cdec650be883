/**
 * The figures konductor's metrics are made of, pure: why a holder's grant went back, whether a status write
 * passed pods on, the per-primitive rows capped to a number of series, the annotations a denial names.
 * controller/metrics.ts registers the prom-client metrics and feeds them from these.
 */

import type { AnnotationProblem } from '../api/annotations.ts';
import { ANNOTATIONS } from '../api/constants.ts';
import { KINDS, type PrimitiveKind } from '../api/kinds.ts';
import type { Pod, Primitive } from '../api/types.ts';
import { rulesOf } from './arbitration/kinds.ts';
import type { IndexedPod } from './arbitration/podIndex.ts';
import { mainContainersFinished, type PodView, podRequestFor, toPodView } from './arbitration/podView.ts';
import type { PrimitiveGauge } from './arbitration/queueFigures.ts';
import { OTHER, type ReleaseReason, type WriteRecord } from './metrics.ts';

const KNOWN_ANNOTATIONS: readonly string[] = Object.values(ANNOTATIONS);

export function looksReleased(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return (
    phase === 'Succeeded' ||
    phase === 'Failed' ||
    // a graceful deletion is not a release: the grant goes back when the main containers stop
    mainContainersFinished(pod)
  );
}

export function toView(p: IndexedPod, kind: PrimitiveKind): PodView {
  return toPodView(p.pod, podRequestFor(p.pod, p.request, kind), { eligible: true });
}

/**
 * Why a removed holder lost its grant; undefined = it expired (ttl). Same rule as arbitration's releaseReason
 * (the hold sidecar's release call is only a hint: a grant goes back on the pod's state alone).
 */
export function releaseReasonOf(
  view: Pick<PodView, 'finished' | 'terminating'> | undefined,
): ReleaseReason | undefined {
  if (!view) return 'PodDeleted';
  if (view.finished) return view.terminating ? 'PodDeleted' : 'PodFinished';
  return undefined;
}

/** The UIDs holding a primitive (a kind that holds nothing: none). */
function holdersOf(kind: PrimitiveKind, p: Primitive): Set<string> {
  return new Set(
    rulesOf(kind)
      .holders(p)
      .map((h) => h.uid),
  );
}

export function waitingOf(kind: PrimitiveKind, p: Primitive): number {
  return rulesOf(kind).figures(p).waiting;
}

/**
 * What one write changed: the pods that passed the primitive with it (new holders; or, when a kind that holds
 * nothing opened, the pods waiting at it), the holders it removed, and how many waiters it granted.
 */
export function passChange(w: Pick<WriteRecord, 'before' | 'after' | 'pods'> & { kind?: PrimitiveKind }): {
  passed: IndexedPod[];
  removed: string[];
  grantedWaiters: number;
} {
  const { before, after } = w;
  const kind = w.kind ?? after.kind;
  if (KINDS[kind].holds !== 'nothing') {
    const was = holdersOf(kind, before);
    const now = holdersOf(kind, after);
    const added = [...now].filter((uid) => !was.has(uid));
    const byUid = new Map(w.pods.map((p) => [p.pod.metadata.uid ?? '', p]));
    return {
      passed: added.map((uid) => byUid.get(uid)).filter((p): p is IndexedPod => p !== undefined),
      removed: [...was].filter((uid) => !now.has(uid)),
      grantedWaiters: added.length,
    };
  }
  // A kind that holds nothing lets everyone pass at once: it opened when a pod passes now that did not before.
  const rules = rulesOf(kind);
  const opened = rules.grantOf(before, '') === undefined && rules.grantOf(after, '') !== undefined;
  if (!opened) return { passed: [], removed: [], grantedWaiters: 0 };
  const passed = w.pods.filter((p) => {
    const st = p.pod.status;
    return (
      Boolean(p.pod.spec?.nodeName) &&
      st?.phase !== 'Succeeded' &&
      st?.phase !== 'Failed' &&
      p.pod.metadata.deletionTimestamp === undefined
    );
  });
  return { passed, removed: [], grantedWaiters: 0 };
}

export function countByKind(rows: readonly PrimitiveGauge[]): Map<PrimitiveKind, number> {
  const out = new Map<PrimitiveKind, number>();
  for (const r of rows) out.set(r.kind, (out.get(r.kind) ?? 0) + 1);
  return out;
}

/** At most `max` rows of their own (by kind, namespace, name); the rest folded into one `(other)` row per kind. */
export function capSeries(rows: readonly PrimitiveGauge[], max: number): PrimitiveGauge[] {
  const sorted = [...rows].sort(
    (a, b) =>
      a.kind.localeCompare(b.kind) || a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name),
  );
  const kept = sorted.slice(0, Math.max(0, max));
  const other = new Map<PrimitiveKind, PrimitiveGauge>();
  for (const r of sorted.slice(Math.max(0, max))) {
    const o = other.get(r.kind) ?? {
      kind: r.kind,
      namespace: OTHER,
      name: OTHER,
      capacity: 0,
      inUse: 0,
      waiting: 0,
      oldestWaitSeconds: 0,
    };
    o.capacity += r.capacity;
    o.inUse += r.inUse;
    o.waiting += r.waiting;
    o.oldestWaitSeconds = Math.max(o.oldestWaitSeconds, r.oldestWaitSeconds);
    other.set(r.kind, o);
  }
  return [...kept, ...other.values()];
}

/**
 * The label values of a denial's annotations at fault: a known annotation key, `unknown` for a key konductor
 * does not know, or '' when no annotation is at fault (e.g. a malformed review). The admission decision
 * found them where the webhook reads annotations: the object's, a Job's pod template's, a CronJob's.
 */
export function deniedAnnotations(problems: readonly Pick<AnnotationProblem, 'annotation'>[]): string[] {
  const found = new Set(
    problems.map((p) => (KNOWN_ANNOTATIONS.includes(p.annotation) ? p.annotation : 'unknown')),
  );
  return found.size > 0 ? [...found] : [''];
}
