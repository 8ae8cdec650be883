/**
 * THE KIND TABLE (docs/architecture.md, "The kind table"): one record per primitive kind, with what every layer
 * may know of it, and the shape of its object (its spec and status, as the API server returns them).
 * The controller's half of the table — what each kind decides — is controller/arbitration/kinds.ts, which the
 * compiler keeps complete for every kind listed here.
 *
 * Adding a kind touches this file (its record and its types), controller/arbitration/kinds.ts (one line), its
 * CRD (charts/konductor/files/crds/<plural>.sync.konductor.io.yaml), its arbitrate file
 * (controller/arbitration/<kind>.ts) and its tests.
 */
import type { Condition, KonductorObject, QueueEntry } from './meta.ts';

/** What a grant of a kind holds, which decides how it is acquired and released. */
export type Holding =
  /** Counted permits (konductor.io/permits asks for several); released when the pod finishes. */
  | 'permits'
  /** One holder at a time; released when the pod finishes. */
  | 'exclusive'
  /** Nothing: a pod passes once the primitive opens (it arrives, or its conditions are met). */
  | 'nothing';

export interface KindRecord {
  /** REST names (the CRD's spec.names). */
  plural: string;
  singular: string;
  shortNames: readonly string[];
  /** The pod annotation that asks for it: `konductor.io/<singular>`. */
  annotation: string;
  /**
   * Acquisition order, lower first: a pod waits on what holds nothing (gate, barrier) before it takes what
   * is held, and takes held resources in one global order, so no wait-for cycle can form (api/annotations.ts).
   */
  order: number;
  holds: Holding;
  /** The states a Gate condition on this kind may wait for (status.phase values; for a counted kind
   * `Available`: at least `value` permits free). Empty: not a Gate target. The Gate CRD's CEL rule says the same. */
  gateStates: readonly string[];
}

export const KINDS = {
  Semaphore: {
    plural: 'semaphores',
    singular: 'semaphore',
    shortNames: ['sem', 'ksem'],
    annotation: 'konductor.io/semaphore',
    order: 3,
    holds: 'permits',
    gateStates: ['Available'],
  },
  Lease: {
    plural: 'leases',
    singular: 'lease',
    shortNames: ['klease'],
    annotation: 'konductor.io/lease',
    order: 2,
    holds: 'exclusive',
    gateStates: ['Available', 'Held'],
  },
  Barrier: {
    plural: 'barriers',
    singular: 'barrier',
    shortNames: ['kbar'],
    annotation: 'konductor.io/barrier',
    order: 1,
    holds: 'nothing',
    gateStates: ['Open'],
  },
  Gate: {
    plural: 'gates',
    singular: 'gate',
    shortNames: ['kgate'],
    annotation: 'konductor.io/gate',
    order: 0,
    holds: 'nothing',
    gateStates: ['Open'],
  },
} as const satisfies Record<string, KindRecord>;

export type PrimitiveKind = keyof typeof KINDS;

/** Every kind, in the table's order. */
export const PRIMITIVE_KINDS = Object.keys(KINDS) as PrimitiveKind[];

/** Every kind in acquisition order (see KindRecord.order). */
export const ACQUISITION_ORDER: readonly PrimitiveKind[] = [...PRIMITIVE_KINDS].sort(
  (a, b) => KINDS[a].order - KINDS[b].order,
);

/** The kinds whose grants hold something (Semaphore, Lease): released when the pod is done. */
export const HOLDING_KINDS: readonly PrimitiveKind[] = PRIMITIVE_KINDS.filter(
  (k) => KINDS[k].holds !== 'nothing',
);

/** What a Gate condition may point at: a Job, or a primitive of a kind with gate states. */
export type GateConditionType = 'Job' | PrimitiveKind;

/** Accepted `state` values per gate condition type (the Gate CRD's CEL rule says the same). */
export const GATE_CONDITION_STATES: Readonly<Partial<Record<GateConditionType, readonly string[]>>> = {
  Job: ['Complete', 'Failed'],
  ...Object.fromEntries(
    PRIMITIVE_KINDS.filter((k) => KINDS[k].gateStates.length > 0).map((k) => [k, KINDS[k].gateStates]),
  ),
};
// ---------------------------------------------------------------------------------------------
// Semaphore
// ---------------------------------------------------------------------------------------------

export interface SemaphoreSpec {
  /** Number of permits, >= 1. */
  permits: number;
  /** Maximum hold time (Go duration); a holder past it is released with an Expired event. */
  ttl?: string;
}

export interface Holder {
  /** Pod name (same namespace as the primitive). */
  pod: string;
  uid: string;
  permits: number;
  /** Fencing token handed out at grant time. */
  token: number;
  grantedAt: string;
  /** grantedAt + spec.ttl, when a ttl is set. */
  expiresAt?: string;
  /**
   * Adopted by this object's first decision: the pod runs on a grant of an earlier object of the same name
   * (deleted and recreated). Its token is then 0 here; its real one, in its grant.json, is smaller than
   * every token of this object.
   */
  adopted?: boolean;
}

export type SemaphorePhase = 'Ready' | 'Full';

/** The status fields of the kinds that hold and queue (Semaphore, Lease): the waiting queue and the tokens. */
export interface HoldingStatus {
  waiting: number;
  queue?: QueueEntry[];
  /** When the longest-waiting pod arrived; absent when none waits (printer column Oldest-Wait). */
  oldestWaitingSince?: string;
  /** The token the next grant takes. */
  nextToken: number;
  conditions?: Condition[];
  observedGeneration?: number;
}

export interface SemaphoreStatus extends HoldingStatus {
  inUse: number;
  available: number;
  phase: SemaphorePhase;
  holders: Holder[];
}

export type Semaphore = KonductorObject<'Semaphore', SemaphoreSpec, SemaphoreStatus>;

// ---------------------------------------------------------------------------------------------
// Lease
// ---------------------------------------------------------------------------------------------

export interface LeaseSpec {
  /** Maximum hold time (Go duration). */
  ttl: string;
  /** Queue priority of waiting pods that set no konductor.io/priority annotation. */
  priority?: number;
}

export interface LeaseHolder {
  pod: string;
  uid: string;
  token: number;
  acquiredAt: string;
  expiresAt: string;
  /** Adopted from an earlier Lease of the same name (see Holder.adopted); token 0. */
  adopted?: boolean;
}

export type LeasePhase = 'Available' | 'Held';

export interface LeaseStatus extends HoldingStatus {
  holder?: LeaseHolder;
  /** Mirrors of holder.token / acquiredAt / expiresAt, for printer columns; absent when not held. */
  token?: number;
  acquiredAt?: string;
  expiresAt?: string;
  phase: LeasePhase;
}

export type Lease = KonductorObject<'Lease', LeaseSpec, LeaseStatus>;

// ---------------------------------------------------------------------------------------------
// Barrier
// ---------------------------------------------------------------------------------------------

export interface BarrierSpec {
  /** Number of pods expected, >= 1. */
  expected: number;
  /** Fail the barrier when it is not open this long after the first arrival (Go duration). */
  timeout?: string;
  /** Open when this many pods have arrived (1 <= quorum <= expected); defaults to expected. */
  quorum?: number;
}

export interface Arrival {
  pod: string;
  uid: string;
  arrivedAt: string;
}

export type BarrierPhase = 'Waiting' | 'Open' | 'Failed';

export interface BarrierStatus {
  arrived: number;
  arrivals: Arrival[];
  /** Open is latched: once open, a barrier stays open. */
  phase: BarrierPhase;
  firstArrivalAt?: string;
  openedAt?: string;
  failedAt?: string;
  conditions?: Condition[];
  observedGeneration?: number;
}

export type Barrier = KonductorObject<'Barrier', BarrierSpec, BarrierStatus>;

// ---------------------------------------------------------------------------------------------
// Gate
// ---------------------------------------------------------------------------------------------

export interface GateCondition {
  type: GateConditionType;
  name: string;
  /** Defaults to the Gate's namespace. */
  namespace?: string;
  state: string;
  /** For Semaphore/Available: at least this many permits free (default 1). */
  value?: number;
}

export interface GateSpec {
  conditions: GateCondition[];
  /** Fail the gate when it is not open this long after creation (Go duration). */
  timeout?: string;
}

export interface GateConditionStatus {
  type: GateConditionType;
  name: string;
  namespace?: string;
  met: boolean;
  message: string;
}

export type GatePhase = 'Waiting' | 'Open' | 'Failed';

export interface GateStatus {
  phase: GatePhase;
  conditionStatuses: GateConditionStatus[];
  openedAt?: string;
  failedAt?: string;
  conditions?: Condition[];
  observedGeneration?: number;
}

export type Gate = KonductorObject<'Gate', GateSpec, GateStatus>;

/** A primitive of any kind (the kinds of the table above, each with its own spec and status). */
export type Primitive = Semaphore | Lease | Barrier | Gate;
