/**
 * status.oldestWaitingSince (the Oldest-Wait printer column of Semaphores and Leases): the arrival of the
 * longest-waiting pod, whatever its place in the queue; absent when nobody waits.
 */
import { describe, expect, it } from 'vitest';
import { arbitrateLease } from '../../controller/arbitration/lease.ts';
import { arbitrateSemaphore } from '../../controller/arbitration/semaphore.ts';
import { lease, semaphore, T0, view } from '../helpers/arbitrationFixtures.ts';

const iso = (ms: number) => new Date(ms).toISOString();

describe('status.oldestWaitingSince', () => {
  it('Semaphore: the earliest arrival among the waiters (a high-priority late pod does not hide it), oversize ones included', () => {
    const pods = [
      view('holder', { scheduledAt: T0 - 100_000 }),
      view('early', { scheduledAt: T0 - 60_000 }),
      view('urgent', { scheduledAt: T0 - 1_000, priority: 9 }),
      view('huge', { scheduledAt: T0 - 90_000, permits: 5 }),
    ];
    const held = semaphore(1, {
      status: {
        inUse: 1,
        available: 0,
        phase: 'Full',
        holders: [{ pod: 'pod-holder', uid: 'holder', permits: 1, token: 1, grantedAt: iso(T0 - 100_000) }],
        waiting: 0,
        nextToken: 2,
      },
    });
    const r = arbitrateSemaphore({ semaphore: held, pods, now: T0 });
    expect(r.status.holders.map((h) => h.uid)).toEqual(['holder']);
    expect(r.status.oldestWaitingSince).toBe(iso(T0 - 90_000));
    const none = arbitrateSemaphore({ semaphore: semaphore(2), pods: [view('a'), view('b')], now: T0 });
    expect(none.status.waiting).toBe(0);
    expect(none.status.oldestWaitingSince).toBeUndefined();
  });

  it('Lease: the earliest arrival among the pods behind the holder', () => {
    const pods = [
      view('first', { scheduledAt: T0 - 50_000 }),
      view('second', { scheduledAt: T0 - 20_000 }),
      view('third', { scheduledAt: T0 - 30_000 }),
    ];
    const r = arbitrateLease({ lease: lease('1m'), pods, now: T0 });
    expect(r.status.holder?.uid).toBe('first');
    expect(r.status.oldestWaitingSince).toBe(iso(T0 - 30_000));
    const alone = arbitrateLease({ lease: lease('1m'), pods: [view('only')], now: T0 });
    expect(alone.status.oldestWaitingSince).toBeUndefined();
  });
});
