/**
 * THE KIND TABLE, controller half: each kind's rules (kindRules.ts), exported by its arbitrate file. The
 * other half (names, annotation, acquisition order, what a grant holds, the object's types) is api/kinds.ts;
 * the compiler keeps this one complete for every kind listed there.
 *
 * The reconciler, the agent API's wait stream, the metrics and `kubectl konductor` read the kinds only through
 * this table: none of them names a kind.
 */
import type { KINDS, PrimitiveKind } from '../../api/kinds.ts';
import type { Primitive } from '../../api/types.ts';
import { barrierRules } from './barrier.ts';
import { gateRules } from './gate.ts';
import type { KindRules } from './kindRules.ts';
import { leaseRules } from './lease.ts';
import { semaphoreRules } from './semaphore.ts';

export const KIND_RULES = {
  Semaphore: semaphoreRules,
  Lease: leaseRules,
  Barrier: barrierRules,
  Gate: gateRules,
} satisfies { [K in keyof typeof KINDS]: KindRules<Extract<Primitive, { kind: K }>> };

/** The rules of a kind, for a primitive of that kind. */
export function rulesOf(kind: PrimitiveKind): KindRules<Primitive> {
  return KIND_RULES[kind] as unknown as KindRules<Primitive>;
}
