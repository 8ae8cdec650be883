import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  backoffCeiling,
  backoffDelay,
  budgetedBackoffDelay,
  EVENT_RETRY,
  RECONNECT_BACKOFF,
  type RetryBudget,
} from '../../api/backoff.ts';

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

describe('backoffCeiling', () => {
  it('doubles from the base to the maximum, without jitter', () => {
    const policy = { baseMs: 25, maxMs: 250 };
    expect([0, 1, 2, 3, 4, 5, 100, 10_000].map((n) => backoffCeiling(n, policy))).toEqual([
      25, 50, 100, 200, 250, 250, 250, 250,
    ]);
    expect(backoffCeiling(-3, policy)).toBe(25);
  });

  it('is the upper bound of backoffDelay', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), (n) => {
        expect(backoffDelay(n, () => 0.99999)).toBe(backoffCeiling(n, RECONNECT_BACKOFF));
      }),
    );
  });
});

/** The pauses a retry loop takes with `budgetedBackoffDelay` until it gives up. */
function pauses(budget: RetryBudget, random: () => number): number[] {
  const out: number[] = [];
  for (let attempt = 0, waited = 0; ; attempt++) {
    const d = budgetedBackoffDelay(attempt, waited, random, budget);
    if (d === undefined) return out;
    out.push(d);
    waited += d;
  }
}

describe('budgetedBackoffDelay', () => {
  it('gives an Event ~30 s of retries: 250 ms doubling to 15 s, the last pause cut to the budget', () => {
    expect(pauses(EVENT_RETRY, () => 0.99999)).toEqual([250, 500, 1000, 2000, 4000, 8000, 14_250]);
    const low = pauses(EVENT_RETRY, () => 0);
    expect(low.slice(0, 7)).toEqual([250, 250, 500, 1000, 2000, 4000, 7500]);
    expect(low.reduce((a, b) => a + b, 0)).toBe(30_000);
  });

  it('pauses add up to the budget exactly, each within the backoff, for any random source', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), {
          minLength: 1,
          maxLength: 40,
        }),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 100_000 }),
        (draws, baseMs, budgetMs) => {
          const budget = { baseMs, maxMs: baseMs * 60, budgetMs };
          let i = 0;
          const all = pauses(budget, () => draws[i++ % draws.length]!);
          expect(all.reduce((a, b) => a + b, 0)).toBe(budgetMs);
          for (const [n, d] of all.entries()) {
            expect(d).toBeGreaterThan(0);
            expect(d).toBeLessThanOrEqual(backoffCeiling(n, budget));
          }
        },
      ),
    );
  });

  it('gives up at once when nothing is left of the budget', () => {
    expect(budgetedBackoffDelay(0, 30_000, () => 0.5, EVENT_RETRY)).toBeUndefined();
    expect(budgetedBackoffDelay(3, 40_000, () => 0.5, EVENT_RETRY)).toBeUndefined();
    expect(budgetedBackoffDelay(0, 29_900, () => 0.5, EVENT_RETRY)).toBe(100);
  });
});
