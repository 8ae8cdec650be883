import { describe, expect, it } from 'vitest';
import type { ContainerStatus, Pod } from '../../api/types.ts';
import { podFinished, podStoppedAtFailed, waitExitCode } from '../../campaign/history.ts';

/** A pod at Barrier `start` whose konductor-wait is in the given state (restartPolicy OnFailure). */
function waitingPod(wait: Partial<ContainerStatus>, annotations = { 'konductor.io/barrier': 'start' }): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'barrier-00', uid: 'u1', annotations },
    spec: { restartPolicy: 'OnFailure', containers: [{ name: 'main', image: 'busybox' }] },
    status: {
      phase: 'Pending',
      initContainerStatuses: [
        { name: 'konductor-wait', ready: false, restartCount: 3, image: 'x', imageID: '', ...wait },
      ],
      containerStatuses: [
        {
          name: 'main',
          ready: false,
          restartCount: 0,
          image: 'x',
          imageID: '',
          state: { waiting: { reason: 'PodInitializing' } },
        },
      ],
    },
  } as Pod;
}

const crashLooping = waitingPod({
  state: { waiting: { reason: 'CrashLoopBackOff' } },
  lastState: { terminated: { exitCode: 1, reason: 'Error' } },
});

describe('campaign history: a pod stopped for good at a Failed Barrier or Gate', () => {
  it("reads konductor-wait's exit from its state, or from its last state while Kubernetes restarts it", () => {
    expect(waitExitCode(crashLooping)).toBe(1);
    expect(waitExitCode(waitingPod({ state: { terminated: { exitCode: 2 } } }))).toBe(2);
    expect(waitExitCode(waitingPod({ state: { running: {} } }))).toBeUndefined();
  });

  it('an OnFailure pod whose wait exited 1 at a Failed Barrier is done (it stays Pending, retrying)', () => {
    expect(podFinished(crashLooping)).toBe(false);
    expect(podStoppedAtFailed(crashLooping, (kind, name) => kind === 'Barrier' && name === 'start')).toBe(
      true,
    );
  });

  it('is not done while its Barrier is not Failed, nor at a Failed primitive it does not wait at', () => {
    expect(podStoppedAtFailed(crashLooping, () => false)).toBe(false);
    expect(podStoppedAtFailed(crashLooping, (kind) => kind === 'Gate')).toBe(false);
    const atGate = waitingPod({ state: { terminated: { exitCode: 1 } } }, {
      'konductor.io/gate': 'ready',
    } as unknown as { 'konductor.io/barrier': string });
    expect(podStoppedAtFailed(atGate, (kind, name) => kind === 'Gate' && name === 'ready')).toBe(true);
  });

  it('a wait that exited otherwise (2: wait-timeout) or still runs is not stopped at a Failed primitive', () => {
    const failed = () => true;
    expect(podStoppedAtFailed(waitingPod({ state: { terminated: { exitCode: 2 } } }), failed)).toBe(false);
    expect(podStoppedAtFailed(waitingPod({ state: { running: {} } }), failed)).toBe(false);
    expect(podStoppedAtFailed(undefined, failed)).toBe(false);
  });
});
