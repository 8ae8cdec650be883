/**
 * A primitive deleted and recreated while its holders run: the new object's first decision adopts them before
 * it grants anything, and its tokens start above every token of the old object (controller/arbitration/
 * adoption.ts). Unit examples and properties over random lifecycles, deletes and recreations.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_PERMITS } from '../../api/limits.ts';
import type { Semaphore } from '../../api/types.ts';
import { firstToken, TOKENS_PER_REVISION } from '../../controller/arbitration/adoption.ts';
import { arbitrateLease } from '../../controller/arbitration/lease.ts';
import type { PodView } from '../../controller/arbitration/podView.ts';
import { arbitrateSemaphore } from '../../controller/arbitration/semaphore.ts';
import { lease, semaphore, T0, view } from '../helpers/arbitrationFixtures.ts';

const at = (s: Semaphore, resourceVersion: string): Semaphore => ({
  ...s,
  metadata: { ...s.metadata, resourceVersion },
});

describe('firstToken', () => {
  it('is the resourceVersion times TOKENS_PER_REVISION, or 1 when that is not an exact number', () => {
    expect(TOKENS_PER_REVISION).toBe(MAX_PERMITS);
    expect(firstToken('1234')).toBe(1234 * MAX_PERMITS);
    expect(firstToken(undefined)).toBe(1);
    expect(firstToken('not-a-number')).toBe(1);
    expect(firstToken('0')).toBe(1);
    expect(firstToken('99999999999999999999')).toBe(1); // beyond Number.MAX_SAFE_INTEGER
  });
});

describe('a Semaphore recreated while its holders run', () => {
  it('adopts the running pods first (token 0, grantedAt = when they passed their wait) and grants nothing over them', () => {
    const running = view('old', { passedWait: true, passedWaitAt: T0 - 60_000, scheduledAt: T0 - 90_000 });
    const waiter = view('new', { scheduledAt: T0 });
    const r = arbitrateSemaphore({ semaphore: at(semaphore(1), '500'), pods: [running, waiter], now: T0 });
    expect(r.status.holders).toEqual([
      {
        pod: 'pod-old',
        uid: 'old',
        permits: 1,
        token: 0,
        grantedAt: new Date(T0 - 60_000).toISOString(),
        adopted: true,
      },
    ]);
    expect(r.granted).toEqual([]);
    expect(r.status).toMatchObject({ inUse: 1, waiting: 1, nextToken: 500 * MAX_PERMITS });
    expect(r.events.filter((e) => e.reason === 'Adopted').map((e) => e.target)).toEqual([
      { pod: 'pod-old', uid: 'old' },
      'primitive',
    ]);
    // The adopted pod finishes: the waiter gets a token above every token of the old Semaphore.
    const after = arbitrateSemaphore({
      semaphore: { ...at(semaphore(1), '501'), status: r.status },
      pods: [{ ...running, finished: true }, waiter],
      now: T0 + 1000,
    });
    expect(after.granted.map((h) => [h.uid, h.token])).toEqual([['new', 500 * MAX_PERMITS]]);
  });

  it('with fewer permits than the adopted pods hold, grants nothing until they drop below the limit', () => {
    const runners = ['a', 'b', 'c'].map((u, i) => view(u, { passedWait: true, passedWaitAt: T0 - 1000 + i }));
    const waiter = view('w', { scheduledAt: T0 });
    const first = arbitrateSemaphore({
      semaphore: at(semaphore(2), '10'),
      pods: [...runners, waiter],
      now: T0,
    });
    expect(first.status.holders.map((h) => h.uid).sort()).toEqual(['a', 'b', 'c']);
    expect(first.status.inUse).toBe(3);
    expect(first.granted).toEqual([]);
    expect(first.status.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('OverCapacity');
    // One finishes: 2 held of 2, still nothing for the waiter.
    const one = arbitrateSemaphore({
      semaphore: { ...at(semaphore(2), '11'), status: first.status },
      pods: [{ ...runners[0]!, finished: true }, runners[1]!, runners[2]!, waiter],
      now: T0 + 1,
    });
    expect(one.granted).toEqual([]);
    // Another: the waiter is granted.
    const two = arbitrateSemaphore({
      semaphore: { ...at(semaphore(2), '12'), status: one.status },
      pods: [{ ...runners[1]!, finished: true }, runners[2]!, waiter],
      now: T0 + 2,
    });
    expect(two.granted.map((h) => h.uid)).toEqual(['w']);
  });

  it('adopts only once: a holder that expires later is not adopted again', () => {
    const runner = view('r', { passedWait: true, passedWaitAt: T0 });
    const first = arbitrateSemaphore({
      semaphore: at(semaphore(1, { ttl: '1m' }), '7'),
      pods: [runner],
      now: T0,
    });
    expect(first.status.holders.map((h) => h.uid)).toEqual(['r']);
    const expired = arbitrateSemaphore({
      semaphore: { ...at(semaphore(1, { ttl: '1m' }), '8'), status: first.status },
      pods: [runner],
      now: T0 + 60_000,
    });
    expect(expired.status.holders).toEqual([]);
    expect(expired.events.some((e) => e.reason === 'Expired')).toBe(true);
    expect(expired.events.some((e) => e.reason === 'Adopted')).toBe(false);
  });
});

describe('a Lease recreated while its holder runs', () => {
  it('adopts the pod that passed its wait last, and hands over above every earlier token', () => {
    const expiredEarlier = view('x', { passedWait: true, passedWaitAt: T0 - 120_000 });
    const holder = view('h', { passedWait: true, passedWaitAt: T0 - 10_000 });
    const waiter = view('w', { scheduledAt: T0 });
    const l = { ...lease('5m'), metadata: { ...lease('5m').metadata, resourceVersion: '42' } };
    const r = arbitrateLease({ lease: l, pods: [expiredEarlier, holder, waiter], now: T0 });
    expect(r.status.holder).toMatchObject({ uid: 'h', token: 0, adopted: true });
    expect(r.granted).toBeUndefined();
    expect(r.status.nextToken).toBe(42 * MAX_PERMITS);
    const after = arbitrateLease({
      lease: { ...l, status: r.status },
      pods: [expiredEarlier, { ...holder, finished: true }, waiter],
      now: T0 + 1,
    });
    expect(after.granted).toMatchObject({ uid: 'w', token: 42 * MAX_PERMITS });
  });
});

// ---------------------------------------------------------------------------------------------
// Properties: random pods, permits and lifecycles; deletes and recreations in between.
// ---------------------------------------------------------------------------------------------

type Step =
  | { op: 'arrive'; permits: number }
  | { op: 'passWait' | 'finish' | 'delete'; pick: number }
  | { op: 'recreate'; permits: number }
  | { op: 'arbitrate' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('arrive' as const), permits: fc.integer({ min: 1, max: 3 }) }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constantFrom('passWait', 'finish', 'delete') as fc.Arbitrary<'passWait' | 'finish' | 'delete'>,
      pick: fc.nat(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('recreate' as const), permits: fc.integer({ min: 1, max: 5 }) }),
  },
  { weight: 4, arbitrary: fc.constant({ op: 'arbitrate' as const }) },
);

describe('properties across deletes and recreations', () => {
  it('every grant stays within spec.permits over what runs, runners are never forgotten, and tokens only grow', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(stepArb, { maxLength: 80 }), (permits, steps) => {
        let revision = 100;
        let sem: Semaphore = at(semaphore(permits), String(revision));
        const pods = new Map<string, PodView>();
        let seq = 0;
        let now = T0;
        let maxToken = 0;
        const pick = (n: number) => {
          const all = [...pods.values()];
          return all.length === 0 ? undefined : all[n % all.length];
        };
        const arbitrate = () => {
          const r = arbitrateSemaphore({ semaphore: sem, pods: [...pods.values()], now });
          const st = r.status;
          const capacity = sem.spec.permits;
          // Who runs on a grant (passed its wait, not finished) is a holder: never forgotten.
          for (const p of pods.values()) {
            if (p.passedWait && !p.finished)
              expect(
                st.holders.some((h) => h.uid === p.uid),
                p.uid,
              ).toBe(true);
          }
          // A grant never takes what is held over spec.permits; adopted runners over it block every grant.
          const held = st.holders.reduce((n, h) => n + h.permits, 0);
          if (r.granted.length > 0) expect(held).toBeLessThanOrEqual(capacity);
          const heldBefore = st.holders
            .filter((h) => !r.granted.some((g) => g.uid === h.uid))
            .reduce((n, h) => n + h.permits, 0);
          if (heldBefore >= capacity) expect(r.granted).toEqual([]);
          // Tokens grow across every object of this name.
          for (const g of r.granted) {
            expect(g.token).toBeGreaterThan(maxToken);
            maxToken = g.token;
          }
          if (r.changed) revision += 1; // a status write takes a revision
          sem = { ...at(sem, String(revision)), status: st };
        };
        for (const step of steps) {
          now += 1000;
          switch (step.op) {
            case 'arrive': {
              seq += 1;
              const uid = `u${seq}`;
              pods.set(uid, view(uid, { permits: step.permits, scheduledAt: now }));
              break;
            }
            case 'passWait': {
              const p = pick(step.pick);
              if (p && sem.status?.holders.some((h) => h.uid === p.uid))
                pods.set(p.uid, { ...p, passedWait: true, passedWaitAt: now });
              break;
            }
            case 'finish': {
              const p = pick(step.pick);
              if (p) pods.set(p.uid, { ...p, finished: true });
              break;
            }
            case 'delete': {
              const p = pick(step.pick);
              if (p) pods.delete(p.uid);
              break;
            }
            case 'recreate':
              // kubectl delete + create: two more revisions, and no status.
              revision += 2;
              sem = at(semaphore(step.permits), String(revision));
              break;
            case 'arbitrate':
              arbitrate();
              break;
          }
        }
        arbitrate();
      }),
      { numRuns: 400 },
    );
  });
});
