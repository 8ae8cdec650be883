import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAnnotations } from '../../api/annotations.ts';
import type { Pod } from '../../api/types.ts';
import { setCondition } from '../../controller/arbitration/conditions.ts';
import {
  compareWaiters,
  isPresent,
  podRequestFor,
  startDeadline,
  startTimedOut,
  toPodView,
} from '../../controller/arbitration/podView.ts';
import { T0, view } from '../helpers/arbitrationFixtures.ts';

const iso = (ms: number) => new Date(ms).toISOString();
const extras = { eligible: true };

function pod(
  overrides: Partial<Pod['spec']> = {},
  status: Pod['status'] = {},
  meta: Partial<Pod['metadata']> = {},
): Pod {
  return {
    metadata: { name: 'p', namespace: 'ns', uid: 'uid-1', creationTimestamp: iso(T0), ...meta },
    spec: { containers: [{ name: 'main' }, { name: 'side' }], ...overrides },
    status,
  };
}

describe('arrival ties', () => {
  it('pods scheduled in the same second queue by their admission time, then UID', () => {
    const scheduled = {
      conditions: [{ type: 'PodScheduled', status: 'True' as const, lastTransitionTime: iso(T0) }],
    };
    const early = toPodView(
      pod({ nodeName: 'n' }, scheduled, {
        uid: 'z',
        annotations: { 'konductor.io/admitted-at': iso(T0 - 900) },
      }),
      {},
      extras,
    );
    const late = toPodView(
      pod({ nodeName: 'n' }, scheduled, {
        uid: 'a',
        annotations: { 'konductor.io/admitted-at': iso(T0 - 100) },
      }),
      {},
      extras,
    );
    expect([late, early].sort(compareWaiters).map((v) => v.uid)).toEqual(['z', 'a']);
  });
});

describe('toPodView', () => {
  it('reads arrival, binding and the request', () => {
    const v = toPodView(
      pod(
        { nodeName: 'node-1' },
        { conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: iso(T0 + 5) }] },
      ),
      { permits: 3, priority: 7 },
      extras,
    );
    expect(v).toEqual({
      name: 'p',
      namespace: 'ns',
      uid: 'uid-1',
      priority: 7,
      permits: 3,
      scheduledAt: T0 + 5,
      admittedAt: T0,
      bound: true,
      gated: false,
      finished: false,
      terminating: false,
      passedWait: false,
      eligible: true,
    });
    const unscheduled = toPodView(pod(), {}, { eligible: false });
    expect(unscheduled).toMatchObject({
      scheduledAt: T0,
      bound: false,
      permits: 1,
      eligible: false,
    });
    expect(unscheduled.priority).toBeUndefined();
  });

  it('scheduling-gate mode: gated while konductor.io/wait is there; arrival is the admission, even once scheduled', () => {
    const meta = {
      annotations: { 'konductor.io/wait-mode': 'scheduling-gate', 'konductor.io/admitted-at': iso(T0 + 3) },
    };
    const gated = toPodView(
      pod({ schedulingGates: [{ name: 'other.io/x' }, { name: 'konductor.io/wait' }] }, {}, meta),
      { startTimeoutMs: 60_000 },
      { eligible: true, clearedAt: T0 + 10 },
    );
    // Arrival: the admission, cut to the second like the API's scheduling times (admittedAt breaks the tie).
    expect(gated).toMatchObject({
      gated: true,
      bound: false,
      scheduledAt: T0,
      admittedAt: T0 + 3,
      startTimeoutMs: 60_000,
    });
    expect(isPresent(gated)).toBe(true);
    // Its gate removed by hand and scheduled later: it keeps its place (arrival = admission).
    const scheduled = toPodView(
      pod(
        { nodeName: 'n' },
        { conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: iso(T0 + 50) }] },
        meta,
      ),
      {},
      extras,
    );
    expect(scheduled).toMatchObject({ gated: false, bound: true, scheduledAt: T0 });
    // A bound pod admitted later but scheduled within the same second (the API shows T0) queues behind it.
    const later = toPodView(
      pod(
        { nodeName: 'n' },
        { conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: iso(T0) }] },
        { uid: 'uid-0', annotations: { 'konductor.io/admitted-at': iso(T0 + 600) } },
      ),
      {},
      extras,
    );
    expect([later, gated].sort(compareWaiters).map((v) => v.admittedAt)).toEqual([T0 + 3, T0 + 600]);
    // Only konductor's own gate counts.
    const foreign = toPodView(pod({ schedulingGates: [{ name: 'other.io/x' }] }), {}, extras);
    expect(isPresent(foreign)).toBe(false);
  });

  it('startTimedOut: only an ungated, unbound, unfinished pod, its start timeout after it passed everything', () => {
    const base = { bound: false, gated: false, finished: false, startTimeoutMs: 1000, clearedAt: T0 };
    expect(startTimedOut(base, T0 + 999)).toBe(false);
    expect(startTimedOut(base, T0 + 1000)).toBe(true);
    expect(startDeadline(base)).toBe(T0 + 1000);
    for (const change of [
      { bound: true },
      { gated: true },
      { finished: true },
      { startTimeoutMs: undefined },
      { clearedAt: undefined },
    ]) {
      expect(startTimedOut({ ...base, ...change }, T0 + 10_000), JSON.stringify(change)).toBe(false);
    }
  });

  it('finished: phase, or main containers terminated for good', () => {
    expect(toPodView(pod({}, { phase: 'Succeeded' }), {}, extras).finished).toBe(true);
    expect(toPodView(pod({}, { phase: 'Failed' }), {}, extras).finished).toBe(true);
    const terminated = (exitCode: number) => ({
      state: { terminated: { exitCode } },
      ready: false,
      restartCount: 0,
    });
    const both = (code: number) => ({
      containerStatuses: [
        { name: 'main', ...terminated(code) },
        { name: 'side', ...terminated(0) },
      ],
    });
    const oneLeft = {
      containerStatuses: [
        { name: 'main', ...terminated(0) },
        { name: 'side', ready: true, restartCount: 0, state: { running: {} } },
      ],
    };
    expect(toPodView(pod({ restartPolicy: 'Never' }, both(1)), {}, extras).finished).toBe(true);
    expect(toPodView(pod({ restartPolicy: 'Never' }, oneLeft), {}, extras).finished).toBe(false);
    expect(toPodView(pod({ restartPolicy: 'OnFailure' }, both(0)), {}, extras).finished).toBe(true);
    expect(toPodView(pod({ restartPolicy: 'OnFailure' }, both(1)), {}, extras).finished).toBe(false);
    expect(toPodView(pod({}, both(0)), {}, extras).finished).toBe(false); // Always: containers restart
  });

  it('a deletionTimestamp is not "finished": a terminating pod is finished once ALL its main containers terminated', () => {
    const deleting = { deletionTimestamp: iso(T0) };
    const running = { name: 'main', ready: true, restartCount: 0, state: { running: {} } };
    const exited = (name: string) => ({
      name,
      ready: false,
      restartCount: 0,
      state: { terminated: { exitCode: 143 } },
    });
    // Deleted, main containers still running their grace period: holds on.
    const busy = toPodView(
      pod({}, { phase: 'Running', containerStatuses: [running, exited('side')] }, deleting),
      {},
      extras,
    );
    expect(busy).toMatchObject({ finished: false, terminating: true });
    // Deleted in its init containers (main containers never started): not finished by status alone.
    const initOnly = toPodView(pod({}, { phase: 'Pending' }, deleting), {}, extras);
    expect(initOnly).toMatchObject({ finished: false, terminating: true });
    // Every main container terminated: finished, whatever the restartPolicy (nothing restarts now).
    const done = toPodView(
      pod({}, { phase: 'Running', containerStatuses: [exited('main'), exited('side')] }, deleting),
      {},
      extras,
    );
    expect(done).toMatchObject({ finished: true, terminating: true });
  });

  it('passedWait: the wait container exited 0, or a main container started', () => {
    const wait = (exitCode: number) => ({
      initContainerStatuses: [
        { name: 'konductor-wait', ready: false, restartCount: 0, state: { terminated: { exitCode } } },
      ],
    });
    expect(toPodView(pod({}, wait(0)), {}, extras).passedWait).toBe(true);
    expect(toPodView(pod({}, wait(1)), {}, extras).passedWait).toBe(false);
    const started = {
      containerStatuses: [{ name: 'main', ready: true, restartCount: 0, state: { running: {} } }],
    };
    expect(toPodView(pod({}, started), {}, extras).passedWait).toBe(true);
    const waiting = {
      containerStatuses: [{ name: 'main', ready: false, restartCount: 0, state: { waiting: {} } }],
    };
    expect(toPodView(pod({}, waiting), {}, extras).passedWait).toBe(false);
  });

  it('podRequestFor leaves the priority unset unless annotated', () => {
    const annotated = pod(
      {},
      {},
      { annotations: { 'konductor.io/semaphore': 's', 'konductor.io/permits': '2' } },
    );
    const parsed = parseAnnotations(annotated.metadata.annotations);
    if (!parsed.ok || !parsed.request) throw new Error('expected a request');
    expect(podRequestFor(annotated, parsed.request, 'Semaphore')).toEqual({
      permits: 2,
      priority: undefined,
    });
    expect(podRequestFor(annotated, parsed.request, 'Lease')).toEqual({ permits: 1, priority: undefined });
    annotated.metadata.annotations = { ...annotated.metadata.annotations, 'konductor.io/priority': '0' };
    const again = parseAnnotations(annotated.metadata.annotations);
    if (!again.ok || !again.request) throw new Error('expected a request');
    expect(podRequestFor(annotated, again.request, 'Semaphore').priority).toBe(0);
  });
});

describe('compareWaiters', () => {
  it('orders by priority desc, arrival asc, uid asc', () => {
    const pods = [
      view('b', { scheduledAt: T0 }),
      view('a', { scheduledAt: T0 }),
      view('late-high', { scheduledAt: T0 + 9, priority: 1 }),
      view('early', { scheduledAt: T0 - 1 }),
      view('neg', { scheduledAt: T0 - 5, priority: -1 }),
    ];
    expect([...pods].sort(compareWaiters).map((p) => p.uid)).toEqual(['late-high', 'early', 'a', 'b', 'neg']);
  });

  it('is a total order (antisymmetric, transitive on samples)', () => {
    const arb = fc.record({
      priority: fc.option(fc.integer({ min: -2, max: 2 }), { nil: undefined }),
      scheduledAt: fc.integer({ min: 0, max: 3 }),
      uid: fc.constantFrom('a', 'b', 'c'),
    });
    fc.assert(
      fc.property(arb, arb, arb, (x, y, z) => {
        expect(Math.sign(compareWaiters(x, y))).toBe(-Math.sign(compareWaiters(y, x)) || 0);
        if (compareWaiters(x, y) <= 0 && compareWaiters(y, z) <= 0)
          expect(compareWaiters(x, z)).toBeLessThanOrEqual(0);
      }),
    );
  });
});

describe('setCondition', () => {
  it('keeps lastTransitionTime while the status holds, moves it on change', () => {
    const one = setCondition(
      undefined,
      { type: 'Ready', status: 'True', reason: 'A', message: 'x' },
      iso(T0),
    );
    const two = setCondition(one, { type: 'Ready', status: 'True', reason: 'B', message: 'y' }, iso(T0 + 1));
    expect(two).toEqual([
      { type: 'Ready', status: 'True', reason: 'B', message: 'y', lastTransitionTime: iso(T0) },
    ]);
    const three = setCondition(
      two,
      { type: 'Ready', status: 'False', reason: 'C', message: 'z' },
      iso(T0 + 2),
    );
    expect(three[0]?.lastTransitionTime).toBe(iso(T0 + 2));
    const four = setCondition(
      three,
      { type: 'Other', status: 'True', reason: 'D', message: '' },
      iso(T0 + 3),
    );
    expect(four.map((c) => c.type)).toEqual(['Ready', 'Other']);
    expect(three).toHaveLength(1); // inputs are not mutated
  });
});
