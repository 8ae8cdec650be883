import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Barrier } from '../../api/types.ts';
import { arbitrateBarrier, barrierVerdict } from '../../controller/arbitration/barrier.ts';
import type { PodView } from '../../controller/arbitration/podView.ts';
import { barrier, T0, view } from '../helpers/arbitrationFixtures.ts';

const iso = (ms: number) => new Date(ms).toISOString();

describe('arbitrateBarrier', () => {
  it('counts bound, live, eligible pods and opens at expected (latched)', () => {
    const pods = [
      view('a'),
      view('b'),
      view('unbound', { bound: false }),
      view('dead', { finished: true }),
      view('gated', { eligible: false }),
    ];
    const r = arbitrateBarrier({ barrier: barrier(3), pods, now: T0 });
    expect(r.status).toMatchObject({ phase: 'Waiting', arrived: 2, firstArrivalAt: iso(T0) });
    expect(r.status.arrivals.map((a) => a.uid)).toEqual(['a', 'b']);
    expect(r.events.map((e) => e.reason)).toEqual(['Arrived', 'Arrived']);
    expect(barrierVerdict(r.status, 'a')).toBe('wait');

    const open = arbitrateBarrier({
      barrier: barrier(3, { status: r.status }),
      pods: [...pods, view('c')],
      now: T0 + 10,
    });
    expect(open.status).toMatchObject({ phase: 'Open', arrived: 3, openedAt: iso(T0 + 10) });
    expect(open.events.filter((e) => e.reason === 'Opened')).toHaveLength(4); // barrier + 3 pods
    expect(barrierVerdict(open.status, 'late-pod')).toBe('pass');

    // Latched: pods leaving or time passing change nothing.
    const later = arbitrateBarrier({ barrier: barrier(3, { status: open.status }), pods: [], now: T0 + 1e9 });
    expect(later.changed).toBe(false);
    expect(later.status.phase).toBe('Open');
    expect(later.events).toEqual([]);
  });

  it('scheduling-gate mode: counts gated, unscheduled pods, so a gang opens before it takes any node', () => {
    const gang = ['a', 'b', 'c', 'd'].map((u) => view(u, { bound: false, gated: true }));
    const three = arbitrateBarrier({ barrier: barrier(4), pods: gang.slice(0, 3), now: T0 });
    expect(three.status).toMatchObject({ phase: 'Waiting', arrived: 3 });
    // An ungated pod the scheduler has not placed yet is not there (it waits for nothing).
    const stray = view('e', { bound: false, gated: false });
    const open = arbitrateBarrier({
      barrier: barrier(4, { status: three.status }),
      pods: [...gang, stray],
      now: T0 + 1,
    });
    expect(open.status).toMatchObject({ phase: 'Open', arrived: 4 });
    expect(open.status.arrivals.map((a) => a.uid)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('opens at the quorum', () => {
    const r = arbitrateBarrier({ barrier: barrier(5, { quorum: 2 }), pods: [view('a'), view('b')], now: T0 });
    expect(r.status.phase).toBe('Open');
    expect(r.status.conditions?.[0]?.message).toBe(
      'barrier default/start opened: arrived 2 of 5 expected (quorum 2)',
    );
  });

  it('forgets pods that die before opening', () => {
    const first = arbitrateBarrier({ barrier: barrier(2), pods: [view('a')], now: T0 });
    const r = arbitrateBarrier({
      barrier: barrier(2, { status: first.status }),
      pods: [view('a', { finished: true }), view('b')],
      now: T0 + 1,
    });
    expect(r.status).toMatchObject({ phase: 'Waiting', arrived: 1 });
    expect(r.status.arrivals.map((a) => a.uid)).toEqual(['b']);
  });

  it('times out from the first arrival, resetting when all arrivals are gone', () => {
    const b = (status?: Barrier['status']) => barrier(3, { timeout: '1m', ...(status ? { status } : {}) });
    const empty = arbitrateBarrier({ barrier: b(), pods: [], now: T0 });
    expect(empty.requeueAfterMs).toBeUndefined();
    const first = arbitrateBarrier({ barrier: b(empty.status), pods: [view('a')], now: T0 + 1000 });
    expect(first.status.firstArrivalAt).toBe(iso(T0 + 1000));
    expect(first.requeueAfterMs).toBe(60_000);
    const second = arbitrateBarrier({
      barrier: b(first.status),
      pods: [view('a'), view('b')],
      now: T0 + 30_000,
    });
    expect(second.status.firstArrivalAt).toBe(iso(T0 + 1000));
    expect(second.requeueAfterMs).toBe(31_000);
    // Everyone leaves: the clock resets.
    const gone = arbitrateBarrier({ barrier: b(second.status), pods: [], now: T0 + 40_000 });
    expect(gone.status.firstArrivalAt).toBeUndefined();
    const again = arbitrateBarrier({ barrier: b(gone.status), pods: [view('c')], now: T0 + 50_000 });
    expect(again.status.firstArrivalAt).toBe(iso(T0 + 50_000));
    const notYet = arbitrateBarrier({ barrier: b(again.status), pods: [view('c')], now: T0 + 109_999 });
    expect(notYet.status.phase).toBe('Waiting');
    const failed = arbitrateBarrier({ barrier: b(again.status), pods: [view('c')], now: T0 + 110_000 });
    expect(failed.status).toMatchObject({ phase: 'Failed', failedAt: iso(T0 + 110_000) });
    const warning = failed.events.find((e) => e.target === 'primitive');
    expect(warning).toMatchObject({ type: 'Warning', reason: 'Failed' });
    expect(warning?.message).toContain('arrived 1 of 3 expected');
    expect(barrierVerdict(failed.status, 'c')).toEqual({ failed: warning?.message });
    // Latched: arrivals afterwards do not open it.
    const late = arbitrateBarrier({
      barrier: b(failed.status),
      pods: [view('c'), view('d'), view('e')],
      now: T0 + 120_000,
    });
    expect(late.status.phase).toBe('Failed');
    expect(late.changed).toBe(false);
  });

  it('resets the timeout clock when every arrival was replaced between two decisions', () => {
    const first = arbitrateBarrier({ barrier: barrier(3, { timeout: '1m' }), pods: [view('a')], now: T0 });
    const r = arbitrateBarrier({
      barrier: barrier(3, { timeout: '1m', status: first.status }),
      pods: [view('a', { finished: true }), view('b')],
      now: T0 + 40_000,
    });
    expect(r.status.firstArrivalAt).toBe(iso(T0 + 40_000));
    expect(r.requeueAfterMs).toBe(60_000);
  });

  it('opens rather than fails when the quorum is present at the deadline', () => {
    const first = arbitrateBarrier({ barrier: barrier(2, { timeout: '1m' }), pods: [view('a')], now: T0 });
    const r = arbitrateBarrier({
      barrier: barrier(2, { timeout: '1m', status: first.status }),
      pods: [view('a'), view('b')],
      now: T0 + 60_000,
    });
    expect(r.status.phase).toBe('Open');
  });
});

type Step =
  | { op: 'arrive' }
  | { op: 'die'; pick: number }
  | { op: 'advance'; ms: number }
  | { op: 'arbitrate' };
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.constant({ op: 'arrive' as const }),
  fc.record({ op: fc.constant('die' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 30_000 }) }),
  fc.constant({ op: 'arbitrate' as const }),
);

describe('arbitrateBarrier: properties', () => {
  it('never opens below the quorum, latches Open and Failed, fails only after the timeout', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
        fc.array(stepArb, { maxLength: 60, size: 'max' }),
        (expected, quorumRaw, steps) => {
          const quorum = quorumRaw !== undefined && quorumRaw <= expected ? quorumRaw : undefined;
          const needed = quorum ?? expected;
          let b = barrier(expected, { timeout: '1m', ...(quorum !== undefined ? { quorum } : {}) });
          const pods = new Map<string, PodView>();
          let now = T0;
          let seq = 0;
          const arbitrate = () => {
            const before = b.status;
            const r = arbitrateBarrier({ barrier: b, pods: [...pods.values()], now });
            const st = r.status;
            if (before?.phase === 'Open' || before?.phase === 'Failed') {
              expect(st.phase).toBe(before.phase);
              expect(st.arrivals).toEqual(before.arrivals);
              expect(r.changed).toBe(false);
            } else {
              const live = [...pods.values()].filter((p) => p.bound && !p.finished && p.eligible);
              expect(st.arrived).toBe(live.length);
              if (st.phase === 'Open') expect(st.arrived).toBeGreaterThanOrEqual(needed);
              else expect(st.arrived).toBeLessThan(needed);
              if (st.phase === 'Failed') {
                expect(
                  Date.parse(before?.firstArrivalAt ?? st.firstArrivalAt ?? '') + 60_000,
                ).toBeLessThanOrEqual(now);
              }
              if (st.phase === 'Waiting' && st.firstArrivalAt !== undefined) {
                expect(Date.parse(st.firstArrivalAt) + 60_000).toBeGreaterThan(now);
              }
            }
            const again = arbitrateBarrier({ barrier: { ...b, status: st }, pods: [...pods.values()], now });
            expect(again.changed).toBe(false);
            expect(again.events).toEqual([]);
            b = { ...b, status: st };
          };
          for (const step of steps) {
            if (step.op === 'arrive') {
              seq += 1;
              pods.set(`u${seq}`, view(`u${seq}`));
            } else if (step.op === 'die') {
              const p = [...pods.values()][step.pick % Math.max(1, pods.size)];
              if (p) pods.set(p.uid, { ...p, finished: true });
            } else if (step.op === 'advance') now += step.ms;
            else arbitrate();
          }
          arbitrate();
        },
      ),
      { numRuns: 300 },
    );
  });
});
