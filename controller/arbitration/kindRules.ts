/**
 * The shape of a kind's rules: everything the controller, the agent API's wait stream, the metrics and
 * `kubectl konductor` need to know of one primitive kind, as pure functions of its object. Each kind's
 * arbitrate file exports its rules (`semaphoreRules`, ...); the table that lists them is ./kinds.ts.
 *
 * The reconciler, the wait stream, the figures and the plugin are written once against this shape, as
 * controller-runtime keeps a reconciler apart from what each kind decides.
 */
import type { QueueStanding } from '../../api/protocol.ts';
import type { FailureReason } from '../../api/reasons.ts';
import type { GateConditionType, Holder, Job, Primitive } from '../../api/types.ts';
import type { PlannedEvent } from './events.ts';
import type { Stage } from './podIndex.ts';
import type { PodView } from './podView.ts';

/** An object a Gate condition (or any kind that reads other objects) may point at. */
export type ReadTarget = Job | Primitive;

/** The objects a kind that reads others looks at: looked up from the controller's caches. */
export interface ObjectReads {
  /** The object, or undefined when it does not exist (or is not watched). */
  lookup(type: GateConditionType, namespace: string, name: string): ReadTarget | undefined;
  /** May an object of namespace `from` read objects of namespace `target` (its opt-in)? */
  mayRead(target: string, from: string): boolean;
}

export interface ArbitrationInput<P> {
  primitive: P;
  /**
   * The managed pods that reference it (any state); for a kind that holds, also a view of every holder's pod
   * that still exists (a holder without a view is released as gone: the caller confirms absence with a GET).
   */
  pods: readonly PodView[];
  /** Decision time, epoch ms. */
  now: number;
  reads: ObjectReads;
}

/** One decision: the next status, the events to record once it is written, when to look again. */
export interface Decision {
  status: object;
  /** False when `status` deep-equals the current one: the caller skips the write. */
  changed: boolean;
  events: PlannedEvent[];
  /** Arbitrate again after this many ms (a ttl expiry, a timeout); absent when only a change would. */
  requeueAfterMs?: number;
}

/** A grant a pod holds, as the primitive's status records it (a Lease's holder holds one permit; token 0 when adopted). */
export type HeldGrant = Omit<Holder, 'adopted'>;

/** What a pod that has passed a primitive got: its token (0 when nothing is held) and since when. */
export interface PassedGrant {
  token: number;
  grantedAt: string | undefined;
}

/** A pod's place in a queue: 1-based position (0 when not queued) and the queue's length. */
export interface QueuePlace {
  position: number;
  queueLength: number;
}

/** Where a pod that has not passed stands: its figures for the progress line, or the failure that ends its wait. */
export type Standing =
  | { waiting: Omit<QueueStanding, 'primitive' | 'message' | 'missing'> }
  | { failed: { reason: FailureReason; message: string } };

/** Capacity and use from the spec and status (metrics, `kubectl konductor status`). */
export interface Figures {
  capacity: number;
  inUse: number;
  /** Pods waiting, as the status counts them (0 for a kind without a queue). */
  waiting: number;
}

/** An object a primitive reads (a Gate's condition targets). */
export interface ObjectReference {
  type: GateConditionType;
  namespace: string;
  name: string;
}

/** What `kubectl konductor` says of a primitive of the kind: pure words from its object. */
export interface KindExplanations<P> {
  /** The use in a headline: `2/3 permits in use`, `held`, `1 of 3 arrived`. */
  use(f: Figures): string;
  /** A passed stage of `why`: `granted 2 permits at T (token 7)`, `open since T`. */
  passed(stage: Stage, grant: PassedGrant): string;
  /** Why a waiter is not through yet (`queue`): `index` its 0-based place in `queue` (-1: the kind has none). */
  queueReason(p: P, index: number, waiter: PodView): string;
  /** What `why` says of a waiting pod, and what must happen for it to pass (`ahead`: the waiters before it). */
  waiting(
    p: P,
    stage: Stage,
    standing: QueueStanding,
    ahead: () => PodView[],
  ): { detail: string; toStart: string };
  /** What `holders` lists: the grants (token, expiry), the arrivals (when each came), or nothing. */
  holderColumns: 'grants' | 'arrivals' | 'none';
  /** The pods `holders` lists, and (a kind that holds nothing) why the list is not of grants. */
  listed(p: P): { rows: HeldGrant[]; note?: string };
}

export interface KindRules<P extends Primitive> {
  /** One decision, pure (docs/arbitration.md). */
  arbitrate(input: ArbitrationInput<P>): Decision;
  /** Whether its decision reads the referencing pods (a Gate reads only the objects its conditions name). */
  readsPods: boolean;
  /** The grants its status records (none for a kind that holds nothing). */
  holders(p: P): readonly HeldGrant[];
  /** The pod's grant when it has passed this primitive, judged from the status alone. */
  grantOf(p: P, uid: string): PassedGrant | undefined;
  /**
   * The waiters in grant order (holders excluded; requests that can never be granted last), as arbitration
   * sees them. Absent for a kind without an order: every waiter passes at once.
   */
  queue?(p: P, views: readonly PodView[]): PodView[];
  /** Where a pod that has not passed stands (`place`: its place in `queue`, computed on demand). */
  standing(
    p: P,
    stage: Stage,
    pod: { name: string; namespace: string; uid: string },
    place: () => QueuePlace,
  ): Standing;
  figures(p: P): Figures;
  /** The objects it reads (a Gate's conditions): re-arbitrated when one of them changes. */
  references?(p: P): ObjectReference[];
  /** True once it reads nothing any more (a latched Gate). */
  settled?(p: P): boolean;
  explain: KindExplanations<P>;
}
