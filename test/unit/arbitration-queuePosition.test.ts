import { describe, expect, it } from 'vitest';
import { arbitrateLease } from '../../controller/arbitration/lease.ts';
import { queuePosition } from '../../controller/arbitration/queuePosition.ts';
import { arbitrateSemaphore } from '../../controller/arbitration/semaphore.ts';
import { barrier, gate, lease, semaphore, T0, view } from '../helpers/arbitrationFixtures.ts';

describe('queuePosition', () => {
  it('semaphore: position in grant order, oversize requests last, holders excluded', () => {
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
    const input = { kind: 'Semaphore' as const, semaphore: sem, pods };
    expect(queuePosition(input, 'h1')).toBeUndefined();
    expect(queuePosition(input, 'gated')).toBeUndefined();
    expect(queuePosition(input, 'w1')).toEqual({
      primitive: { kind: 'Semaphore', name: 'slots', namespace: 'default' },
      position: 1,
      queueLength: 3,
      inUse: 2,
      capacity: 2,
      requested: 2,
      message: 'waiting for semaphore default/slots: position 1 of 3 (2/2 permits in use, needs 2)',
    });
    expect(queuePosition(input, 'w2')?.position).toBe(2);
    expect(queuePosition(input, 'huge')?.position).toBe(3);
    // Matches the order status.queue shows.
    expect(r.status.queue?.map((e) => e.uid)).toEqual(['w1', 'w2', 'huge']);
  });

  it('lease: position and holder', () => {
    const pods = [view('a'), view('b', { scheduledAt: T0 + 1 }), view('c', { scheduledAt: T0 + 2 })];
    const r = arbitrateLease({ lease: lease('1m'), pods, now: T0 });
    const input = { kind: 'Lease' as const, lease: lease('1m', { status: r.status }), pods };
    expect(queuePosition(input, 'a')).toBeUndefined();
    expect(queuePosition(input, 'c')).toMatchObject({
      position: 2,
      queueLength: 2,
      holder: 'pod-a',
      message: 'waiting for lease default/db: position 2 of 2 (held by pod-a)',
    });
  });

  it('barrier and gate: arrivals and unmet conditions', () => {
    const pods = [view('a'), view('b'), view('dead', { finished: true })];
    expect(queuePosition({ kind: 'Barrier', barrier: barrier(5, { quorum: 3 }), pods }, 'a')).toMatchObject({
      arrived: 2,
      expected: 3,
      message: 'waiting for barrier default/start: 2/3 arrived',
    });
    const g = gate([], {
      status: {
        phase: 'Waiting',
        conditionStatuses: [
          {
            type: 'Job',
            name: 'prep',
            namespace: 'default',
            met: false,
            message: 'job default/prep not found',
          },
        ],
      },
    });
    expect(queuePosition({ kind: 'Gate', gate: g }, 'a')?.message).toBe(
      'waiting for gate default/ready: not yet: job default/prep not found',
    );
  });
});
