/**
 * The bounds of every number and duration a user gives konductor, in ONE place: the annotation parser
 * (api/annotations.ts), the duration parser (api/duration.ts), the arbitration core and the CRD schemas
 * (charts/konductor/files/crds, checked against these by test/unit/crds.test.ts) all read them, so a value
 * accepted at admission is accepted by the schema and handled by the controller, and vice versa.
 *
 * Why these values:
 * - MAX_PERMITS / MAX_EXPECTED: a primitive's status lists its holders (or a barrier's arrivals) one entry
 *   each; 1,000 entries with the longest pod names (253 characters) are ~450 KiB, well inside etcd's
 *   1.5 MiB object limit, so a status write is never refused for its size in a valid configuration.
 *   (Throttle more pods with several primitives, or with konductor.io/permits > 1.)
 * - PRIORITY_MIN / PRIORITY_MAX: the range of user-defined PriorityClass values (+-1e9).
 * - MAX_DURATION_MS (8760h, one year): far beyond any real wait or hold, far below what overflows a Go
 *   time.Duration (the CRD's CEL rule converts to one, ~2,562,047h) or what a fencing deadline can
 *   represent. Node's timers cannot take more than ~596h in one go: api/longTimer.ts chains them.
 * - MAX_TOKEN: fencing tokens are JSON numbers read by any language; 2^53-1 is exact everywhere.
 */

/** Most permits a Semaphore may have (spec.permits) and a pod may ask for (konductor.io/permits). */
export const MAX_PERMITS = 1000;

/** Most pods a Barrier may expect (spec.expected, spec.quorum). */
export const MAX_EXPECTED = 1000;

/** Most entries in a Semaphore's status.holders (equal to MAX_PERMITS: a holder holds >= 1 permit). */
export const MAX_HOLDERS = MAX_PERMITS;

/** Most entries in a Barrier's status.arrivals (the first arrivals; status.arrived counts them all). */
export const MAX_ARRIVALS = MAX_EXPECTED;

/** Queue priority bounds (konductor.io/priority, Lease spec.priority). */
export const PRIORITY_MIN = -1_000_000_000;
export const PRIORITY_MAX = 1_000_000_000;

/** Longest duration anywhere (ttl, timeout, konductor.io/wait-timeout): 8760h. */
export const MAX_DURATION_MS = 8760 * 3_600_000;
/** MAX_DURATION_MS as a Go duration, as the CRD's CEL rules and the messages say it. */
export const MAX_DURATION = '8760h';

/** Largest fencing token (Number.MAX_SAFE_INTEGER). */
export const MAX_TOKEN = Number.MAX_SAFE_INTEGER;

/** Most conditions a Gate may have (spec.conditions). */
export const MAX_GATE_CONDITIONS = 64;

/** Longest message konductor writes into a condition or a gate condition status (keeps status compact). */
export const MAX_STATUS_MESSAGE = 1024;
