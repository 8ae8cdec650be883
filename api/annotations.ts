/**
 * The one parser of konductor's pod annotations (DESIGN §2), shared by the webhook (which denies syntax
 * errors at admission) and the controller (which reads what a managed pod asks for).
 *
 * Pure: no I/O, never throws. Only keys under `konductor.io/` are looked at; everything else is ignored,
 * and so are the keys the webhook writes itself (RESERVED_ANNOTATIONS). Values are trimmed of surrounding
 * whitespace. Every problem is reported (not just the first), each naming the annotation and the accepted form.
 */
import {
  ANNOTATION_PREFIX,
  ANNOTATIONS,
  RESERVED_ANNOTATIONS,
  WAIT_MODES,
  type WaitMode,
} from './constants.ts';
import { DURATION_TOO_LONG, DURATION_TOO_LONG_MESSAGE, parseBoundedDuration } from './duration.ts';
import { isKonductorError } from './errors.ts';
import { ACQUISITION_ORDER, KINDS, PRIMITIVE_KINDS, type PrimitiveKind } from './kinds.ts';
import { MAX_PERMITS, PRIORITY_MAX, PRIORITY_MIN } from './limits.ts';

/** What a pod asks of one primitive: its name, and the permits of a counted kind. */
export interface KindRequest {
  name: string;
  permits?: number;
}

/** Per kind, by its singular name (`semaphore: {name, permits}`, `lease: {name}`, ...): from the kind table. */
type KindRequests = {
  [K in PrimitiveKind as (typeof KINDS)[K]['singular']]?: (typeof KINDS)[K]['holds'] extends 'permits'
    ? { name: string; permits: number }
    : { name: string };
};

export type KonductorRequest = KindRequests & {
  /** Queue priority, higher first; 0 when not annotated. */
  priority: number;
  /** Give up waiting after this many milliseconds; absent = wait forever. */
  waitTimeoutMs?: number;
  /** konductor.io/wait-mode; absent = the manager's default (the webhook records it on the pod it injects). */
  waitMode?: WaitMode;
  /**
   * konductor.io/start-timeout (scheduling-gate mode): a pod granted everything but still not on a node this
   * long after its gate was removed gives its grants back. Absent = the manager's default (recorded the same way).
   */
  startTimeoutMs?: number;
};

/** What the request asks of one kind, if anything. */
export function requestOf(request: KonductorRequest, kind: PrimitiveKind): KindRequest | undefined {
  return (request as unknown as Record<string, KindRequest | undefined>)[KINDS[kind].singular];
}

export interface AnnotationProblem {
  annotation: string;
  value: string;
  /** Names the annotation and the accepted form. */
  message: string;
}

export type ParseResult =
  | { ok: true; request: KonductorRequest | null /* null: no konductor.io/ annotations at all */ }
  | { ok: false; problems: AnnotationProblem[] };

/** A primitive a pod must pass before it starts. */
export interface PrimitiveRef {
  kind: PrimitiveKind;
  name: string;
  /** Units held once granted: the semaphore's permits, 1 for a lease, 0 for a barrier or gate (they hold nothing). */
  permits: number;
}

/** Re-exported for importers of the parser; defined in api/limits.ts with the CRDs' bounds. */
export { MAX_PERMITS, PRIORITY_MAX, PRIORITY_MIN };

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_SUBDOMAIN_MAX = 253;

const USER_KEYS: readonly string[] = Object.values(ANNOTATIONS);
const PRIMITIVE_KEYS: readonly string[] = PRIMITIVE_KINDS.map((k) => KINDS[k].annotation);
/** The kinds konductor.io/permits applies to. */
const COUNTED = PRIMITIVE_KINDS.filter((k) => KINDS[k].holds === 'permits');
const COUNTED_NAMES = COUNTED.map((k) => KINDS[k].singular).join(' or ');

/** True for a Kubernetes object name that is a DNS-1123 subdomain (what every konductor primitive's name is). */
export function isDns1123Subdomain(name: string): boolean {
  return name.length <= DNS1123_SUBDOMAIN_MAX && DNS1123_SUBDOMAIN.test(name);
}

/** True when the map carries any user-facing `konductor.io/` annotation (known or not; reserved keys aside). */
export function hasKonductorAnnotations(annotations?: Record<string, string>): boolean {
  if (!annotations) return false;
  return Object.keys(annotations).some(isUserKey);
}

function isUserKey(key: string): boolean {
  return key.startsWith(ANNOTATION_PREFIX) && !RESERVED_ANNOTATIONS.includes(key);
}

export function parseAnnotations(annotations: Record<string, string> | undefined): ParseResult {
  if (!annotations || typeof annotations !== 'object') return { ok: true, request: null };
  const problems: AnnotationProblem[] = [];
  const problem = (annotation: string, value: string, message: string): void => {
    problems.push({ annotation, value, message });
  };
  const present = Object.keys(annotations).filter(isUserKey);
  if (present.length === 0) return { ok: true, request: null };

  for (const key of present) {
    if (!USER_KEYS.includes(key)) {
      problem(
        key,
        String(annotations[key]),
        `annotation ${key} is not a konductor annotation (known annotations: ${USER_KEYS.join(', ')})`,
      );
    }
  }

  const read = (key: string): string | undefined => {
    const v = annotations[key];
    if (v === undefined) return undefined;
    return typeof v === 'string' ? v.trim() : String(v);
  };

  const nameOf = (key: string): string | undefined => {
    const v = read(key);
    if (v === undefined) return undefined;
    if (!isDns1123Subdomain(v)) {
      problem(
        key,
        v,
        `annotation ${key}: ${JSON.stringify(v)} is not a valid object name (expected a DNS-1123 subdomain: ` +
          `lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 ` +
          `characters, e.g. ${key}: "batch-slots")`,
      );
      return undefined;
    }
    return v;
  };

  /** A positive Go duration of at most 8760h, in ms; undefined (and a problem) otherwise. */
  const durationOf = (key: string): number | undefined => {
    const raw = read(key);
    if (raw === undefined) return undefined;
    let ms = Number.NaN;
    let tooLong = false;
    try {
      ms = parseBoundedDuration(raw);
    } catch (err) {
      tooLong = isKonductorError(err) && err.code === DURATION_TOO_LONG;
    }
    const example = `(expected e.g. ${key}: "10m", "30s" or "1h30m")`;
    if (tooLong) {
      problem(
        key,
        raw,
        `annotation ${key}: ${JSON.stringify(raw)} is too long: it ${DURATION_TOO_LONG_MESSAGE} ${example}`,
      );
      return undefined;
    }
    if (!(ms > 0)) {
      problem(
        key,
        raw,
        `annotation ${key}: ${JSON.stringify(raw)} is not a positive duration (expected a Go duration, e.g. ${key}: "10m", "30s" or "1h30m")`,
      );
      return undefined;
    }
    return ms;
  };

  const request: KonductorRequest = { priority: 0 };

  const names = new Map<PrimitiveKind, string>();
  for (const kind of PRIMITIVE_KINDS) {
    const name = nameOf(KINDS[kind].annotation);
    if (name !== undefined) names.set(kind, name);
  }

  let permits = 1;
  const permitsRaw = read(ANNOTATIONS.permits);
  if (permitsRaw !== undefined) {
    const n = /^[0-9]+$/.test(permitsRaw) ? Number(permitsRaw) : Number.NaN;
    if (!(n >= 1)) {
      problem(
        ANNOTATIONS.permits,
        permitsRaw,
        `annotation ${ANNOTATIONS.permits}: ${JSON.stringify(permitsRaw)} is not a positive integer ` +
          `(expected e.g. ${ANNOTATIONS.permits}: "2")`,
      );
    } else if (n > MAX_PERMITS) {
      problem(
        ANNOTATIONS.permits,
        permitsRaw,
        `annotation ${ANNOTATIONS.permits}: ${JSON.stringify(permitsRaw)} is more than ${MAX_PERMITS}, the most ` +
          `permits a ${COUNTED.join(' or ')} can have (expected an integer from 1 to ${MAX_PERMITS}, e.g. ${ANNOTATIONS.permits}: "2")`,
      );
    } else {
      permits = n;
    }
    if (COUNTED.every((k) => annotations[KINDS[k].annotation] === undefined)) {
      problem(
        ANNOTATIONS.permits,
        permitsRaw,
        `annotation ${ANNOTATIONS.permits} only applies to a ${COUNTED_NAMES} (expected together with ` +
          `${COUNTED.map((k) => `${KINDS[k].annotation}: "NAME"`).join(' or ')})`,
      );
    }
  }

  const priorityRaw = read(ANNOTATIONS.priority);
  if (priorityRaw !== undefined) {
    const n = /^[-+]?[0-9]+$/.test(priorityRaw) ? Number(priorityRaw) : Number.NaN;
    if (!(n >= PRIORITY_MIN && n <= PRIORITY_MAX)) {
      problem(
        ANNOTATIONS.priority,
        priorityRaw,
        `annotation ${ANNOTATIONS.priority}: ${JSON.stringify(priorityRaw)} is not an integer between ` +
          `${PRIORITY_MIN} and ${PRIORITY_MAX} (expected e.g. ${ANNOTATIONS.priority}: "10"; higher goes first)`,
      );
    } else {
      request.priority = n === 0 ? 0 : n; // normalise -0
    }
  }

  const waitTimeout = durationOf(ANNOTATIONS.waitTimeout);
  if (waitTimeout !== undefined) request.waitTimeoutMs = waitTimeout;

  const modeRaw = read(ANNOTATIONS.waitMode);
  if (modeRaw !== undefined) {
    const mode = WAIT_MODES.find((m) => m === modeRaw);
    if (mode === undefined) {
      problem(
        ANNOTATIONS.waitMode,
        modeRaw,
        `annotation ${ANNOTATIONS.waitMode}: ${JSON.stringify(modeRaw)} is not a wait mode (expected ` +
          `${WAIT_MODES.map((m) => `${ANNOTATIONS.waitMode}: "${m}"`).join(' or ')})`,
      );
    } else {
      request.waitMode = mode;
    }
  }

  if (modeRaw === 'scheduling-gate' && annotations[ANNOTATIONS.waitTimeout] !== undefined) {
    // konductor-wait counts the wait timeout, and a gated pod starts it only once granted.
    problem(
      ANNOTATIONS.waitTimeout,
      String(read(ANNOTATIONS.waitTimeout)),
      `annotation ${ANNOTATIONS.waitTimeout} does not apply to ${ANNOTATIONS.waitMode}: "scheduling-gate" (the ` +
        'pod waits unscheduled, and konductor-wait, which counts the timeout, starts only once it is granted; ' +
        `use ${ANNOTATIONS.waitMode}: "init-container", or remove ${ANNOTATIONS.waitTimeout})`,
    );
  }

  const startTimeout = durationOf(ANNOTATIONS.startTimeout);
  if (startTimeout !== undefined) request.startTimeoutMs = startTimeout;
  if (modeRaw === 'init-container' && annotations[ANNOTATIONS.startTimeout] !== undefined) {
    problem(
      ANNOTATIONS.startTimeout,
      String(read(ANNOTATIONS.startTimeout)),
      `annotation ${ANNOTATIONS.startTimeout} only applies to ${ANNOTATIONS.waitMode}: "scheduling-gate" (a pod ` +
        `in init-container mode is on a node before it is granted; remove one of the two)`,
    );
  }

  const anyPrimitive = PRIMITIVE_KEYS.some((k) => annotations[k] !== undefined);
  if (!anyPrimitive) {
    // (konductor.io/permits without a semaphore is already reported above.)
    for (const key of [
      ANNOTATIONS.priority,
      ANNOTATIONS.waitTimeout,
      ANNOTATIONS.waitMode,
      ANNOTATIONS.startTimeout,
    ]) {
      const v = read(key);
      if (v === undefined) continue;
      problem(
        key,
        v,
        `annotation ${key} needs a primitive to wait for (expected together with one of ${PRIMITIVE_KEYS.join(', ')})`,
      );
    }
  }

  if (problems.length > 0) return { ok: false, problems };

  for (const [kind, name] of names) {
    const asked: KindRequest = KINDS[kind].holds === 'permits' ? { name, permits } : { name };
    (request as unknown as Record<string, KindRequest>)[KINDS[kind].singular] = asked;
  }
  return { ok: true, request };
}

/**
 * The primitives a request names, in ACQUISITION ORDER (the kind table's `order`): gate, barrier, lease,
 * semaphore.
 *
 * Why this order: a pod first waits on the things that hold nothing (a gate, then a barrier), and only
 * then takes exclusive or counted resources, so it never sits on a permit while it waits at a gate or a
 * barrier — a barrier waiting for pods that themselves wait for that permit would otherwise deadlock.
 * Among held resources the order is fixed globally (Lease before Semaphore), so two pods can never each
 * hold what the other waits for (the classic lock-ordering argument).
 */
export function primitivesOf(req: KonductorRequest): PrimitiveRef[] {
  const out: PrimitiveRef[] = [];
  for (const kind of ACQUISITION_ORDER) {
    const asked = requestOf(req, kind);
    if (!asked) continue;
    const holds = KINDS[kind].holds;
    const permits = holds === 'permits' ? (asked.permits ?? 1) : holds === 'exclusive' ? 1 : 0;
    out.push({ kind, name: asked.name, permits });
  }
  return out;
}
