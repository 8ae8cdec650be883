/**
 * PodView: the normalized facts about one managed pod that arbitration needs, derived purely from the
 * Pod object (plus one fact the controller derives from other objects: eligibility). Arbitration never
 * looks at a raw Pod, and nothing in a PodView comes from the controller's memory or from what an agent
 * said: a grant is given back only on evidence in the API (docs/security.md, "Arbitration guarantees").
 */
import { type KonductorRequest, requestOf } from '../../api/annotations.ts';
import {
  ANNOTATIONS,
  KINDS,
  type PrimitiveKind,
  SCHEDULING_GATE,
  WAIT_CONTAINER,
  WEBHOOK_ANNOTATIONS,
} from '../../api/constants.ts';
import type { ContainerStatus, Pod } from '../../api/types.ts';
import { fromIso } from './timestamps.ts';

export interface PodView {
  name: string;
  namespace: string;
  uid: string;
  /**
   * konductor.io/priority, higher first. `undefined` when the pod sets none: a Lease then uses its
   * spec.priority, everything else 0.
   */
  priority: number | undefined;
  /** Permits asked for (semaphore); 1 for a lease; irrelevant for barrier and gate. */
  permits: number;
  /**
   * Arrival time in ms (arrivalOf): a pod in scheduling-gate mode arrives when it is admitted; any other when it
   * is scheduled (the PodScheduled condition's lastTransitionTime, else creationTimestamp).
   */
  scheduledAt: number;
  /**
   * Admission time in ms (the webhook's konductor.io/admitted-at, else creationTimestamp): breaks ties
   * between pods scheduled within the same second, whose API timestamps are equal.
   */
  admittedAt: number;
  /** spec.nodeName is set. */
  bound: boolean;
  /**
   * Unscheduled behind konductor's scheduling gate (scheduling-gate mode): it waits like a bound pod, and its
   * gate is removed once it has passed every primitive. A pod neither bound nor gated takes no place anywhere.
   */
  gated: boolean;
  /** konductor.io/start-timeout in ms (scheduling-gate mode): see startTimedOut. */
  startTimeoutMs?: number | undefined;
  /** When it had passed every one of its primitives (the latest grant or opening), ms; undefined before. */
  clearedAt?: number | undefined;
  /**
   * The pod is done with its grants, by its status: phase Succeeded/Failed, its main containers all
   * terminated for good (see mainContainersFinished), or — once it is being deleted — all its main
   * containers terminated. A pod with a deletionTimestamp whose main containers still run is NOT finished:
   * graceful deletion gives them up to terminationGracePeriodSeconds, and they may use it.
   */
  finished: boolean;
  /** metadata.deletionTimestamp is set: the pod is going away (it is never granted anything new). */
  terminating: boolean;
  /** Its konductor-wait init container exited 0, or a main container has started. */
  passedWait: boolean;
  /** When it passed its wait (the wait container's finishedAt, else the first main container start), ms. */
  passedWaitAt?: number | undefined;
  /** Earlier primitives in acquisition order (gate, barrier, lease, semaphore) are satisfied. */
  eligible: boolean;
}

/** What the pod asks of the one primitive being arbitrated. */
export interface PodRequest {
  /** Permits asked for; default 1. */
  permits?: number | undefined;
  /** Annotated priority; undefined when the pod sets none. */
  priority?: number | undefined;
  /** konductor.io/start-timeout, ms. */
  startTimeoutMs?: number | undefined;
}

/** Facts the caller derives from other objects. */
export interface PodExtras {
  eligible: boolean;
  /** When the pod had passed all its primitives (see PodView.clearedAt). */
  clearedAt?: number | undefined;
}

/**
 * The PodRequest of a parsed annotation request for one primitive kind. The priority is undefined unless
 * the pod carries the konductor.io/priority annotation (parseAnnotations reports 0 for both).
 */
export function podRequestFor(pod: Pod, request: KonductorRequest, kind: PrimitiveKind): PodRequest {
  const annotated = pod.metadata.annotations?.[ANNOTATIONS.priority] !== undefined;
  return {
    permits: KINDS[kind].holds === 'permits' ? (requestOf(request, kind)?.permits ?? 1) : 1,
    priority: annotated ? request.priority : undefined,
    startTimeoutMs: request.startTimeoutMs,
  };
}

/** The pod carries konductor's scheduling gate (it is not scheduled before the gate is removed). */
export function isGated(pod: Pod): boolean {
  return (pod.spec?.schedulingGates ?? []).some((g) => g?.name === SCHEDULING_GATE);
}

/**
 * When the pod arrived, ms (its place in every queue): a pod in scheduling-gate mode when it was admitted (it is
 * queued unscheduled, and keeps its place if it is scheduled later); any other pod when it was scheduled (the
 * PodScheduled condition), else when it was created. Undefined when no time is known.
 *
 * The API's scheduling times have one-second precision, so an admission time is cut to the second too: pods of
 * both modes arriving within one second tie, and their admission times (compareWaiters) order them. Otherwise a
 * pod scheduled at 12:00:05.9 (05.0 in the API) would pass a gated pod admitted at 12:00:05.3.
 */
export function arrivalOf(pod: Pod): number | undefined {
  const meta = pod.metadata;
  if (meta.annotations?.[ANNOTATIONS.waitMode] === 'scheduling-gate') {
    const admitted = admissionOf(pod);
    return admitted === undefined ? undefined : Math.floor(admitted / 1000) * 1000;
  }
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'True');
  return fromIso(scheduled?.lastTransitionTime) ?? fromIso(meta.creationTimestamp);
}

/** When the webhook admitted the pod (konductor.io/admitted-at), else its creationTimestamp, ms. */
function admissionOf(pod: Pod): number | undefined {
  return (
    fromIso(pod.metadata.annotations?.[WEBHOOK_ANNOTATIONS.admittedAt]) ??
    fromIso(pod.metadata.creationTimestamp)
  );
}

/** Pods with unknown arrival time queue after every pod whose arrival is known. */
const UNKNOWN_TIME = Number.MAX_SAFE_INTEGER;

export function toPodView(pod: Pod, request: PodRequest, extras: PodExtras): PodView {
  const meta = pod.metadata;
  const permits = request.permits;
  return {
    name: meta.name ?? '',
    namespace: meta.namespace ?? 'default',
    uid: meta.uid ?? '',
    priority: request.priority,
    permits: permits !== undefined && Number.isInteger(permits) && permits >= 1 ? permits : 1,
    scheduledAt: arrivalOf(pod) ?? UNKNOWN_TIME,
    admittedAt: admissionOf(pod) ?? UNKNOWN_TIME,
    bound: typeof pod.spec.nodeName === 'string' && pod.spec.nodeName !== '',
    gated: isGated(pod),
    startTimeoutMs: request.startTimeoutMs,
    clearedAt: extras.clearedAt,
    finished: isFinished(pod),
    terminating: meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null,
    passedWait: hasPassedWait(pod),
    passedWaitAt: passedWaitTime(pod),
    eligible: extras.eligible,
  };
}

export function isFinished(pod: Pod): boolean {
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return true;
  if (pod.metadata.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null) {
    return mainContainersStopped(pod);
  }
  return mainContainersFinished(pod);
}

/**
 * Every main container of a pod that is being deleted has terminated (its status says so). The kubelet
 * restarts nothing in a terminating pod, so these containers are done whatever the restartPolicy. A main
 * container that never started (the pod was deleted in its init containers) has no terminated state: such
 * a pod is done when its object is gone or its phase is terminal — a status not yet updated by the kubelet
 * must never pass for "stopped".
 */
export function mainContainersStopped(pod: Pod): boolean {
  const containers = pod.spec.containers ?? [];
  if (containers.length === 0) return false;
  const statuses = new Map<string, ContainerStatus>();
  for (const s of pod.status?.containerStatuses ?? []) statuses.set(s.name, s);
  return containers.every((c) => statuses.get(c.name)?.state?.terminated !== undefined);
}

/**
 * True when every main (non-init) container has terminated and will not be restarted:
 * restartPolicy Never: any termination; OnFailure: exit code 0; Always (the default): never — a
 * restarting container keeps its grant (the pod is finished only when its phase or deletion says so).
 */
export function mainContainersFinished(pod: Pod): boolean {
  const policy = pod.spec.restartPolicy ?? 'Always';
  if (policy === 'Always') return false;
  const containers = pod.spec.containers ?? [];
  if (containers.length === 0) return false;
  const statuses = new Map<string, ContainerStatus>();
  for (const s of pod.status?.containerStatuses ?? []) statuses.set(s.name, s);
  return containers.every((c) => {
    const terminated = statuses.get(c.name)?.state?.terminated;
    if (terminated === undefined) return false;
    return policy === 'Never' || terminated.exitCode === 0;
  });
}

function passedWaitTime(pod: Pod): number | undefined {
  const wait = pod.status?.initContainerStatuses?.find((s) => s.name === WAIT_CONTAINER);
  const finished = fromIso(wait?.state?.terminated?.finishedAt);
  if (wait?.state?.terminated?.exitCode === 0 && finished !== undefined) return finished;
  const starts = (pod.status?.containerStatuses ?? [])
    .map((s) => fromIso(s.state?.running?.startedAt ?? s.state?.terminated?.startedAt))
    .filter((t): t is number => t !== undefined);
  return starts.length > 0 ? Math.min(...starts) : undefined;
}

/**
 * When a holder's ttl starts counting: once its pod has passed its wait (before that it is still acquiring
 * later primitives, and expiring it then could hand its grant to a pod that waits for what it holds —
 * a deadlock the acquisition order otherwise rules out), from the later of the grant and that moment.
 * Undefined while the pod still waits.
 */
export function holdStartedAt(
  pod: Pick<PodView, 'passedWait' | 'passedWaitAt'>,
  grantedAt: number,
): number | undefined {
  if (!pod.passedWait) return undefined;
  return Math.max(grantedAt, pod.passedWaitAt ?? grantedAt);
}

export function hasPassedWait(pod: Pod): boolean {
  const wait = pod.status?.initContainerStatuses?.find((s) => s.name === WAIT_CONTAINER);
  if (wait?.state?.terminated?.exitCode === 0) return true;
  return (pod.status?.containerStatuses ?? []).some(
    (s) =>
      s.started === true ||
      s.state?.running !== undefined ||
      s.state?.terminated !== undefined ||
      s.lastState?.terminated !== undefined,
  );
}

/**
 * The pod takes its place at its primitives: bound to a node, or unscheduled behind konductor's scheduling gate.
 * A pod neither bound nor gated (not scheduled yet in init-container mode, or ungated but not placed by the
 * scheduler) waits for nothing and is granted nothing.
 */
export function isPresent(view: Pick<PodView, 'bound' | 'gated'>): boolean {
  return view.bound || view.gated;
}

/**
 * A holder granted while unscheduled (scheduling-gate mode) whose gate is gone but that is still not on a node
 * its start timeout after it passed every primitive: the scheduler finds no room for it, and its grant goes
 * back. Kubernetes cannot put a scheduling gate back on a pod, so the pod is not queued while unscheduled; once
 * scheduled, it waits in konductor-wait at its original place (its arrival is its admission).
 */
export function startTimedOut(
  view: Pick<PodView, 'bound' | 'gated' | 'finished' | 'startTimeoutMs' | 'clearedAt'>,
  now: number,
): boolean {
  const due = startDeadline(view);
  return due !== undefined && due <= now;
}

/** When startTimedOut becomes true for a holder (undefined: never, as things stand). */
export function startDeadline(
  view: Pick<PodView, 'bound' | 'gated' | 'finished' | 'startTimeoutMs' | 'clearedAt'>,
): number | undefined {
  if (view.bound || view.gated || view.finished) return undefined;
  if (view.startTimeoutMs === undefined || view.clearedAt === undefined) return undefined;
  return view.clearedAt + view.startTimeoutMs;
}

/** Priority of a view, with `fallback` for pods that set none. */
export function effectivePriority(view: Pick<PodView, 'priority'>, fallback = 0): number {
  return view.priority ?? fallback;
}

/**
 * Arbitration order: priority descending (unset = 0), then arrival (scheduledAt) ascending, then UID
 * ascending — a total order, so every replica sorts the same pods the same way.
 */
export function compareWaiters(
  a: Pick<PodView, 'priority' | 'scheduledAt' | 'uid'> & { admittedAt?: number },
  b: Pick<PodView, 'priority' | 'scheduledAt' | 'uid'> & { admittedAt?: number },
): number {
  const pa = effectivePriority(a);
  const pb = effectivePriority(b);
  if (pa !== pb) return pb - pa;
  if (a.scheduledAt !== b.scheduledAt) return a.scheduledAt - b.scheduledAt;
  const ta = a.admittedAt ?? 0;
  const tb = b.admittedAt ?? 0;
  if (ta !== tb) return ta - tb;
  return a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0;
}

/**
 * Why a holder's grant goes back, from its pod's state; undefined while it still holds. `undefined` pod:
 * the caller confirmed that the pod is gone (a GET answered 404 or a pod with another UID).
 */
export function releaseReason(
  pod: Pick<PodView, 'finished' | 'terminating'> | undefined,
): string | undefined {
  if (!pod) return 'the pod is gone';
  if (pod.finished && pod.terminating) return 'the pod was deleted and its main containers stopped';
  if (pod.finished) return 'the pod finished';
  return undefined;
}
