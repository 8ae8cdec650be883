/**
 * Time helpers for the arbitration core. Time is always an input (`now`, epoch milliseconds); these only
 * convert between milliseconds, RFC 3339 strings and Go duration strings.
 */
import { DURATION_TOO_LONG, DURATION_TOO_LONG_MESSAGE, parseBoundedDuration } from '../../api/duration.ts';
import { isKonductorError } from '../../api/errors.ts';

/** RFC 3339 with milliseconds, as the API server accepts it in status fields. */
export function toIso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Epoch milliseconds of an RFC 3339 string; undefined when absent or unparsable. */
export function fromIso(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

export type DurationField =
  | { kind: 'absent' }
  | { kind: 'valid'; ms: number }
  | { kind: 'invalid'; message: string };

/**
 * Reads an optional duration field of a spec (ttl, timeout). A zero duration is invalid: a ttl of zero
 * would expire every grant in the decision that made it (the CRD schema rejects it too); so is one longer
 * than MAX_DURATION (api/limits.ts; the CRD's CEL rule rejects it too: this is the second line of defence
 * for objects stored under an older schema).
 */
export function readDuration(field: string, value: string | undefined): DurationField {
  if (value === undefined || value === '') return { kind: 'absent' };
  let ms: number;
  try {
    ms = parseBoundedDuration(value);
  } catch (err) {
    if (isKonductorError(err) && err.code === DURATION_TOO_LONG) {
      return {
        kind: 'invalid',
        message: `spec.${field} ${JSON.stringify(value)} ${DURATION_TOO_LONG_MESSAGE}`,
      };
    }
    return {
      kind: 'invalid',
      message: `spec.${field} ${JSON.stringify(value)} is not a Go duration such as "5m"`,
    };
  }
  if (!(ms > 0)) return { kind: 'invalid', message: `spec.${field} must be longer than zero` };
  return { kind: 'valid', ms };
}
