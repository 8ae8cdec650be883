/**
 * Go-style duration strings (`300ms`, `30s`, `5m`, `1h30m`, `1.5h`, `0`), as used by the CRDs' ttl/timeout
 * fields and the konductor.io/wait-timeout annotation.
 *
 * The accepted grammar is the non-negative subset of Go's time.ParseDuration: one or more
 * `<number><unit>` terms, number = digits with an optional `.digits` fraction, unit one of
 * ns, us, µs, μs, ms, s, m, h; or the bare `0`. Signs are rejected (no negative durations), and so are
 * Go's lax forms `.5s` / `5.s` so that the CRD schema pattern below and this parser agree exactly
 * (test/unit/duration.test.ts keeps them in sync).
 */
import { type ErrorCode, konductorError } from './errors.ts';
import { MAX_DURATION, MAX_DURATION_MS } from './limits.ts';

/** Pattern used by the CRD OpenAPI schemas (RE2- and ECMAScript-compatible). */
export const DURATION_PATTERN = '^(0|([0-9]+(\\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h))+)$';

export const DURATION_INVALID = 'KDR_DURATION_INVALID' satisfies ErrorCode;
export const DURATION_TOO_LONG = 'KDR_DURATION_TOO_LONG' satisfies ErrorCode;

/**
 * The CEL rule every duration field of the CRDs carries (the schema pattern cannot say "at most"); its
 * message is DURATION_TOO_LONG_MESSAGE, the same words the annotation parser uses.
 */
export const DURATION_BOUND_RULE = `duration(self) <= duration('${MAX_DURATION}')`;
export const DURATION_TOO_LONG_MESSAGE = `must be at most ${MAX_DURATION} (one year)`;

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3, // U+00B5 micro sign
  μs: 1e-3, // U+03BC greek small letter mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const WHOLE = new RegExp(DURATION_PATTERN);

/** Parses a Go duration string into milliseconds (possibly fractional below 1 ms). */
export function parseDuration(s: string): number {
  if (typeof s !== 'string' || !WHOLE.test(s)) {
    throw konductorError(
      DURATION_INVALID,
      `${JSON.stringify(s)} is not a duration (expected a Go duration such as "30s", "5m", "1h30m", "1.5h")`,
    );
  }
  if (s === '0') return 0;
  const term = /([0-9]+(?:\.[0-9]+)?)(ns|us|µs|μs|ms|s|m|h)/g;
  let total = 0;
  for (const m of s.matchAll(term)) {
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  }
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) {
    throw konductorError(DURATION_INVALID, `duration ${JSON.stringify(s)} is out of range`);
  }
  // Scaling by fractional unit factors can leave float noise (e.g. 0.1h); snap to a microsecond.
  return Math.round(total * 1000) / 1000;
}

/**
 * parseDuration, bounded by MAX_DURATION_MS (api/limits.ts): what every user-given duration (ttl, timeout,
 * konductor.io/wait-timeout) goes through. Throws KDR_DURATION_TOO_LONG beyond it.
 */
export function parseBoundedDuration(s: string): number {
  if (typeof s === 'string' && WHOLE.test(s) && durationNanos(s) > MAX_DURATION_NANOS) {
    throw konductorError(DURATION_TOO_LONG, JSON.stringify(s), DURATION_TOO_LONG_MESSAGE);
  }
  return parseDuration(s);
}

const UNIT_NANOS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1000n,
  µs: 1000n,
  μs: 1000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const MAX_DURATION_NANOS = BigInt(MAX_DURATION_MS) * 1_000_000n;

/**
 * The exact length in nanoseconds of a duration matching DURATION_PATTERN, as Go's time.ParseDuration
 * computes it (fractions truncated to the nanosecond) but without its overflow: so the bound check says
 * exactly what the CRD's CEL rule (`duration(self) <= duration('8760h')`) says, down to the nanosecond.
 */
export function durationNanos(s: string): bigint {
  let total = 0n;
  for (const m of s.matchAll(/([0-9]+)(?:\.([0-9]+))?(ns|us|µs|μs|ms|s|m|h)/g)) {
    const unit = UNIT_NANOS[m[3] as string] as bigint;
    const fraction = m[2] ?? '';
    total += BigInt(m[1] as string) * unit;
    if (fraction !== '') total += (BigInt(fraction) * unit) / 10n ** BigInt(fraction.length);
  }
  return total;
}

/** True when parseDuration accepts `s`. */
export function isDuration(s: string): boolean {
  try {
    parseDuration(s);
    return true;
  } catch {
    return false;
  }
}

/**
 * Formats milliseconds as a compact Go duration that parseDuration reads back to the same value:
 * `0s`, `300ms`, `1.5s`, `5m`, `1h30m`, `1h0m5s` is written `1h5s`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) {
    throw konductorError(DURATION_INVALID, `cannot format ${ms} ms as a duration`);
  }
  if (ms === 0) return '0s';
  if (ms < 1000) return `${trimFraction(ms, 3)}ms`;
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const restMs = ms - hours * 3_600_000 - minutes * 60_000;
  let out = '';
  if (hours > 0) out += `${hours}h`;
  if (minutes > 0) out += `${minutes}m`;
  if (restMs > 0) out += `${trimFraction(restMs / 1000, 6)}s`;
  return out;
}

/** Fixed-point without exponent notation, trailing zeros removed. */
function trimFraction(n: number, digits: number): string {
  const fixed = n.toFixed(digits);
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}
