/**
 * The process kubelet's PURE pod status against the STATUS column kubectl derives from it. `printPodStatus`
 * below is a line-by-line port of printPod's reason logic (k8s.io/kubernetes v1.37.2
 * pkg/printers/internalversion/printers.go), the oracle of these tests.
 */
import { describe, expect, it } from 'vitest';
import { computePhase, computePodStatus, terminatedState } from '../../devcluster/kubelet/podStatus.ts';
import type { KPod, RuntimeContainer, RuntimePod, RuntimeState } from '../../devcluster/kubelet/podTypes.ts';

function printPodStatus(pod: KPod): string {
  const st = pod.status ?? {};
  let reason: string = st.reason || st.phase || '';
  const initSpecs = new Map((pod.spec.initContainers ?? []).map((c) => [c.name, c]));
  const restartable = (name: string) => initSpecs.get(name)?.restartPolicy === 'Always';
  let initializing = false;
  const inits = st.initContainerStatuses ?? [];
  for (let i = 0; i < inits.length; i++) {
    const c = inits[i]!;
    const t = c.state?.terminated;
    const w = c.state?.waiting;
    if (t && t.exitCode === 0) continue;
    if (restartable(c.name) && c.started) continue;
    if (t) {
      reason = t.reason
        ? `Init:${t.reason}`
        : t.signal
          ? `Init:Signal:${t.signal}`
          : `Init:ExitCode:${t.exitCode}`;
      initializing = true;
    } else if (w?.reason && w.reason !== 'PodInitializing') {
      reason = `Init:${w.reason}`;
      initializing = true;
    } else {
      reason = `Init:${i}/${pod.spec.initContainers?.length ?? 0}`;
      initializing = true;
    }
    break;
  }
  const initializedTrue = st.conditions?.some((c) => c.type === 'Initialized' && c.status === 'True');
  if (!initializing || initializedTrue) {
    let hasRunning = false;
    let errorReason = '';
    const mains = st.containerStatuses ?? [];
    for (let i = mains.length - 1; i >= 0; i--) {
      const c = mains[i]!;
      const t = c.state?.terminated;
      if (c.state?.waiting?.reason) reason = c.state.waiting.reason;
      else if (t) {
        reason = t.reason ? t.reason : t.signal ? `Signal:${t.signal}` : `ExitCode:${t.exitCode}`;
        if (t.exitCode !== 0) errorReason = reason;
      } else if (c.ready && c.state?.running) hasRunning = true;
    }
    if (reason === 'Completed') {
      const ready = st.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      if (hasRunning && ready) reason = 'Running';
      else if (errorReason) reason = errorReason;
      else if (hasRunning) reason = 'NotReady';
    }
  }
  if (pod.metadata.deletionTimestamp && st.phase !== 'Succeeded' && st.phase !== 'Failed')
    reason = 'Terminating';
  return reason;
}

const T0 = '2026-01-01T00:00:00Z';
const T1 = '2026-01-01T00:00:01Z';
const waiting = (reason: string, message?: string): RuntimeState =>
  message ? { kind: 'waiting', reason, message } : { kind: 'waiting', reason };
const running: RuntimeState = { kind: 'running', startedAt: T0 };
const exited = (code: number): RuntimeState => terminatedState({ code, signal: null }, T0, T1);

function pod(opts: {
  init?: string[];
  sidecars?: string[];
  mains?: string[];
  restartPolicy?: 'Always' | 'Never' | 'OnFailure';
}): KPod {
  return {
    metadata: { name: 'p', namespace: 'ns', uid: 'u1' },
    spec: {
      restartPolicy: opts.restartPolicy ?? 'Never',
      initContainers: [
        ...(opts.init ?? []).map((name) => ({ name, image: 'busybox' })),
        ...(opts.sidecars ?? []).map((name) => ({
          name,
          image: 'busybox',
          restartPolicy: 'Always' as const,
        })),
      ],
      containers: (opts.mains ?? ['main']).map((name) => ({ name, image: 'busybox' })),
    },
  };
}

function rt(
  init: RuntimeState[],
  main: RuntimeState[],
  p: KPod,
  extra: Partial<RuntimeContainer> = {},
): RuntimePod {
  const names = (p.spec.initContainers ?? []).map((c) => c.name);
  const mains = p.spec.containers.map((c) => c.name);
  const mk = (name: string, state: RuntimeState): RuntimeContainer => ({
    name,
    state,
    restartCount: 0,
    image: 'busybox',
    ...(state.kind === 'waiting' ? {} : { containerID: 'process://42' }),
    // `extra` (restart history) goes to the containers that are backing off.
    ...(state.kind === 'waiting' && state.reason === 'CrashLoopBackOff' ? extra : {}),
  });
  return {
    init: init.map((s, i) => mk(names[i]!, s)),
    main: main.map((s, i) => mk(mains[i]!, s)),
    startTime: T0,
    sandboxReady: true,
    sandboxGone: false,
    hostIP: '127.0.0.1',
    podIP: '127.0.0.1',
  };
}

/** Applies the status as the API server would store it, then asks the kubectl oracle. */
function column(p: KPod, r: RuntimePod): string {
  const status = computePodStatus(p, r, T1);
  return printPodStatus({ ...p, status });
}

describe('process kubelet pod status (kubectl STATUS column)', () => {
  // konductor's shape: one wait init container, one hold sidecar, one main container.
  const kp = pod({ init: ['konductor-wait'], sidecars: ['konductor-hold'] });
  it('shows Init:0/2 while the first init container runs or waits', () => {
    expect(
      column(
        kp,
        rt([waiting('PodInitializing'), waiting('PodInitializing')], [waiting('PodInitializing')], kp),
      ),
    ).toBe('Init:0/2');
    expect(column(kp, rt([running, waiting('PodInitializing')], [waiting('PodInitializing')], kp))).toBe(
      'Init:0/2',
    );
  });

  it('shows Init:1/2 after the first init container and PodInitializing once initialized', () => {
    expect(column(kp, rt([exited(0), waiting('PodInitializing')], [waiting('PodInitializing')], kp))).toBe(
      'Init:1/2',
    );
    expect(column(kp, rt([exited(0), running], [waiting('PodInitializing')], kp))).toBe('PodInitializing');
  });

  it('shows Running with the sidecar and main running, Completed after both stop', () => {
    const s = computePodStatus(kp, rt([exited(0), running], [running], kp), T1);
    expect(s.phase).toBe('Running');
    expect(printPodStatus({ ...kp, status: s })).toBe('Running');
    // Main done, sidecar still running: the phase waits for the sidecar, kubectl still says Running.
    expect(computePhase(kp, rt([exited(0), running], [exited(0)], kp))).toBe('Running');
    const done = computePodStatus(kp, rt([exited(0), exited(143)], [exited(0)], kp), T1);
    expect(done.phase).toBe('Succeeded');
    expect(printPodStatus({ ...kp, status: done })).toBe('Completed');
    expect(done.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('PodCompleted');
  });

  it('shows Error and phase Failed when the main container fails (restartPolicy Never)', () => {
    const s = computePodStatus(kp, rt([exited(0), exited(0)], [exited(1)], kp), T1);
    expect(s.phase).toBe('Failed');
    expect(printPodStatus({ ...kp, status: s })).toBe('Error');
  });

  it('shows Init:Error and fails the pod when an init container fails with restartPolicy Never', () => {
    const s = computePodStatus(
      kp,
      rt([exited(3), waiting('PodInitializing')], [waiting('PodInitializing')], kp),
      T1,
    );
    expect(s.phase).toBe('Failed');
    expect(printPodStatus({ ...kp, status: s })).toBe('Init:Error');
  });

  it('keeps the pod Pending with Init:CrashLoopBackOff while a failed init container backs off', () => {
    const p = pod({ init: ['a'], restartPolicy: 'OnFailure' });
    const r = rt([waiting('CrashLoopBackOff', 'back-off')], [waiting('PodInitializing')], p, {
      lastTerminated: exited(1) as Extract<RuntimeState, { kind: 'terminated' }>,
      restartCount: 1,
    });
    const s = computePodStatus(p, r, T1);
    expect(s.phase).toBe('Pending');
    expect(printPodStatus({ ...p, status: s })).toBe('Init:CrashLoopBackOff');
  });

  it('shows ErrImageNeverPull for an unknown image (pod Pending), Init:ErrImageNeverPull in an init container', () => {
    const p = pod({});
    const s = computePodStatus(p, rt([], [waiting('ErrImageNeverPull', 'no')], p), T1);
    expect(s.phase).toBe('Pending');
    expect(printPodStatus({ ...p, status: s })).toBe('ErrImageNeverPull');
    const pi = pod({ init: ['a'] });
    expect(column(pi, rt([waiting('ErrImageNeverPull')], [waiting('PodInitializing')], pi))).toBe(
      'Init:ErrImageNeverPull',
    );
  });

  it('shows ContainerCreating before a main container starts in a pod without init containers', () => {
    const p = pod({});
    expect(column(p, rt([], [waiting('ContainerCreating')], p))).toBe('ContainerCreating');
  });

  it('restarts: phase Running for Always/OnFailure while a main container backs off', () => {
    const p = pod({ restartPolicy: 'Always' });
    const r = rt([], [waiting('CrashLoopBackOff')], p, {
      lastTerminated: exited(1) as Extract<RuntimeState, { kind: 'terminated' }>,
      restartCount: 2,
    });
    expect(computePhase(p, r)).toBe('Running');
    expect(column(p, r)).toBe('CrashLoopBackOff');
    expect(computePodStatus(p, r, T1).containerStatuses?.[0]?.lastState?.terminated?.exitCode).toBe(1);
  });

  it('gives a deleted pod whose containers all stopped a terminal phase, as the kubelet does since 1.27', () => {
    const p = pod({ init: ['konductor-wait'], sidecars: ['konductor-hold'], restartPolicy: 'Always' });
    const deleted = { ...p, metadata: { ...p.metadata, deletionTimestamp: T1 } };
    // Deleted in its wait: the main container never started. While anything runs, not terminal.
    const stopping = rt([running, running], [waiting('PodInitializing')], p);
    expect(computePhase(deleted, stopping)).toBe('Pending');
    const stopped = { ...rt([exited(143), exited(143)], [waiting('PodInitializing')], p), sandboxGone: true };
    expect(computePhase(deleted, stopped)).toBe('Failed');
    // Main containers exited 0 on SIGTERM: Succeeded (restartPolicy Always restarts nothing once deleted).
    const clean = { ...rt([exited(0), exited(143)], [exited(0)], p), sandboxGone: true };
    expect(computePhase(deleted, clean)).toBe('Succeeded');
    // Not deleted: the phase is what the containers say.
    expect(computePhase(p, stopped)).toBe('Pending');
  });

  it('never leaves a terminal phase and keeps condition transition times', () => {
    const p = pod({});
    const first = computePodStatus(p, rt([], [exited(0)], p), T0);
    const again = computePodStatus({ ...p, status: first }, rt([], [running], p), T1);
    expect(again.phase).toBe('Succeeded');
    const sched = again.conditions?.find((c) => c.type === 'PodScheduled');
    expect(sched?.lastTransitionTime).toBe(T0);
  });

  it('reports signals as 128+n with reason Error, exit 0 as Completed', () => {
    expect(terminatedState({ code: null, signal: 9 }, T0, T1)).toMatchObject({
      exitCode: 137,
      reason: 'Error',
    });
    expect(terminatedState({ code: 0, signal: null }, T0, T1)).toMatchObject({
      exitCode: 0,
      reason: 'Completed',
    });
  });

  it('fills the fields kubectl and controllers read', () => {
    const p = pod({});
    const s = computePodStatus(p, rt([], [running], p), T1);
    expect(s).toMatchObject({ hostIP: '127.0.0.1', podIP: '127.0.0.1', startTime: T0 });
    expect(s.containerStatuses?.[0]).toMatchObject({
      ready: true,
      started: true,
      containerID: 'process://42',
    });
    expect(s.conditions?.map((c) => `${c.type}=${c.status}`).sort()).toEqual([
      'ContainersReady=True',
      'Initialized=True',
      'PodReadyToStartContainers=True',
      'PodScheduled=True',
      'Ready=True',
    ]);
  });
});
