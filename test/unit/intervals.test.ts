/** maxConcurrent: the containers' own start/end stamps -> how many ran at once. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { maxConcurrent } from '../../devcluster/intervals.ts';

describe('maxConcurrent', () => {
  it('counts overlaps; an interval ending as another starts does not overlap it', () => {
    expect(maxConcurrent([])).toBe(0);
    expect(
      maxConcurrent([
        { start: 0, end: 2 },
        { start: 2, end: 4 },
      ]),
    ).toBe(1);
    expect(
      maxConcurrent([
        { start: 0, end: 3 },
        { start: 1, end: 4 },
        { start: 2, end: 5 },
      ]),
    ).toBe(3);
    expect(
      maxConcurrent([
        { start: 0, end: 3 },
        { start: 1, end: 2 },
        { start: 2, end: 5 },
      ]),
    ).toBe(2);
  });

  it('equals the most intervals containing one point (brute force)', () => {
    const interval = fc
      .tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 20 }))
      .map(([s, d]) => ({
        start: s,
        end: s + d,
      }));
    fc.assert(
      fc.property(fc.array(interval, { maxLength: 12 }), (list) => {
        let best = 0;
        for (const p of list.map((i) => i.start)) {
          best = Math.max(best, list.filter((i) => i.start <= p && p < i.end).length);
        }
        expect(maxConcurrent(list)).toBe(best);
      }),
    );
  });
});
