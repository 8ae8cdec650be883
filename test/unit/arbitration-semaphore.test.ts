import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Semaphore, SemaphoreStatus } from '../../api/types.ts';
import { compareWaiters, type PodView } from '../../controller/arbitration/podView.ts';
import { arbitrateSemaphore } from '../../controller/arbitration/semaphore.ts';
import { QUEUE_STATUS_LIMIT } from '../../controller/arbitration/waitingQueue.ts';
import { semaphore, T0, view } from '../helpers/arbitrationFixtures.ts';

const withStatus = (s: Semaphore, status: SemaphoreStatus): Semaphore => ({ ...s, status });
const uids = (status: SemaphoreStatus) => status.holders.map((h) => h.uid);

describe('arbitrateSemaphore: grants', () => {
  it('grants free permits in priority, then arrival, then UID order, with increasing tokens', () => {
    const pods = [
      view('c', { scheduledAt: T0 + 2 }),
      view('a', { scheduledAt: T0 + 1 }),
      view('z', { priority: 5, scheduledAt: T0 + 9 }),
      view('b', { scheduledAt: T0 + 1 }),
    ];
    const r = arbitrateSemaphore({ semaphore: semaphore(3), pods, now: T0 + 10 });
    expect(r.granted.map((h) => [h.uid, h.token])).toEqual([
      ['z', 1],
      ['a', 2],
      ['b', 3],
    ]);
    expect(r.status).toMatchObject({ inUse: 3, available: 0, phase: 'Full', waiting: 1, nextToken: 4 });
    expect(r.status.queue).toEqual([{ pod: 'pod-c', uid: 'c', permits: 1, priority: 0 }]);
    expect(r.changed).toBe(true);
    expect(r.events.filter((e) => e.reason === 'Granted')).toHaveLength(6); // pod + primitive each
    expect(r.events.find((e) => e.reason === 'Queued')).toMatchObject({
      target: { pod: 'pod-c', uid: 'c' },
      message: 'waiting for 1 permit of semaphore default/slots: position 1 of 1',
    });
    expect(r.status.holders[0]).toMatchObject({ grantedAt: new Date(T0 + 10).toISOString() });
    expect(r.status.holders[0]?.expiresAt).toBeUndefined();
  });

  it('does not grant to unbound, finished, ineligible, passed or terminating pods', () => {
    const pods = [
      view('unbound', { bound: false }),
      view('finished', { finished: true }),
      view('ineligible', { eligible: false }),
      view('passed', { passedWait: true }),
      view('terminating', { terminating: true }),
    ];
    // (A first decision adopts pods that passed their wait; this one already has a status.)
    const s = semaphore(10, {
      status: arbitrateSemaphore({ semaphore: semaphore(10), pods: [], now: T0 }).status,
    });
    const r = arbitrateSemaphore({ semaphore: s, pods, now: T0 });
    expect(r.granted).toEqual([]);
    expect(r.status).toMatchObject({ inUse: 0, available: 10, phase: 'Ready', waiting: 0 });
  });

  it('blocks the head of the line strictly: a big request is not bypassed by smaller ones behind it', () => {
    const start = arbitrateSemaphore({ semaphore: semaphore(3), pods: [view('h')], now: T0 });
    expect(uids(start.status)).toEqual(['h']);
    const holder = view('h', { passedWait: true });
    const pods = [
      holder,
      view('big', { permits: 3, scheduledAt: T0 + 1 }),
      view('small', { permits: 1, scheduledAt: T0 + 2 }),
    ];
    const r = arbitrateSemaphore({ semaphore: withStatus(semaphore(3), start.status), pods, now: T0 + 5 });
    expect(r.granted).toEqual([]);
    expect(r.status).toMatchObject({ inUse: 1, available: 2, waiting: 2 });
    expect(r.status.queue?.map((e) => e.uid)).toEqual(['big', 'small']);
    // The holder finishes: the big request gets all three permits in the same decision.
    const after = arbitrateSemaphore({
      semaphore: withStatus(semaphore(3), r.status),
      pods: [{ ...holder, finished: true }, ...pods.slice(1)],
      now: T0 + 6,
    });
    expect(after.removed.map((h) => h.uid)).toEqual(['h']);
    expect(after.granted.map((h) => [h.uid, h.permits])).toEqual([['big', 3]]);
    expect(after.status).toMatchObject({ inUse: 3, available: 0, phase: 'Full', waiting: 1 });
  });

  it('skips a request larger than spec.permits with a warning, without blocking the queue', () => {
    const pods = [view('huge', { permits: 5, scheduledAt: T0 }), view('small', { scheduledAt: T0 + 1 })];
    const r = arbitrateSemaphore({ semaphore: semaphore(3), pods, now: T0 });
    expect(uids(r.status)).toEqual(['small']);
    expect(r.status.waiting).toBe(1);
    expect(r.status.queue).toEqual([{ pod: 'pod-huge', uid: 'huge', permits: 5, priority: 0 }]);
    const warnings = r.events.filter((e) => e.reason === 'PermitsExceedCapacity');
    expect(warnings.map((e) => e.target)).toEqual([{ pod: 'pod-huge', uid: 'huge' }, 'primitive']);
    expect(warnings[0]?.type).toBe('Warning');
    expect(r.status.conditions?.find((c) => c.type === 'Satisfiable')).toMatchObject({
      status: 'False',
      reason: 'PermitsExceedCapacity',
    });
    // The warning is not repeated.
    const again = arbitrateSemaphore({ semaphore: withStatus(semaphore(3), r.status), pods, now: T0 + 1000 });
    expect(again.events).toEqual([]);
    expect(again.changed).toBe(false);
    // Raising spec.permits makes it grantable in its place.
    const raised = arbitrateSemaphore({
      semaphore: withStatus(semaphore(6), r.status),
      pods,
      now: T0 + 2000,
    });
    expect(raised.granted.map((h) => h.uid)).toEqual(['huge']);
  });

  it('releases gone holders and deleted holders whose containers stopped, and grants in the same decision', () => {
    const pods = ['a', 'b', 'c', 'd'].map((u, i) => view(u, { scheduledAt: T0 + i }));
    const first = arbitrateSemaphore({ semaphore: semaphore(3), pods, now: T0 });
    expect(uids(first.status)).toEqual(['a', 'b', 'c']);
    const next = arbitrateSemaphore({
      semaphore: withStatus(semaphore(3), first.status),
      pods: [
        // b: deleted, main containers stopped; c: deleted, main containers still in their grace period
        { ...view('b', { scheduledAt: T0 + 1 }), terminating: true, finished: true },
        { ...view('c', { scheduledAt: T0 + 2 }), terminating: true, passedWait: true },
        view('d', { scheduledAt: T0 + 3 }),
      ],
      now: T0 + 100,
    });
    expect(next.removed.map((h) => h.uid)).toEqual(['a', 'b']);
    expect(uids(next.status)).toEqual(['c', 'd']);
    expect(next.status.holders[1]?.token).toBe(4);
    const released = next.events.filter((e) => e.reason === 'Released' && e.target !== 'primitive');
    expect(released.map((e) => e.message)).toEqual([
      'released 1 permit of semaphore default/slots (token 1): the pod is gone',
      'released 1 permit of semaphore default/slots (token 2): the pod was deleted and its main containers stopped',
    ]);
  });

  it('keeps the permit of a holder being deleted while its main containers run (graceful deletion)', () => {
    const first = arbitrateSemaphore({ semaphore: semaphore(1), pods: [view('h')], now: T0 });
    const deleting = view('h', { passedWait: true, terminating: true });
    const r = arbitrateSemaphore({
      semaphore: withStatus(semaphore(1), first.status),
      pods: [deleting, view('w', { scheduledAt: T0 + 1 })],
      now: T0 + 5000,
    });
    expect(uids(r.status)).toEqual(['h']);
    expect(r.granted).toEqual([]);
    expect(r.status.waiting).toBe(1);
  });

  it('expires holders past the ttl with a Warning and requeues at the earliest expiry', () => {
    const pods = [view('a'), view('b', { scheduledAt: T0 + 1 })];
    const first = arbitrateSemaphore({ semaphore: semaphore(1, { ttl: '1m' }), pods, now: T0 });
    expect(first.status.holders[0]).toMatchObject({
      uid: 'a',
      expiresAt: new Date(T0 + 60_000).toISOString(),
    });
    // Still in its wait: the ttl does not count yet, nothing to requeue for.
    expect(first.requeueAfterMs).toBeUndefined();
    const held = pods.map((p) => (p.uid === 'a' ? { ...p, passedWait: true } : p));
    const early = arbitrateSemaphore({
      semaphore: semaphore(1, { ttl: '1m', status: first.status }),
      pods: held,
      now: T0 + 59_999,
    });
    expect(early.changed).toBe(false);
    expect(early.requeueAfterMs).toBe(1);
    const late = arbitrateSemaphore({
      semaphore: semaphore(1, { ttl: '1m', status: first.status }),
      pods: held,
      now: T0 + 60_000,
    });
    expect(uids(late.status)).toEqual(['b']);
    expect(late.status.holders[0]?.token).toBe(2);
    const expired = late.events.filter((e) => e.reason === 'Expired');
    expect(expired.map((e) => [e.type, e.target])).toEqual([
      ['Warning', { pod: 'pod-a', uid: 'a' }],
      ['Warning', 'primitive'],
    ]);
    // The expired pod keeps running (it passed its wait) and is not queued again.
    expect(late.status.waiting).toBe(0);
  });

  it('never revokes holders when spec.permits is lowered, and grants nothing until inUse < permits', () => {
    const pods = ['a', 'b', 'c', 'd'].map((u, i) => view(u, { scheduledAt: T0 + i }));
    const first = arbitrateSemaphore({ semaphore: semaphore(3), pods, now: T0 });
    const running = pods.map((p) => (['a', 'b', 'c'].includes(p.uid) ? { ...p, passedWait: true } : p));
    const lowered = arbitrateSemaphore({
      semaphore: semaphore(1, { status: first.status }),
      pods: running,
      now: T0 + 1,
    });
    expect(uids(lowered.status)).toEqual(['a', 'b', 'c']);
    expect(lowered.status).toMatchObject({ inUse: 3, available: 0, phase: 'Full', waiting: 1 });
    expect(lowered.status.conditions?.find((c) => c.type === 'Ready')?.reason).toBe('OverCapacity');
    const oneLeft = arbitrateSemaphore({
      semaphore: semaphore(1, { status: lowered.status }),
      pods: running.filter((p) => p.uid !== 'a' && p.uid !== 'b'),
      now: T0 + 2,
    });
    expect(uids(oneLeft.status)).toEqual(['c']);
    expect(oneLeft.granted).toEqual([]);
  });

  it('keeps lastTransitionTime, reports observedGeneration and is idempotent', () => {
    const pods = [view('a'), view('b')];
    const first = arbitrateSemaphore({ semaphore: semaphore(1), pods, now: T0 });
    const sem = { ...semaphore(1, { status: first.status }) };
    sem.metadata = { ...sem.metadata, generation: 7 };
    const second = arbitrateSemaphore({ semaphore: sem, pods, now: T0 + 5000 });
    expect(second.changed).toBe(true); // observedGeneration moved
    expect(second.status.observedGeneration).toBe(7);
    expect(second.status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      lastTransitionTime: new Date(T0).toISOString(),
      observedGeneration: 7,
    });
    expect(second.events).toEqual([]);
    const third = arbitrateSemaphore({ semaphore: { ...sem, status: second.status }, pods, now: T0 + 9000 });
    expect(third.changed).toBe(false);
  });

  it('lists at most QUEUE_STATUS_LIMIT waiters in status.queue but counts them all', () => {
    const pods = Array.from({ length: QUEUE_STATUS_LIMIT + 5 }, (_, i) =>
      view(`p${String(i).padStart(3, '0')}`, { scheduledAt: T0 + i }),
    );
    const r = arbitrateSemaphore({ semaphore: semaphore(1), pods, now: T0 });
    expect(r.status.waiting).toBe(QUEUE_STATUS_LIMIT + 4);
    expect(r.status.queue).toHaveLength(QUEUE_STATUS_LIMIT);
    expect(r.events.filter((e) => e.reason === 'Queued')).toHaveLength(QUEUE_STATUS_LIMIT);
  });

  it('stops granting on an invalid spec but still releases', () => {
    const pods = [view('a'), view('b')];
    const first = arbitrateSemaphore({ semaphore: semaphore(1), pods, now: T0 });
    const r = arbitrateSemaphore({
      semaphore: semaphore(1, { ttl: 'soon', status: first.status }),
      pods: [view('b')],
      now: T0 + 1,
    });
    expect(r.removed.map((h) => h.uid)).toEqual(['a']);
    expect(r.granted).toEqual([]);
    expect(r.status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'InvalidSpec',
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Property: random pod lifecycles, time and spec changes fed through arbitrateSemaphore.
// ---------------------------------------------------------------------------------------------

type Step =
  | { op: 'arrive'; priority: number; permits: number; bound: boolean; eligible: boolean; gateMode: boolean }
  | {
      op:
        | 'bind'
        | 'eligible'
        | 'finish'
        | 'delete'
        | 'release'
        | 'stop'
        | 'passWait'
        | 'ungate'
        | 'handUngate';
      pick: number;
    }
  | { op: 'advance'; ms: number }
  | { op: 'permits'; permits: number }
  | { op: 'arbitrate' };

/** Mostly true, so that most pods take part in arbitration. */
const likely = fc.oneof(
  { weight: 3, arbitrary: fc.constant(true) },
  { weight: 1, arbitrary: fc.constant(false) },
);

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('arrive' as const),
      priority: fc.integer({ min: -1, max: 2 }),
      permits: fc.integer({ min: 1, max: 5 }),
      bound: likely,
      eligible: likely,
      // Both wait modes on one Semaphore: one queue.
      gateMode: fc.boolean(),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constantFrom(
        'bind',
        'eligible',
        'finish',
        'delete',
        'release',
        'stop',
        'passWait',
        'ungate',
        'handUngate',
      ) as fc.Arbitrary<
        'bind' | 'eligible' | 'finish' | 'delete' | 'release' | 'stop' | 'passWait' | 'ungate' | 'handUngate'
      >,
      pick: fc.nat(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 40_000 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('permits' as const), permits: fc.integer({ min: 1, max: 6 }) }),
  },
  { weight: 3, arbitrary: fc.constant({ op: 'arbitrate' as const }) },
);

const isWaiter = (p: PodView, holders: Set<string>) =>
  (p.bound || p.gated) && !p.finished && !p.terminating && p.eligible && !p.passedWait && !holders.has(p.uid);

/** konductor.io/start-timeout of the model's scheduling-gate pods. */
const START_TIMEOUT_MS = 20_000;

function oldHoldersAt(status: Semaphore['status'], uid: string): boolean {
  return (status?.holders ?? []).some((h) => h.uid === uid);
}

function runSemaphoreModel(steps: Step[], ttl: string | undefined): void {
  let sem = semaphore(3, ttl === undefined ? {} : { ttl });
  const pods = new Map<string, PodView>();
  let now = T0;
  let seq = 0;
  const issued = new Set<number>();
  let maxIssued = 0;
  const pick = (n: number) => {
    const all = [...pods.values()];
    return all.length === 0 ? undefined : all[n % all.length];
  };
  const update = (n: number, patch: Partial<PodView>) => {
    const p = pick(n);
    if (p) pods.set(p.uid, { ...p, ...patch });
  };

  const arbitrate = () => {
    // The caller's part (stages.ts clearedAt): a holder has passed its only stage at its grant.
    const granted = new Map((sem.status?.holders ?? []).map((h) => [h.uid, Date.parse(h.grantedAt)]));
    for (const p of pods.values()) pods.set(p.uid, { ...p, clearedAt: granted.get(p.uid) });
    const before = sem.status;
    const heldBefore = (before?.holders ?? []).reduce((s, h) => s + h.permits, 0);
    const input = [...pods.values()];
    const r = arbitrateSemaphore({ semaphore: sem, pods: input, now });
    const st = r.status;
    const holderUids = new Set(st.holders.map((h) => h.uid));
    const held = st.holders.reduce((s, h) => s + h.permits, 0);
    const capacity = sem.spec.permits;

    // Safety: never more permits held than spec.permits, when that held before.
    if (heldBefore <= capacity) expect(held).toBeLessThanOrEqual(capacity);
    if (r.granted.length > 0) expect(held).toBeLessThanOrEqual(capacity);
    expect(st.inUse).toBe(held);
    expect(st.available).toBe(Math.max(0, capacity - held));
    expect(st.phase).toBe(st.available === 0 ? 'Full' : 'Ready');

    // Tokens: unique, strictly increasing across all decisions, below nextToken.
    const tokens = st.holders.map((h) => h.token);
    expect(new Set(tokens).size).toBe(tokens.length);
    expect([...tokens].sort((a, b) => a - b)).toEqual(tokens);
    for (const g of r.granted) {
      expect(issued.has(g.token)).toBe(false);
      expect(g.token).toBeGreaterThan(maxIssued);
      issued.add(g.token);
      maxIssued = g.token;
    }
    for (const t of tokens) expect(t).toBeLessThan(st.nextToken);

    // Holders are live: finished, deleted and expired holders are gone in the same decision.
    // The ttl counts only once the holder's pod has passed its wait (holdStartedAt).
    const ttlMs = ttl === undefined ? Number.POSITIVE_INFINITY : 30_000;
    // A holder whose gate is gone but that is still not on a node its start timeout after its grant is
    // withdrawn (scheduling-gate mode).
    const startTimedOut = (p: PodView | undefined) =>
      p !== undefined &&
      !p.bound &&
      !p.gated &&
      p.startTimeoutMs !== undefined &&
      p.clearedAt !== undefined &&
      p.clearedAt + p.startTimeoutMs <= now;
    for (const h of st.holders) {
      const p = pods.get(h.uid);
      expect(p).toBeDefined();
      expect(p?.finished).toBe(false);
      if (p?.passedWait) expect(Date.parse(h.grantedAt) + ttlMs).toBeGreaterThan(now);
      if (oldHoldersAt(before, h.uid)) expect(startTimedOut(p), `${h.uid} start timeout`).toBe(false);
      // Never held by a pod that is neither on a node nor behind the gate, past its start timeout.
      if (p && !p.bound && !p.gated && p.clearedAt !== undefined)
        expect(p.clearedAt + (p.startTimeoutMs ?? Number.POSITIVE_INFINITY)).toBeGreaterThan(now);
    }
    // The next start timeout is looked at in time.
    const dues = st.holders
      .map((h) => pods.get(h.uid))
      .filter((p): p is PodView => p !== undefined && !p.bound && !p.gated && p.clearedAt !== undefined)
      .map((p) => p.clearedAt! + (p.startTimeoutMs ?? 0) - now);
    if (dues.length > 0) expect(r.requeueAfterMs).toBeLessThanOrEqual(Math.max(0, Math.min(...dues)));
    // ...and only those: a holder whose pod exists and has not finished keeps its grant until its ttl —
    // in particular a terminating pod whose main containers still run (graceful deletion).
    for (const h of before?.holders ?? []) {
      const p = pods.get(h.uid);
      const expired = p?.passedWait === true && Date.parse(h.grantedAt) + ttlMs <= now;
      if (p && !p.finished && !expired && !startTimedOut(p))
        expect(holderUids.has(h.uid), `${h.uid} kept`).toBe(true);
    }

    // Grants only to waiters, in arbitration order, ahead of everyone left waiting.
    const oldHolders = new Set((before?.holders ?? []).map((h) => h.uid));
    const left = input.filter((p) => isWaiter(p, holderUids) && p.permits <= capacity).sort(compareWaiters);
    for (const g of r.granted) {
      const p = pods.get(g.uid)!;
      // Present: on a node (init-container mode, or ungated) or unscheduled behind the gate.
      expect((p.bound || p.gated) && !p.finished && !p.terminating && p.eligible && !p.passedWait).toBe(true);
      expect(oldHolders.has(g.uid) && st.holders.filter((h) => h.uid === g.uid).length > 1).toBe(false);
      for (const w of left) expect(compareWaiters(p, w)).toBeLessThan(0);
    }
    const grantedOrder = r.granted.map((g) => pods.get(g.uid)!);
    expect([...grantedOrder].sort(compareWaiters)).toEqual(grantedOrder);

    // Work-conserving up to head-of-line blocking: the head of what is left does not fit.
    const head = left[0];
    if (head !== undefined) expect(head.permits).toBeGreaterThan(capacity - held);
    expect(st.waiting).toBe(input.filter((p) => isWaiter(p, holderUids)).length);

    // Idempotence: the same inputs against the new status change nothing.
    const again = arbitrateSemaphore({ semaphore: { ...sem, status: st }, pods: input, now });
    expect(again.changed).toBe(false);
    expect(again.events).toEqual([]);
    expect(again.granted).toEqual([]);
    expect(again.removed).toEqual([]);
    if (!r.changed) expect(r.events).toEqual([]);

    sem = { ...sem, status: st };
  };

  for (const step of steps) {
    switch (step.op) {
      case 'arrive': {
        seq += 1;
        const uid = `u${String(seq).padStart(3, '0')}`;
        pods.set(
          uid,
          view(uid, {
            priority: step.priority === 0 ? undefined : step.priority,
            permits: step.permits,
            // Arrival: admission for a gated pod, scheduling for the others (both now).
            scheduledAt: now,
            bound: step.gateMode ? false : step.bound,
            gated: step.gateMode,
            ...(step.gateMode ? { startTimeoutMs: START_TIMEOUT_MS } : {}),
            eligible: step.eligible,
          }),
        );
        break;
      }
      case 'bind': {
        // The scheduler places no gated pod.
        const p = pick(step.pick);
        if (p && !p.gated) pods.set(p.uid, { ...p, bound: true });
        break;
      }
      case 'ungate': {
        // The controller removes the gate of a pod granted everything.
        const p = pick(step.pick);
        if (p?.gated && sem.status?.holders.some((h) => h.uid === p.uid))
          pods.set(p.uid, { ...p, gated: false });
        break;
      }
      case 'handUngate':
        // Someone removes the gate by hand, granted or not.
        update(step.pick, { gated: false });
        break;
      case 'eligible':
        update(step.pick, { eligible: true });
        break;
      case 'finish':
        update(step.pick, { finished: true });
        break;
      case 'release':
        // Graceful deletion: a deletionTimestamp while its main containers still run; later they stop.
        update(step.pick, { terminating: true });
        break;
      case 'stop': {
        const p = pick(step.pick);
        if (p?.terminating) pods.set(p.uid, { ...p, finished: true });
        break;
      }
      case 'passWait': {
        // Only a holder's wait container exits 0, on a node.
        const p = pick(step.pick);
        if (p?.bound && sem.status?.holders.some((h) => h.uid === p.uid))
          pods.set(p.uid, { ...p, passedWait: true });
        break;
      }
      case 'delete': {
        const p = pick(step.pick);
        if (p) pods.delete(p.uid);
        break;
      }
      case 'advance':
        now += step.ms;
        break;
      case 'permits':
        sem = { ...sem, spec: { ...sem.spec, permits: step.permits } };
        break;
      case 'arbitrate':
        arbitrate();
        break;
    }
  }
  arbitrate();
}

describe('arbitrateSemaphore: properties', () => {
  it('keeps its invariants over random pod lifecycles (no ttl)', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 120, size: 'max' }), (steps) =>
        runSemaphoreModel(steps, undefined),
      ),
      { numRuns: 300 },
    );
  });

  it('keeps its invariants over random pod lifecycles (ttl 30s)', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 120, size: 'max' }), (steps) =>
        runSemaphoreModel(steps, '30s'),
      ),
      { numRuns: 300 },
    );
  });
});
