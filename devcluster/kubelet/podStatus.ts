/**
 * Pod status of the process kubelet (a TEST HARNESS, not a real kubelet), computed by a PURE function
 * from the runner's plain-data state. It follows the kubelet's conventions (pkg/kubelet/kubelet_pods.go
 * getPhase/generateAPIPodStatus, pkg/kubelet/status/generate.go) closely enough that kubectl's
 * printer (pkg/printers/internalversion/printers.go printPod) derives the STATUS column a user
 * expects: `Init:0/2`, `PodInitializing`, `Running`, `Completed`, `Error`, `Init:ErrImageNeverPull`.
 */
import type { ContainerStatus, PodCondition, PodPhase } from '../../api/types.ts';
import type { KContainer, KPod, RuntimeContainer, RuntimePod, RuntimeState } from './podTypes.ts';

export type ComputedPodStatus = NonNullable<KPod['status']>;

export const isSidecar = (c: KContainer | undefined): boolean => c?.restartPolicy === 'Always';

function stateOf(s: RuntimeState, containerID?: string): ContainerStatus['state'] {
  switch (s.kind) {
    case 'waiting':
      return { waiting: s.message ? { reason: s.reason, message: s.message } : { reason: s.reason } };
    case 'running':
      return { running: { startedAt: s.startedAt } };
    case 'terminated': {
      const t: NonNullable<NonNullable<ContainerStatus['state']>['terminated']> & { containerID?: string } = {
        exitCode: s.exitCode,
        reason: s.reason,
        startedAt: s.startedAt,
        finishedAt: s.finishedAt,
      };
      if (s.signal) t.signal = s.signal;
      if (s.message) t.message = s.message;
      if (containerID) t.containerID = containerID;
      return { terminated: t };
    }
  }
}

/** One containerStatuses / initContainerStatuses entry. */
export function containerStatusOf(c: RuntimeContainer): ContainerStatus {
  const running = c.state.kind === 'running';
  const st: ContainerStatus = {
    name: c.name,
    state: stateOf(c.state, c.containerID),
    lastState: c.lastTerminated ? stateOf(c.lastTerminated) : {},
    ready: running,
    started: running,
    restartCount: c.restartCount,
    image: c.image,
    imageID: c.imageID ?? '',
  };
  if (c.containerID && c.state.kind !== 'waiting') st.containerID = c.containerID;
  else if (c.containerID && c.lastTerminated) st.containerID = c.containerID;
  return st;
}

const hasRun = (c: RuntimeContainer) => c.state.kind !== 'waiting' || c.lastTerminated !== undefined;

/** Init containers that keep the pod from being Initialized (kubelet's "incomplete status"). */
export function incompleteInitContainers(pod: KPod, rt: RuntimePod): string[] {
  // Once a main container has run, the pod was initialized (and stays so, as with the kubelet).
  if (rt.main.some(hasRun)) return [];
  const specs = pod.spec.initContainers ?? [];
  const out: string[] = [];
  rt.init.forEach((c, i) => {
    if (isSidecar(specs[i])) {
      if (c.state.kind !== 'running') out.push(c.name);
    } else if (!(c.state.kind === 'terminated' && c.state.exitCode === 0)) {
      out.push(c.name);
    }
  });
  return out;
}

/** The pod phase, as the kubelet's getPhase derives it (no unknown states in a process runner). */
export function computePhase(pod: KPod, rt: RuntimePod): PodPhase {
  const prev = pod.status?.phase;
  if (prev === 'Succeeded' || prev === 'Failed') return prev; // terminal phases never change
  const policy = pod.spec.restartPolicy ?? 'Always';
  const specs = pod.spec.initContainers ?? [];
  const anyRunning = [...rt.init, ...rt.main].some((c) => c.state.kind === 'running');
  let phase: PodPhase;
  if (incompleteInitContainers(pod, rt).length > 0) {
    const initFailed = rt.init.some(
      (c, i) => !isSidecar(specs[i]) && c.state.kind === 'terminated' && c.state.exitCode !== 0,
    );
    phase = initFailed && policy === 'Never' ? 'Failed' : 'Pending';
  } else {
    let running = 0;
    let waiting = 0;
    let stopped = 0;
    let succeeded = 0;
    for (const c of rt.main) {
      if (c.state.kind === 'running') running++;
      else if (c.state.kind === 'terminated') {
        stopped++;
        if (c.state.exitCode === 0) succeeded++;
      } else if (c.lastTerminated) stopped++;
      else waiting++;
    }
    if (waiting > 0) phase = 'Pending';
    else if (running > 0) phase = 'Running';
    else if (stopped > 0) {
      if (policy === 'Always') phase = 'Running';
      else if (stopped === succeeded) phase = 'Succeeded';
      else if (policy === 'Never') phase = 'Failed';
      else phase = 'Running';
    } else phase = 'Pending';
  }
  // The kubelet reports a terminal phase only once every container (sidecars included) has stopped.
  if ((phase === 'Succeeded' || phase === 'Failed') && anyRunning) return 'Running';
  // Since Kubernetes 1.27 the kubelet gives a deleted pod whose containers have all stopped a terminal phase
  // (Succeeded when every main container exited 0, else Failed — also when they never started), whatever its
  // restartPolicy: nothing will run in it again.
  if (
    pod.metadata.deletionTimestamp &&
    rt.sandboxGone &&
    !anyRunning &&
    phase !== 'Succeeded' &&
    phase !== 'Failed'
  ) {
    const allSucceeded =
      rt.main.length > 0 && rt.main.every((c) => c.state.kind === 'terminated' && c.state.exitCode === 0);
    return allSucceeded ? 'Succeeded' : 'Failed';
  }
  return phase;
}

function condition(
  pod: KPod,
  now: string,
  type: string,
  ok: boolean,
  reason?: string,
  message?: string,
): PodCondition {
  const status = ok ? 'True' : 'False';
  const prev = pod.status?.conditions?.find((c) => c.type === type);
  const c: PodCondition = {
    type,
    status,
    lastTransitionTime:
      prev && prev.status === status && prev.lastTransitionTime ? prev.lastTransitionTime : now,
  };
  if (reason) c.reason = reason;
  if (message) c.message = message;
  return c;
}

/**
 * The whole pod status from the runner's state. PURE: same inputs, same output; `now` is only used
 * as the transition time of conditions whose status changes.
 */
export function computePodStatus(pod: KPod, rt: RuntimePod, now: string): ComputedPodStatus {
  const phase = computePhase(pod, rt);
  const specs = pod.spec.initContainers ?? [];
  const incomplete = incompleteInitContainers(pod, rt);
  const unready = [
    ...rt.init.filter((c, i) => isSidecar(specs[i]) && c.state.kind !== 'running').map((c) => c.name),
    ...rt.main.filter((c) => c.state.kind !== 'running').map((c) => c.name),
  ];
  const completed = phase === 'Succeeded';
  const readyReason = completed ? 'PodCompleted' : unready.length ? 'ContainersNotReady' : undefined;
  const readyMessage =
    !completed && unready.length ? `containers with unready status: [${unready.join(' ')}]` : undefined;
  const conditions: PodCondition[] = [
    condition(pod, now, 'PodReadyToStartContainers', rt.sandboxReady && !rt.sandboxGone),
    condition(
      pod,
      now,
      'Initialized',
      incomplete.length === 0,
      incomplete.length ? 'ContainersNotInitialized' : completed ? 'PodCompleted' : undefined,
      incomplete.length ? `containers with incomplete status: [${incomplete.join(' ')}]` : undefined,
    ),
    condition(pod, now, 'Ready', !completed && unready.length === 0, readyReason, readyMessage),
    condition(pod, now, 'ContainersReady', !completed && unready.length === 0, readyReason, readyMessage),
    condition(pod, now, 'PodScheduled', true),
  ];
  const status: ComputedPodStatus = {
    phase,
    conditions,
    hostIP: rt.hostIP,
    hostIPs: [{ ip: rt.hostIP }],
    podIP: rt.podIP,
    podIPs: [{ ip: rt.podIP }],
    containerStatuses: rt.main.map(containerStatusOf),
  };
  if (rt.init.length) status.initContainerStatuses = rt.init.map(containerStatusOf);
  if (rt.startTime) status.startTime = rt.startTime;
  return status;
}

/** The terminated state for a process exit (exit code, or 128+signal as container runtimes report). */
export function terminatedState(
  exit: { code: number | null; signal: number | null },
  startedAt: string,
  finishedAt: string,
  message?: string,
): Extract<RuntimeState, { kind: 'terminated' }> {
  const exitCode = exit.code ?? 128 + (exit.signal ?? 0);
  const t: Extract<RuntimeState, { kind: 'terminated' }> = {
    kind: 'terminated',
    exitCode,
    reason: exitCode === 0 ? 'Completed' : 'Error',
    startedAt,
    finishedAt,
  };
  if (message) t.message = message;
  return t;
}
