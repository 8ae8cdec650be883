import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DURATION_INVALID,
  DURATION_PATTERN,
  DURATION_TOO_LONG,
  durationNanos,
  formatDuration,
  isDuration,
  parseBoundedDuration,
  parseDuration,
} from '../../api/duration.ts';
import { isKonductorError } from '../../api/errors.ts';
import { MAX_DURATION_MS } from '../../api/limits.ts';

const UNITS = ['ns', 'us', 'µs', 'μs', 'ms', 's', 'm', 'h'] as const;
const pattern = new RegExp(DURATION_PATTERN);

describe('parseDuration', () => {
  it.each([
    ['0', 0],
    ['0s', 0],
    ['300ms', 300],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['0.1h', 360_000],
    ['1h0m5s', 3_605_000],
    ['2m3.25s', 123_250],
    ['1500us', 1.5],
    ['1500µs', 1.5],
    ['1500μs', 1.5],
    ['2000000ns', 2],
    ['1s1s', 2000],
  ])('parses %j as %d ms', (s, ms) => {
    expect(parseDuration(s)).toBe(ms);
  });

  it.each([
    '',
    '5',
    '-5m',
    '+5m',
    '5 m',
    ' 5m',
    'm',
    '.5s',
    '5.s',
    '1d',
    '5M',
    '1h-30m',
    'abc',
    'NaN',
    'Infinity',
    '1e3s',
    '00',
  ])('rejects %j with KDR_DURATION_INVALID', (s) => {
    let caught: unknown;
    try {
      parseDuration(s);
    } catch (err) {
      caught = err;
    }
    expect(isKonductorError(caught) && caught.code === DURATION_INVALID).toBe(true);
    expect(isDuration(s)).toBe(false);
  });

  it('rejects values beyond the safe integer range', () => {
    expect(() => parseDuration(`${'9'.repeat(400)}h`)).toThrow(/out of range/);
  });

  it('rejects non-strings without crashing', () => {
    expect(isDuration(undefined as unknown as string)).toBe(false);
    expect(isDuration(30 as unknown as string)).toBe(false);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [300, '300ms'],
    [1500, '1.5s'],
    [30_000, '30s'],
    [300_000, '5m'],
    [5_400_000, '1h30m'],
    [3_605_000, '1h5s'],
    [61_500, '1m1.5s'],
    [1.5, '1.5ms'],
  ])('formats %d ms as %j', (ms, s) => {
    expect(formatDuration(ms)).toBe(s);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('refuses %d', (ms) => {
    expect(() => formatDuration(ms)).toThrow();
  });

  it('round-trips every whole number of milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 * 365 * 24 * 3_600_000 }), (ms) => {
        const s = formatDuration(ms);
        expect(pattern.test(s)).toBe(true);
        expect(parseDuration(s)).toBe(ms);
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips microsecond-precision values', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000_000_000 }), (us) => {
        const ms = us / 1000;
        expect(parseDuration(formatDuration(ms))).toBeCloseTo(ms, 6);
      }),
    );
  });
});

describe('DURATION_PATTERN and parseDuration agree', () => {
  const term = fc
    .tuple(
      fc.nat({ max: 100_000 }),
      fc.option(fc.nat({ max: 999 }), { nil: undefined }),
      fc.constantFrom(...UNITS),
    )
    .map(([n, frac, unit]) => `${n}${frac === undefined ? '' : `.${frac}`}${unit}`);
  const validDuration = fc.array(term, { minLength: 1, maxLength: 4 }).map((ts) => ts.join(''));

  it('accepts, and the parser accepts, every generated valid duration', () => {
    fc.assert(
      fc.property(validDuration, (s) => {
        expect(pattern.test(s)).toBe(true);
        expect(parseDuration(s)).toBeGreaterThanOrEqual(0);
      }),
    );
  });

  // The pattern is the CRD schema's and cannot bound a number: a well-formed duration beyond the safe
  // integer range of milliseconds (a mutation that inserts a digit) matches it and is refused as out of range.
  // Everything else must agree exactly.
  function expectAgreement(s: string): void {
    if (!pattern.test(s)) {
      expect(isDuration(s)).toBe(false);
      return;
    }
    if (isDuration(s)) return;
    expect(() => parseDuration(s)).toThrow(/out of range/);
    expect(Number(durationNanos(s)) / 1e6).toBeGreaterThan(Number.MAX_SAFE_INTEGER * 0.999_999);
  }

  it('a well-formed duration past the safe range matches the pattern and is refused as out of range', () => {
    // The counterexample CI found (seed 545361537): 2501999793h is 9.0072e15 ms, just past 2^53 - 1.
    expectAgreement('10000.100ns2501999793h');
    expect(isDuration('10000.100ns2501999793h')).toBe(false);
    expectAgreement('2501999792h');
    expect(isDuration('2501999792h')).toBe(true);
  });

  it('agree on arbitrary and mutated strings', () => {
    const mutated = fc
      .tuple(validDuration, fc.nat(), fc.constantFrom('', '-', '+', ' ', '.', 'x', 'd', '1', 'h', 'µ', '0'))
      .map(([s, i, c]) => {
        const at = i % (s.length + 1);
        return s.slice(0, at) + c + s.slice(at + (c === '' ? 1 : 0));
      });
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), mutated), (s) => {
        expectAgreement(s);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('the duration bound (MAX_DURATION, 8760h)', () => {
  it('parseBoundedDuration accepts up to 8760h exactly and refuses one nanosecond more, readably', () => {
    expect(parseBoundedDuration('8760h')).toBe(MAX_DURATION_MS);
    expect(parseBoundedDuration('525600m')).toBe(MAX_DURATION_MS);
    expect(parseBoundedDuration('600h')).toBe(600 * 3_600_000);
    for (const s of ['8760h1ns', '8761h', '2500000000h', `${'9'.repeat(400)}h`]) {
      let caught: unknown;
      try {
        parseBoundedDuration(s);
      } catch (err) {
        caught = err;
      }
      expect(isKonductorError(caught) && caught.code === DURATION_TOO_LONG, s).toBe(true);
      expect((caught as Error).message).toBe(
        `duration ${JSON.stringify(s)} is too long: it must be at most 8760h (one year)`,
      );
    }
  });

  it('durationNanos is exact where Go (and CEL) are exact, and agrees with parseDuration', () => {
    expect(durationNanos('1h30m')).toBe(5_400_000_000_000n);
    expect(durationNanos('1.5h')).toBe(5_400_000_000_000n);
    expect(durationNanos('0.000000001s')).toBe(1n);
    expect(durationNanos('0.0000000019s')).toBe(1n); // Go truncates below a nanosecond
    expect(durationNanos('1500µs')).toBe(1_500_000n);
    const term = fc
      .tuple(
        fc.nat({ max: 100_000 }),
        fc.option(fc.nat({ max: 999 }), { nil: undefined }),
        fc.constantFrom(...UNITS),
      )
      .map(([n, f, u]) => `${n}${f === undefined ? '' : `.${f}`}${u}`);
    fc.assert(
      fc.property(fc.array(term, { minLength: 1, maxLength: 4 }), (terms) => {
        const s = terms.join('');
        expect(Number(durationNanos(s)) / 1e6).toBeCloseTo(parseDuration(s), 2);
      }),
    );
  });
});
