import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, RECONNECT_BACKOFF } from '../../api/backoff.ts';

describe('backoffDelay', () => {
  it('starts at the base delay and caps at the maximum', () => {
    expect(backoffDelay(0, () => 0)).toBe(100);
    expect(backoffDelay(0, () => 0.999)).toBe(100);
    expect(backoffDelay(1, () => 0.999)).toBe(200);
    expect(backoffDelay(3, () => 0)).toBe(400);
    expect(backoffDelay(3, () => 0.999)).toBe(800);
    expect(backoffDelay(20, () => 0.9999)).toBe(3000);
    expect(backoffDelay(20, () => 0)).toBe(1500);
    expect(backoffDelay(10_000, () => 0.5)).toBe(2250);
  });

  it('stays within [base, max] and within the upper half of its ceiling for any attempt and random', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (n, r) => {
          const d = backoffDelay(n, () => r);
          const ceiling = Math.min(RECONNECT_BACKOFF.maxMs, RECONNECT_BACKOFF.baseMs * 2 ** Math.min(n, 62));
          expect(d).toBeGreaterThanOrEqual(RECONNECT_BACKOFF.baseMs);
          expect(d).toBeLessThanOrEqual(RECONNECT_BACKOFF.maxMs);
          expect(d).toBeGreaterThanOrEqual(Math.floor(ceiling / 2));
          expect(d).toBeLessThanOrEqual(ceiling);
        },
      ),
    );
  });

  it('never shrinks its range as attempts grow', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 }), (n) => {
        expect(backoffDelay(n + 1, () => 0)).toBeGreaterThanOrEqual(backoffDelay(n, () => 0));
        expect(backoffDelay(n + 1, () => 0.999)).toBeGreaterThanOrEqual(backoffDelay(n, () => 0.999));
      }),
    );
  });

  it('treats a broken random source as no jitter instead of returning NaN', () => {
    expect(backoffDelay(3, () => Number.NaN)).toBe(400);
    expect(backoffDelay(3, () => 7)).toBe(800);
  });

  it('uses the injected random source (jitter)', () => {
    expect(backoffDelay(5, () => 0.1)).not.toBe(backoffDelay(5, () => 0.9));
    expect(backoffDelay(2, () => 0.5, { baseMs: 10, maxMs: 1000 })).toBe(30);
  });
});
