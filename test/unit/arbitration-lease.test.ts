import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Lease } from '../../api/types.ts';
import { arbitrateLease } from '../../controller/arbitration/lease.ts';
import type { PodView } from '../../controller/arbitration/podView.ts';
import { lease, T0, view } from '../helpers/arbitrationFixtures.ts';

describe('arbitrateLease', () => {
  it('grants the head of the queue exclusively, with spec.priority for pods that set none', () => {
    const pods = [
      view('a', { scheduledAt: T0 }),
      view('b', { scheduledAt: T0 + 1, priority: 1 }),
      view('c', { scheduledAt: T0 + 2 }),
    ];
    // spec.priority 2 lifts the unannotated pods above b's explicit 1.
    const r = arbitrateLease({ lease: lease('1m', { priority: 2 }), pods, now: T0 + 10 });
    expect(r.granted).toMatchObject({ uid: 'a', token: 1 });
    expect(r.status).toMatchObject({
      phase: 'Held',
      waiting: 2,
      token: 1,
      nextToken: 2,
      acquiredAt: new Date(T0 + 10).toISOString(),
      expiresAt: new Date(T0 + 60_010).toISOString(),
    });
    expect(r.status.queue?.map((e) => [e.uid, e.priority])).toEqual([
      ['c', 2],
      ['b', 1],
    ]);
    // The holder is still in its wait: its ttl does not count yet.
    expect(r.requeueAfterMs).toBeUndefined();
    // Without spec.priority, b's explicit priority 1 wins over the default 0.
    const plain = arbitrateLease({ lease: lease('1m'), pods, now: T0 + 10 });
    expect(plain.granted?.uid).toBe('b');
  });

  it('hands over on release in the same decision with a larger token', () => {
    const pods = [view('a'), view('b', { scheduledAt: T0 + 1 })];
    const first = arbitrateLease({ lease: lease('1m'), pods, now: T0 });
    const r = arbitrateLease({
      lease: lease('1m', { status: first.status }),
      pods: [{ ...view('a'), finished: true }, view('b', { scheduledAt: T0 + 1 })],
      now: T0 + 5,
    });
    expect(r.removed?.uid).toBe('a');
    expect(r.granted).toMatchObject({ uid: 'b', token: 2 });
    expect(r.events.map((e) => e.reason)).toEqual(['Released', 'Released', 'Granted', 'Granted']);
  });

  it('expires the holder after ttl: Expired on the pod and the lease, next waiter granted', () => {
    const pods = [view('a'), view('b', { scheduledAt: T0 + 1 })];
    const first = arbitrateLease({ lease: lease('30s'), pods, now: T0 });
    const running = [{ ...view('a'), passedWait: true }, view('b', { scheduledAt: T0 + 1 })];
    const before = arbitrateLease({
      lease: lease('30s', { status: first.status }),
      pods: running,
      now: T0 + 29_999,
    });
    expect(before.changed).toBe(false);
    const r = arbitrateLease({
      lease: lease('30s', { status: first.status }),
      pods: running,
      now: T0 + 30_000,
    });
    expect(r.removed?.uid).toBe('a');
    expect(r.granted).toMatchObject({ uid: 'b', token: 2 });
    const expired = r.events.filter((e) => e.reason === 'Expired');
    expect(expired.map((e) => [e.type, e.target])).toEqual([
      ['Warning', { pod: 'pod-a', uid: 'a' }],
      ['Warning', 'primitive'],
    ]);
  });

  it('becomes Available when the holder leaves and nobody waits, keeping nextToken', () => {
    const first = arbitrateLease({ lease: lease('1m'), pods: [view('a')], now: T0 });
    const r = arbitrateLease({ lease: lease('1m', { status: first.status }), pods: [], now: T0 + 1 });
    expect(r.status).toMatchObject({ phase: 'Available', waiting: 0, nextToken: 2 });
    expect(r.status.holder).toBeUndefined();
    expect(r.status.token).toBeUndefined();
    expect(r.requeueAfterMs).toBeUndefined();
  });

  it('grants nothing without a valid ttl', () => {
    const bad: Lease = lease('later');
    const r = arbitrateLease({ lease: bad, pods: [view('a')], now: T0 });
    expect(r.granted).toBeUndefined();
    expect(r.status.conditions?.[0]).toMatchObject({ type: 'Ready', status: 'False', reason: 'InvalidSpec' });
  });
});

type Step =
  | { op: 'arrive'; priority: number }
  | { op: 'finish' | 'delete' | 'release' | 'passWait'; pick: number }
  | { op: 'advance'; ms: number }
  | { op: 'arbitrate' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('arrive' as const), priority: fc.integer({ min: 0, max: 2 }) }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constantFrom('finish', 'delete', 'release', 'passWait') as fc.Arbitrary<
        'finish' | 'delete' | 'release' | 'passWait'
      >,
      pick: fc.nat(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 20_000 }) }),
  },
  { weight: 3, arbitrary: fc.constant({ op: 'arbitrate' as const }) },
);

describe('arbitrateLease: scheduling-gate mode', () => {
  it('grants a gated pod in one queue with bound ones; withdraws it when it is not placed within its start timeout', () => {
    // b (gated) was admitted before a was scheduled: it is first.
    const a = view('a', { scheduledAt: T0 + 5 });
    const b = view('b', { bound: false, gated: true, scheduledAt: T0, startTimeoutMs: 60_000 });
    const first = arbitrateLease({ lease: lease('5m'), pods: [a, b], now: T0 + 10 });
    expect(first.granted?.uid).toBe('b');
    // Its gate removed (clearedAt: the grant), the scheduler finds no node for it.
    const placed = { ...b, gated: false, clearedAt: T0 + 10 };
    const waiting = arbitrateLease({
      lease: lease('5m', { status: first.status }),
      pods: [a, placed],
      now: T0 + 20,
    });
    expect(waiting.changed).toBe(false);
    expect(waiting.requeueAfterMs).toBe(60_000 - 10);
    const timedOut = arbitrateLease({
      lease: lease('5m', { status: first.status }),
      pods: [a, placed],
      now: T0 + 10 + 60_000,
    });
    expect(timedOut.removed?.uid).toBe('b');
    expect(timedOut.granted?.uid).toBe('a');
    expect(timedOut.events.filter((e) => e.reason === 'StartTimeout')).toHaveLength(2);
    expect(timedOut.events.find((e) => e.reason === 'StartTimeout')?.message).toMatch(
      /not scheduled within its start timeout/,
    );
    // Once scheduled later, it waits again at its original place: ahead of anyone who arrived after it.
    const c = view('c', { scheduledAt: T0 + 1 });
    const again = arbitrateLease({
      lease: lease('5m', { status: timedOut.status }),
      pods: [a, { ...placed, bound: true }, c],
      now: T0 + 70_000,
    });
    expect(again.status.queue?.map((e) => e.uid)).toEqual(['b', 'c']);
  });
});

describe('arbitrateLease: properties', () => {
  it('never has two holders; expiry and release hand over with a larger token in the same decision', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 100, size: 'max' }), (steps) => {
        let l = lease('30s');
        const pods = new Map<string, PodView>();
        let now = T0;
        let seq = 0;
        let lastToken = 0;
        const pick = (n: number) => [...pods.values()][n % Math.max(1, pods.size)];
        const arbitrate = () => {
          const before = l.status?.holder;
          const input = [...pods.values()];
          const r = arbitrateLease({ lease: l, pods: input, now });
          const after = r.status.holder;
          // A holder whose pod exists and has not finished keeps the lease until its ttl — in particular one
          // being deleted whose main containers still run ('release': terminating, not finished).
          if (before) {
            const p = pods.get(before.uid);
            const expired = p?.passedWait === true && Date.parse(before.acquiredAt) + 30_000 <= now;
            if (p && !p.finished && !expired)
              expect(after?.uid, `${before.uid} keeps the lease`).toBe(before.uid);
          }
          // One holder at most, and a new one only when the old one left in this decision.
          if (r.granted) {
            expect(before === undefined || r.removed?.uid === before.uid).toBe(true);
            expect(r.granted.token).toBeGreaterThan(lastToken);
            expect(after).toEqual(r.granted);
            lastToken = r.granted.token;
          } else {
            expect(after?.uid).toBe(r.removed ? undefined : before?.uid);
          }
          expect(r.status.phase).toBe(after ? 'Held' : 'Available');
          // The slot never stays empty while someone waits.
          const waiting = input.filter(
            (p) =>
              p.bound && !p.finished && !p.terminating && p.eligible && !p.passedWait && p.uid !== after?.uid,
          );
          if (after === undefined) expect(waiting).toEqual([]);
          expect(r.status.waiting).toBe(waiting.length);
          // The holder is live and within its ttl.
          if (after) {
            const p = pods.get(after.uid);
            expect(p && !p.finished).toBe(true);
            // The ttl counts only once the holder's pod has passed its wait (holdStartedAt).
            if (p?.passedWait) expect(Date.parse(after.acquiredAt) + 30_000).toBeGreaterThan(now);
          }
          const again = arbitrateLease({ lease: { ...l, status: r.status }, pods: input, now });
          expect(again.changed).toBe(false);
          expect(again.events).toEqual([]);
          l = { ...l, status: r.status };
        };
        for (const step of steps) {
          if (step.op === 'arrive') {
            seq += 1;
            const uid = `u${String(seq).padStart(3, '0')}`;
            pods.set(uid, view(uid, { priority: step.priority, scheduledAt: now }));
          } else if (step.op === 'advance') now += step.ms;
          else if (step.op === 'arbitrate') arbitrate();
          else {
            const p = pick(step.pick);
            if (!p) continue;
            if (step.op === 'delete') pods.delete(p.uid);
            else if (step.op === 'finish') pods.set(p.uid, { ...p, finished: true });
            else if (step.op === 'release') pods.set(p.uid, { ...p, terminating: true });
            else if (l.status?.holder?.uid === p.uid) pods.set(p.uid, { ...p, passedWait: true });
          }
        }
        arbitrate();
      }),
      { numRuns: 300 },
    );
  });

  it('a holder still in its wait (acquiring a later primitive) does not expire; its ttl starts when it passes', () => {
    const pods = [view('a'), view('b', { scheduledAt: T0 + 1 })];
    const first = arbitrateLease({ lease: lease('1m'), pods, now: T0 });
    expect(first.granted?.uid).toBe('a');
    // Long past the ttl, a is still waiting (e.g. for a semaphore permit after the lease): it keeps the lease,
    // so b cannot end up holding the lease while waiting for a's permit.
    const stillWaiting = arbitrateLease({
      lease: lease('1m', { status: first.status }),
      pods,
      now: T0 + 10 * 60_000,
    });
    expect(stillWaiting.status.holder?.uid).toBe('a');
    expect(stillWaiting.events.filter((e) => e.reason === 'Expired')).toEqual([]);
    // a passes its wait at T0+10m: the full ttl counts from then.
    const passed = pods.map((p) =>
      p.uid === 'a' ? { ...p, passedWait: true, passedWaitAt: T0 + 10 * 60_000 } : p,
    );
    const running = arbitrateLease({
      lease: lease('1m', { status: first.status }),
      pods: passed,
      now: T0 + 10 * 60_000 + 59_000,
    });
    expect(running.status.holder?.uid).toBe('a');
    expect(running.requeueAfterMs).toBe(1000);
    const expired = arbitrateLease({
      lease: lease('1m', { status: first.status }),
      pods: passed,
      now: T0 + 11 * 60_000,
    });
    expect(expired.status.holder?.uid).toBe('b');
  });
});
