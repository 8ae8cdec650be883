/**
 * Barrier arbitration.
 *
 * - While Waiting, the arrivals are the referencing pods that are bound (or gated: scheduling-gate mode), not finished and eligible (their
 *   gate, if any, is open). A pod that dies before the barrier opens no longer counts; each arrival keeps
 *   the time it was first seen.
 * - The barrier opens when arrivals >= spec.quorum (default spec.expected). Open is LATCHED: the status
 *   (arrivals, openedAt) is frozen, and every referencing pod may pass from then on, including pods that
 *   arrive later. Reusing a barrier means recreating it.
 * - spec.timeout counts from the FIRST arrival (status.firstArrivalAt). When every arrival is gone before
 *   the barrier opens, the clock resets. A Waiting barrier past its deadline becomes Failed (latched) with
 *   a Warning "arrived X of Y expected"; its pods' wait containers fail. When the quorum is present in the
 *   decision that also finds the deadline passed, the barrier opens (opening is checked first).
 */
import { MAX_ARRIVALS } from '../../api/limits.ts';
import type { Arrival, Barrier, BarrierStatus } from '../../api/types.ts';
import { findCondition, latchedReady, type ReadyDecision, readyDecision } from './conditions.ts';
import { type PlannedEvent, podEvent, primitiveEvent } from './events.ts';
import type { KindRules } from './kindRules.ts';
import { isPresent, type PodView } from './podView.ts';
import { fromIso, readDuration, toIso } from './timestamps.ts';
import { indexByUid } from './waitingQueue.ts';
import { plural } from './wording.ts';

export interface BarrierArbitrationInput {
  barrier: Barrier;
  /** The managed pods that reference this barrier (any state). */
  pods: readonly PodView[];
  now: number;
}

/** Its status with the Ready condition, whether it changed, its Events; requeueAfterMs: the timeout deadline. */
export type BarrierArbitrationResult = ReadyDecision<BarrierStatus>;

export type BarrierVerdict = 'wait' | 'pass' | { failed: string };

/** Arrivals needed to open: spec.quorum when it is within 1..expected, else spec.expected. */
export function barrierNeeded(barrier: Barrier): number | undefined {
  const expected = barrier.spec?.expected;
  if (typeof expected !== 'number' || !Number.isInteger(expected) || expected < 1) return undefined;
  const quorum = barrier.spec.quorum;
  if (typeof quorum === 'number' && Number.isInteger(quorum) && quorum >= 1 && quorum <= expected)
    return quorum;
  return expected;
}

/**
 * A pod counts as arrived when it is present (bound, or unscheduled behind konductor's scheduling gate: a gang
 * is counted before it takes any node), not finished, not being deleted and eligible.
 */
export function hasArrived(pod: PodView): boolean {
  return isPresent(pod) && !pod.finished && !pod.terminating && pod.eligible;
}

export function arbitrateBarrier(input: BarrierArbitrationInput): BarrierArbitrationResult {
  const { barrier, now } = input;
  const ref = `barrier ${barrier.metadata.namespace ?? 'default'}/${barrier.metadata.name ?? ''}`;
  const nowIso = toIso(now);
  const old = barrier.status;
  const generation = barrier.metadata.generation;
  const events: PlannedEvent[] = [];
  const expected = barrier.spec?.expected;
  const needed = barrierNeeded(barrier);
  const timeout = readDuration('timeout', barrier.spec?.timeout);

  const finish = readyDecision<BarrierStatus>(old, generation, nowIso, events);

  // Latched: an Open or Failed barrier never changes its verdict.
  if (old !== undefined && (old.phase === 'Open' || old.phase === 'Failed')) {
    return finish({ ...old }, latchedReady(old, ref));
  }

  // Arrivals.
  const previous = new Map((old?.arrivals ?? []).map((a) => [a.uid, a]));
  const present = [...indexByUid(input.pods).values()].filter(hasArrived);
  const arrivals: Arrival[] = present
    .map((p) => previous.get(p.uid) ?? { pod: p.name, uid: p.uid, arrivedAt: nowIso })
    .map((a) => ({ pod: a.pod, uid: a.uid, arrivedAt: a.arrivedAt }))
    .sort((a, b) => cmp(fromIso(a.arrivedAt) ?? now, fromIso(b.arrivedAt) ?? now) || cmp(a.uid, b.uid));
  const survivors = arrivals.some((a) => previous.has(a.uid));
  const firstArrivalAt =
    arrivals.length === 0
      ? undefined
      : survivors && old?.firstArrivalAt !== undefined
        ? old.firstArrivalAt
        : arrivals[0]?.arrivedAt;
  const count = arrivals.length;
  const of = `${count} of ${expected} expected${needed !== undefined && needed !== expected ? ` (quorum ${needed})` : ''}`;

  for (const p of present) {
    if (!previous.has(p.uid)) events.push(podEvent(p, 'Normal', 'Arrived', `arrived at ${ref}: ${of}`));
  }

  // At most MAX_ARRIVALS entries (the first arrivals; `arrived` counts all): more can only arrive in the
  // decision that opens the barrier (quorum <= expected <= MAX_EXPECTED), and status stays bounded.
  const status: BarrierStatus = {
    arrived: count,
    arrivals: arrivals.slice(0, MAX_ARRIVALS),
    phase: 'Waiting',
  };
  if (firstArrivalAt !== undefined) status.firstArrivalAt = firstArrivalAt;

  const problem =
    needed === undefined
      ? `spec.expected ${JSON.stringify(expected)} is not a positive integer`
      : timeout.kind === 'invalid'
        ? timeout.message
        : undefined;
  if (problem !== undefined) {
    return finish(status, { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: problem });
  }

  if (needed !== undefined && count >= needed) {
    status.phase = 'Open';
    status.openedAt = nowIso;
    const msg = `${ref} opened: arrived ${of}`;
    events.push(primitiveEvent('Normal', 'Opened', msg));
    for (const a of arrivals) events.push(podEvent(a, 'Normal', 'Opened', msg));
    return finish(status, { type: 'Ready', status: 'True', reason: 'Opened', message: msg });
  }

  const first = fromIso(firstArrivalAt);
  if (timeout.kind === 'valid' && first !== undefined) {
    const deadline = first + timeout.ms;
    if (deadline <= now) {
      status.phase = 'Failed';
      status.failedAt = nowIso;
      const msg = `${ref} timed out ${barrier.spec.timeout} after the first arrival: arrived ${of}`;
      events.push(primitiveEvent('Warning', 'Failed', msg));
      for (const a of arrivals) events.push(podEvent(a, 'Warning', 'Failed', msg));
      return finish(status, { type: 'Ready', status: 'False', reason: 'TimedOut', message: msg });
    }
    return finish(
      status,
      { type: 'Ready', status: 'False', reason: 'Waiting', message: `arrived ${of}` },
      Math.max(0, Math.ceil(deadline - now)),
    );
  }
  return finish(status, { type: 'Ready', status: 'False', reason: 'Waiting', message: `arrived ${of}` });
}

/**
 * What a referencing pod does at this barrier: pass once it is Open (latched, for every referencing pod,
 * whether or not it was among the arrivals), fail once it is Failed, wait otherwise. The verdict is the
 * same for every pod; `_podUid` is accepted so callers need not special-case primitives.
 */
export function barrierVerdict(status: BarrierStatus | undefined, _podUid: string): BarrierVerdict {
  if (status?.phase === 'Open') return 'pass';
  if (status?.phase === 'Failed') {
    const ready = findCondition(status.conditions, 'Ready');
    return { failed: ready?.message ?? `the barrier failed: arrived ${status.arrived}` };
  }
  return 'wait';
}

function cmp(a: number | string, b: number | string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The Barrier's row of the kind table (./kinds.ts). */
export const barrierRules: KindRules<Barrier> = {
  arbitrate: ({ primitive, pods, now }) => arbitrateBarrier({ barrier: primitive, pods, now }),
  readsPods: true,
  holders: () => [],
  grantOf: (b, uid) =>
    barrierVerdict(b.status, uid) === 'pass' ? { token: 0, grantedAt: b.status?.openedAt } : undefined,
  standing: (b, _stage, pod) => {
    const verdict = barrierVerdict(b.status, pod.uid);
    if (typeof verdict === 'object') {
      // The arbiter's own verdict ("barrier ns/x timed out 3s after the first arrival: arrived 2 of 3
      // expected"), so the pod's log, the Event and the Ready condition say the same thing.
      return { failed: { reason: 'BarrierFailed', message: verdict.failed } };
    }
    const arrived = b.status?.arrived ?? 0;
    return { waiting: { position: 0, queueLength: 0, arrived, expected: b.spec.quorum ?? b.spec.expected } };
  },
  figures: (b) => ({
    capacity: b.spec?.quorum ?? b.spec?.expected ?? 0,
    inUse: b.status?.arrived ?? 0,
    waiting: 0,
  }),
  explain: {
    use: (f) => `${f.inUse} of ${f.capacity} arrived`,
    passed: (_stage, g) => `open since ${g.grantedAt}`,
    queueReason: (b) => {
      if (b.status?.phase === 'Failed')
        return `the barrier failed: ${findCondition(b.status.conditions, 'Ready')?.message ?? 'timed out'}`;
      const need = barrierNeeded(b) ?? b.spec?.expected ?? 0;
      const arrived = b.status?.arrived ?? 0;
      return `opens at ${need} arrivals, ${arrived} arrived: ${Math.max(0, need - arrived)} more must arrive`;
    },
    waiting: (b, _stage, standing) => {
      const need = standing.expected ?? 0;
      const arrived = standing.arrived ?? 0;
      const timeout = b.spec?.timeout;
      return {
        detail: `${arrived} of ${need} pods arrived`,
        toStart: `${plural(Math.max(0, need - arrived), 'more pod')} must arrive${timeout ? ` within ${timeout} of the first arrival` : ''}`,
      };
    },
    holderColumns: 'arrivals',
    listed: (b) => ({
      rows: (b.status?.arrivals ?? []).map((a) => ({
        pod: a.pod,
        uid: a.uid,
        permits: 0,
        token: 0,
        grantedAt: a.arrivedAt,
      })),
      note: 'a barrier holds nothing: these are its arrivals (grantedAt: when each arrived)',
    }),
  },
};
