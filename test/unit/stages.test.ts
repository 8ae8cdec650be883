/**
 * A pod's standing in one stage, as the agent API streams it: position in the order arbitration grants in,
 * the figures of each kind, the verdict of a failed Barrier or Gate. (The cases of the former queuePosition
 * tests, on the code that serves the wait stream.)
 */
import { describe, expect, it } from 'vitest';
import type { Primitive } from '../../api/types.ts';
import { arbitrateLease } from '../../controller/arbitration/lease.ts';
import type { Stage } from '../../controller/arbitration/podIndex.ts';
import type { PodView } from '../../controller/arbitration/podView.ts';
import { arbitrateSemaphore } from '../../controller/arbitration/semaphore.ts';
import { queueOrder, stageState } from '../../controller/arbitration/stages.ts';
import { barrier, gate, lease, semaphore, T0, view } from '../helpers/arbitrationFixtures.ts';

const stage = (kind: Stage['kind'], name: string, permits = 1): Stage => ({
  kind,
  name,
  permits,
  key: `${kind}/default/${name}`,
});
const pod = (uid: string) => ({ name: `pod-${uid}`, namespace: 'default', uid });
const standing = (st: Stage, p: Primitive, uid: string, views: readonly PodView[]) =>
  stageState(st, p, pod(uid), () =>
    st.kind === 'Semaphore' || st.kind === 'Lease'
      ? queueOrder(st.kind, p, views)
      : { index: new Map(), length: 0 },
  );

describe('stageState', () => {
  it('semaphore: position in grant order, oversize requests last, holders passed, ineligible pods unplaced', () => {
    const pods = [
      view('h1', { scheduledAt: T0 }),
      view('h2', { scheduledAt: T0 + 1 }),
      view('w1', { scheduledAt: T0 + 2, permits: 2 }),
      view('huge', { scheduledAt: T0 + 3, permits: 9 }),
      view('w2', { scheduledAt: T0 + 4 }),
      view('gated', { eligible: false }),
    ];
    const r = arbitrateSemaphore({ semaphore: semaphore(2), pods, now: T0 });
    const sem = semaphore(2, { status: r.status });
    expect(standing(stage('Semaphore', 'slots'), sem, 'h1', pods).state).toBe('passed');
    expect(standing(stage('Semaphore', 'slots', 2), sem, 'w1', pods)).toEqual({
      state: 'waiting',
      standing: {
        primitive: { kind: 'Semaphore', name: 'slots', namespace: 'default' },
        position: 1,
        queueLength: 3,
        message: '',
        inUse: 2,
        capacity: 2,
        requested: 2,
      },
    });
    const at = (uid: string) => {
      const s = standing(stage('Semaphore', 'slots'), sem, uid, pods);
      return s.state === 'waiting' ? s.standing.position : undefined;
    };
    expect([at('w2'), at('huge'), at('gated')]).toEqual([2, 3, 0]);
    // The same order status.queue shows.
    expect(r.status.queue?.map((e) => e.uid)).toEqual(['w1', 'w2', 'huge']);
  });

  it('lease: position and the holder', () => {
    const pods = [view('a'), view('b', { scheduledAt: T0 + 1 }), view('c', { scheduledAt: T0 + 2 })];
    const r = arbitrateLease({ lease: lease('1m'), pods, now: T0 });
    const l = lease('1m', { status: r.status });
    expect(standing(stage('Lease', 'db'), l, 'a', pods)).toMatchObject({
      state: 'passed',
      grant: { kind: 'Lease', name: 'db', token: r.status.holder?.token, pod: 'pod-a', uid: 'a' },
    });
    expect(standing(stage('Lease', 'db'), l, 'c', pods)).toMatchObject({
      state: 'waiting',
      standing: { position: 2, queueLength: 2, holder: 'pod-a' },
    });
  });

  it('barrier: arrivals and the number needed; a failed barrier fails with its verdict', () => {
    const waiting = barrier(5, { quorum: 3, status: { arrived: 2, arrivals: [], phase: 'Waiting' } });
    expect(standing(stage('Barrier', 'start'), waiting, 'a', [])).toMatchObject({
      state: 'waiting',
      standing: { arrived: 2, expected: 3, position: 0 },
    });
    const failed = barrier(3, {
      status: {
        arrived: 1,
        arrivals: [],
        phase: 'Failed',
        conditions: [
          {
            type: 'Ready',
            status: 'False',
            reason: 'TimedOut',
            message: 'barrier default/start timed out 3s after the first arrival: arrived 1 of 3 expected',
            lastTransitionTime: new Date(T0).toISOString(),
          },
        ],
      },
    });
    expect(standing(stage('Barrier', 'start'), failed, 'a', [])).toEqual({
      state: 'failed',
      reason: 'BarrierFailed',
      message: 'barrier default/start timed out 3s after the first arrival: arrived 1 of 3 expected',
    });
  });

  it('gate: the unmet conditions; a failed gate names them', () => {
    const unmet = {
      type: 'Job' as const,
      name: 'prep',
      namespace: 'default',
      met: false,
      message: 'job default/prep not found',
    };
    const g = gate([], { status: { phase: 'Waiting', conditionStatuses: [unmet] } });
    expect(standing(stage('Gate', 'ready'), g, 'a', [])).toMatchObject({
      state: 'waiting',
      standing: { unmet: ['job default/prep not found'] },
    });
    const failed = gate([], { timeout: '1m', status: { phase: 'Failed', conditionStatuses: [unmet] } });
    expect(standing(stage('Gate', 'ready'), failed, 'a', [])).toEqual({
      state: 'failed',
      reason: 'GateFailed',
      message: 'gate default/ready failed: timed out (1m) with unmet conditions: job default/prep not found',
    });
  });

  it('a primitive that does not exist yet: waiting, marked missing', () => {
    expect(
      stageState(stage('Gate', 'later'), undefined, pod('a'), () => ({ index: new Map(), length: 0 })),
    ).toEqual({
      state: 'waiting',
      standing: {
        primitive: { kind: 'Gate', name: 'later', namespace: 'default' },
        position: 0,
        queueLength: 0,
        message: '',
        missing: true,
      },
    });
  });
});
