import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_WAIT_STREAMS_PER_POD, WaitStreamLimiter } from '../../controller/waitStreams.ts';

describe('WaitStreamLimiter', () => {
  it('a stream beyond the cap closes the pod’s oldest; other pods are not affected', () => {
    const limiter = new WaitStreamLimiter();
    expect(limiter.maxPerPod).toBe(MAX_WAIT_STREAMS_PER_POD);
    const closed: string[] = [];
    const leave = (name: string, uid = 'pod-a') => limiter.admit(uid, () => closed.push(name));
    leave('a1');
    leave('b1', 'pod-b');
    const a2 = leave('a2');
    expect(closed).toEqual([]);
    leave('a3');
    expect(closed).toEqual(['a1']);
    expect(limiter.count('pod-a')).toBe(2);
    a2();
    expect(limiter.count('pod-a')).toBe(1);
    leave('a4');
    expect(closed).toEqual(['a1']);
    expect(limiter.count('pod-b')).toBe(1);
  });

  it('never holds more than the cap open per pod, whatever the order of opens and ends', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.oneof(fc.constant('open' as const), fc.nat({ max: 20 })), { maxLength: 60 }),
        (cap, ops) => {
          const limiter = new WaitStreamLimiter(cap);
          const open = new Set<number>();
          const leaves: (() => void)[] = [];
          ops.forEach((op, i) => {
            if (op === 'open') {
              open.add(i);
              leaves[i] = limiter.admit('p', () => open.delete(i));
            } else if (leaves[op]) {
              open.delete(op);
              leaves[op]();
            }
            expect(open.size).toBe(limiter.count('p'));
            expect(open.size).toBeLessThanOrEqual(cap);
          });
        },
      ),
    );
  });
});
