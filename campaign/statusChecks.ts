/**
 * Invariants checked at every status version etcd committed (the independent watcher's view), and the
 * record of grants and releases the ground truth and the liveness checks need.
 *
 * Per version of a primitive (compared with the previous version of the same object):
 * - Semaphore: holder UIDs unique; `inUse` is the sum of the holders' permits; a version that grants
 *   (a new holder that is not adopted) keeps the permits held within spec.permits. Lowering spec.permits
 *   revokes nothing (docs/arbitration.md), so a version that grants nothing may hold more than spec.permits
 *   only if it holds no more than the version before it.
 * - Lease: one holder slot, its mirrors (`token`, phase) agree with it.
 * - Fencing tokens: every grant's token is larger than every token granted before under the same primitive
 *   name (across deletion and recreation) and below `nextToken`; `nextToken` never decreases.
 * - Adoption only in an object's first decision.
 * - Every holder was a pod that existed and referenced the primitive before the grant, and was not finished
 *   or being deleted when the decision was made (its finish committed before the decision's time by more
 *   than the watch-delivery tolerance is a violation; within it, a stale grant, counted).
 * - Barrier: opens only with arrived >= quorum (default expected), its arrivals pods of the barrier.
 * - Gate: opens only once the Job was Complete and the Semaphore had the permits free, in versions
 *   committed before.
 * - Barrier and Gate: Open and Failed are latched (same phase, same openedAt, same arrivals).
 * - Every status is under 1 MiB.
 */
import type { Barrier, Gate, Lease, Pod, Primitive, Semaphore } from '../api/types.ts';
import { type PrimitiveKindName, podFinished, type RoundHistory, type Version } from './history.ts';

export interface Violation {
  check: string;
  message: string;
  /** `Kind/name@revision` of the offending versions. */
  versions?: string[];
  /** Container intervals involved (ground truth). */
  intervals?: string[];
}

/** A decision's view of the pods may lag the API by a watch delivery; finishes older than this are not lag. */
export const STALE_GRANT_TOLERANCE_MS = 5000;
export const STATUS_SIZE_LIMIT = 1024 * 1024;

export interface GrantRecord {
  uid: string;
  pod: string;
  token: number;
  rev: number;
  /** The holder's grantedAt / acquiredAt (manager clock), ms. */
  grantedAt: number;
  /** spec.permits of the granting version (1 for a Lease). */
  permitsAtGrant: number;
  permits: number;
  adopted: boolean;
  objectUid: string;
}

export interface RemovalRecord {
  uid: string;
  rev: number;
  observedAt: number;
  /** expiresAt of the holder in the last version that listed it (ms). */
  lastExpiresAt?: number;
  /** spec.ttl of that version and of the removing version (the expiry follows spec.ttl changes). */
  ttlBefore?: string;
  ttlAtRemoval?: string;
  /** The object was deleted (not a release). */
  objectDeleted: boolean;
}

export interface StaleGrant {
  primitive: string;
  pod: string;
  rev: number;
  /** grantedAt minus when the pod's finish or deletion was seen, ms. */
  lagMs: number;
}

interface NameState {
  maxToken: number;
  /** Latest version of the current object of this name. */
  last?: Version<Primitive>;
}

const ms = (iso: string | undefined) => (iso ? Date.parse(iso) : Number.NaN);
const ref = (kind: string, name: string, rev: number) => `${kind}/${name}@${rev}`;

function holdersOf(kind: PrimitiveKindName, p: Primitive | undefined) {
  if (!p?.status) return [];
  if (kind === 'Semaphore')
    return ((p as Semaphore).status?.holders ?? []).map((h) => ({
      uid: h.uid,
      pod: h.pod,
      token: h.token,
      permits: h.permits,
      grantedAt: ms(h.grantedAt),
      expiresAt: h.expiresAt ? ms(h.expiresAt) : undefined,
      adopted: h.adopted === true,
    }));
  if (kind === 'Lease') {
    const h = (p as Lease).status?.holder;
    return h
      ? [
          {
            uid: h.uid,
            pod: h.pod,
            token: h.token,
            permits: 1,
            grantedAt: ms(h.acquiredAt),
            expiresAt: ms(h.expiresAt),
            adopted: h.adopted === true,
          },
        ]
      : [];
  }
  return [];
}

/** Does the pod (its admission-time annotations) reference this primitive? */
function references(pod: Pod, kind: PrimitiveKindName, name: string): boolean {
  return pod.metadata.annotations?.[`konductor.io/${kind.toLowerCase()}`] === name;
}

export class StatusChecker {
  readonly violations: Violation[] = [];
  readonly staleGrants: StaleGrant[] = [];
  /** Grants by `Kind/name`, then pod UID (first grant; adopted ones in `adoptions`). */
  readonly grants = new Map<string, Map<string, GrantRecord>>();
  readonly adoptions = new Map<string, Map<string, GrantRecord>>();
  /** Every grant and adoption by `Kind/name`, then pod UID, in order (a pod released early and granted again has several). */
  readonly allGrants = new Map<string, Map<string, GrantRecord[]>>();
  /** Holders leaving the status, by `Kind/name`, then pod UID (the last removal). */
  readonly removals = new Map<string, Map<string, RemovalRecord>>();
  /** Every removal by `Kind/name`, then pod UID, in order. */
  readonly allRemovals = new Map<string, Map<string, RemovalRecord[]>>();
  versionsChecked = 0;
  private readonly names = new Map<string, NameState>();
  private readonly history: RoundHistory;

  constructor(history: RoundHistory) {
    this.history = history;
  }

  private violation(check: string, message: string, versions: string[]): void {
    this.violations.push({ check, message, versions });
  }

  /** Checks one committed version (call in revision order, after the history has it). */
  onVersion(kind: PrimitiveKindName, v: Version<Primitive>): void {
    const key = `${kind}/${v.name}`;
    const state = this.names.get(key) ?? { maxToken: 0 };
    this.names.set(key, state);
    const prevSame = state.last?.object && state.last.uid === v.uid ? state.last : undefined;
    if (!v.object) {
      // Deleted: its holders leave with it.
      for (const h of holdersOf(kind, state.last?.object))
        this.removed(key, h.uid, v, state.last?.object, undefined, h.expiresAt, true);
      state.last = v;
      return;
    }
    this.versionsChecked++;
    const at = ref(kind, v.name, v.rev);
    const size = Buffer.byteLength(JSON.stringify(v.object.status ?? {}));
    if (size >= STATUS_SIZE_LIMIT) this.violation('status-size', `status is ${size} bytes (>= 1 MiB)`, [at]);
    if (kind === 'Semaphore' || kind === 'Lease') this.checkHeld(kind, key, state, prevSame, v);
    else this.checkLatched(kind, prevSame, v);
    if (kind === 'Barrier') this.checkBarrier(prevSame, v);
    if (kind === 'Gate') this.checkGate(prevSame, v);
    state.last = v;
  }

  private removed(
    key: string,
    uid: string,
    v: Version<Primitive>,
    before: Primitive | undefined,
    after: Primitive | undefined,
    lastExpiresAt: number | undefined,
    objectDeleted: boolean,
  ): void {
    const map = this.removals.get(key) ?? new Map<string, RemovalRecord>();
    this.removals.set(key, map);
    const ttl = (p: Primitive | undefined) => (p?.spec as { ttl?: string } | undefined)?.ttl;
    const rec: RemovalRecord = { uid, rev: v.rev, observedAt: v.observedAt, objectDeleted };
    if (lastExpiresAt !== undefined && !Number.isNaN(lastExpiresAt)) rec.lastExpiresAt = lastExpiresAt;
    const tb = ttl(before);
    const ta = ttl(after);
    if (tb !== undefined) rec.ttlBefore = tb;
    if (ta !== undefined) rec.ttlAtRemoval = ta;
    map.set(uid, rec);
    const all = this.allRemovals.get(key) ?? new Map<string, RemovalRecord[]>();
    this.allRemovals.set(key, all);
    all.set(uid, [...(all.get(uid) ?? []), rec]);
  }

  private checkHeld(
    kind: 'Semaphore' | 'Lease',
    key: string,
    state: NameState,
    prev: Version<Primitive> | undefined,
    v: Version<Primitive>,
  ): void {
    const cur = v.object as Semaphore | Lease;
    const at = ref(kind, v.name, v.rev);
    const versions = prev ? [ref(kind, v.name, prev.rev), at] : [at];
    const holders = holdersOf(kind, cur);
    const before = holdersOf(kind, prev?.object);
    const status = cur.status as { nextToken?: number } | undefined;
    const nextToken = status?.nextToken;
    const prevNext = (prev?.object?.status as { nextToken?: number } | undefined)?.nextToken;
    if (nextToken !== undefined && prevNext !== undefined && nextToken < prevNext)
      this.violation('token-counter', `nextToken went down from ${prevNext} to ${nextToken}`, versions);

    const uids = new Set<string>();
    for (const h of holders) {
      if (uids.has(h.uid)) this.violation('unique-holders', `pod ${h.pod} (${h.uid}) is listed twice`, [at]);
      uids.add(h.uid);
    }
    const held = holders.reduce((s, h) => s + h.permits, 0);
    const heldBefore = before.reduce((s, h) => s + h.permits, 0);
    const capacity = kind === 'Semaphore' ? (cur as Semaphore).spec.permits : 1;
    if (kind === 'Semaphore') {
      const inUse = (cur as Semaphore).status?.inUse;
      if (inUse !== undefined && inUse !== held)
        this.violation('in-use', `inUse ${inUse} but the holders hold ${held}`, [at]);
    } else {
      const l = cur as Lease;
      const h = l.status?.holder;
      if (h && (l.status?.token !== h.token || l.status?.phase !== 'Held'))
        this.violation(
          'lease-mirror',
          `holder token ${h.token}, status.token ${l.status?.token}, phase ${l.status?.phase}`,
          [at],
        );
      if (!h && l.status?.phase === 'Held')
        this.violation('lease-mirror', 'phase Held without a holder', [at]);
    }

    const firstDecision = prevNext === undefined;
    const isNew = (h: { uid: string; token: number }) =>
      !before.some((b) => b.uid === h.uid && b.token === h.token);
    const fresh = holders.filter(isNew).sort((a, b) => a.token - b.token);
    const granted = fresh.filter((h) => !h.adopted);
    for (const h of fresh.filter((x) => x.adopted)) {
      if (!firstDecision)
        this.violation('adoption', `pod ${h.pod} adopted after the object's first decision`, versions);
      this.record(this.adoptions, key, h, v, capacity, true);
      this.checkHolderPod(kind, v, h, true);
    }
    for (const h of granted) {
      if (h.token <= state.maxToken)
        this.violation(
          'fencing-token',
          `pod ${h.pod} granted token ${h.token}, not above ${state.maxToken} granted before under ${key}`,
          versions,
        );
      if (nextToken !== undefined && h.token >= nextToken)
        this.violation('fencing-token', `pod ${h.pod} granted token ${h.token} >= nextToken ${nextToken}`, [
          at,
        ]);
      state.maxToken = Math.max(state.maxToken, h.token);
      this.record(this.grants, key, h, v, capacity, false);
      this.checkHolderPod(kind, v, h, false);
    }
    if (granted.length > 0 && held > capacity)
      this.violation(
        'over-grant',
        `granted ${granted.map((h) => h.pod).join(', ')} into ${held} permits held of ${capacity}`,
        versions,
      );
    if (granted.length === 0 && held > capacity && held > heldBefore && !firstDecision)
      this.violation('over-grant', `${held} permits held of ${capacity}, up from ${heldBefore}`, versions);

    for (const b of before)
      if (!holders.some((h) => h.uid === b.uid))
        this.removed(key, b.uid, v, prev?.object, cur, b.expiresAt, false);
  }

  private record(
    into: Map<string, Map<string, GrantRecord>>,
    key: string,
    h: ReturnType<typeof holdersOf>[number],
    v: Version<Primitive>,
    capacity: number,
    adopted: boolean,
  ): void {
    const rec: GrantRecord = {
      uid: h.uid,
      pod: h.pod,
      token: h.token,
      rev: v.rev,
      grantedAt: h.grantedAt,
      permitsAtGrant: capacity,
      permits: h.permits,
      adopted,
      objectUid: v.uid,
    };
    const all = this.allGrants.get(key) ?? new Map<string, GrantRecord[]>();
    this.allGrants.set(key, all);
    all.set(h.uid, [...(all.get(h.uid) ?? []), rec]);
    const map = into.get(key) ?? new Map<string, GrantRecord>();
    into.set(key, map);
    if (!map.has(h.uid)) map.set(h.uid, rec);
  }

  /** The holder's pod existed, referenced the primitive, and was running (adopted) or not finished (granted). */
  private checkHolderPod(
    kind: PrimitiveKindName,
    v: Version<Primitive>,
    h: { uid: string; pod: string; grantedAt: number },
    adopted: boolean,
  ): void {
    const at = ref(kind, v.name, v.rev);
    const ever = this.history.pods.get(h.uid);
    const first = ever?.[0];
    if (!first || first.rev >= v.rev || !first.object) {
      this.violation('holder-pod', `holder ${h.pod} (${h.uid}) is not a pod created before the grant`, [at]);
      return;
    }
    if (first.name !== h.pod || !references(first.object, kind, v.name)) {
      this.violation('holder-pod', `holder ${h.pod} (${h.uid}) is not a pod referencing ${kind} ${v.name}`, [
        at,
      ]);
      return;
    }
    // When did it stop being a candidate (deleted, being deleted, finished), as committed before the grant?
    const done = ever.find(
      (p) =>
        p.rev < v.rev &&
        (!p.object ||
          podFinished(p.object) ||
          (!adopted && p.object.metadata.deletionTimestamp !== undefined)),
    );
    if (!done) return;
    const lagMs = h.grantedAt - done.observedAt;
    const what = !done.object ? 'deleted' : podFinished(done.object) ? 'finished' : 'being deleted';
    if (lagMs > STALE_GRANT_TOLERANCE_MS || Number.isNaN(lagMs)) {
      this.violation(
        'holder-pod',
        `${adopted ? 'adopted' : 'granted'} ${h.pod} (${h.uid}) ${Math.round(lagMs)} ms after it was ${what} (rev ${done.rev})`,
        [at, `Pod/${h.pod}@${done.rev}`],
      );
    } else {
      this.staleGrants.push({ primitive: `${kind}/${v.name}`, pod: h.pod, rev: v.rev, lagMs });
    }
  }

  private checkLatched(
    kind: 'Barrier' | 'Gate',
    prev: Version<Primitive> | undefined,
    v: Version<Primitive>,
  ): void {
    const before = prev?.object as Barrier | Gate | undefined;
    const cur = v.object as Barrier | Gate;
    const was = before?.status?.phase;
    if (was !== 'Open' && was !== 'Failed') return;
    const versions = [ref(kind, v.name, prev?.rev ?? 0), ref(kind, v.name, v.rev)];
    if (cur.status?.phase !== was) {
      this.violation('latched', `${kind} ${v.name} went from ${was} to ${cur.status?.phase}`, versions);
      return;
    }
    if (was === 'Open' && cur.status?.openedAt !== before?.status?.openedAt)
      this.violation(
        'latched',
        `openedAt changed from ${before?.status?.openedAt} to ${cur.status?.openedAt}`,
        versions,
      );
    if (
      kind === 'Barrier' &&
      was === 'Open' &&
      JSON.stringify((cur as Barrier).status?.arrivals) !==
        JSON.stringify((before as Barrier).status?.arrivals)
    )
      this.violation('latched', 'the arrivals of an Open barrier changed', versions);
  }

  private checkBarrier(prev: Version<Primitive> | undefined, v: Version<Primitive>): void {
    const b = v.object as Barrier;
    if (b.status?.phase !== 'Open' || (prev?.object as Barrier | undefined)?.status?.phase === 'Open') return;
    const at = ref('Barrier', v.name, v.rev);
    const needed = b.spec.quorum ?? b.spec.expected;
    const arrivals = b.status.arrivals ?? [];
    if ((b.status.arrived ?? 0) < needed || arrivals.length < Math.min(needed, 1000))
      this.violation(
        'barrier-quorum',
        `opened with ${b.status.arrived} arrived (${arrivals.length} listed), quorum ${needed}`,
        [at],
      );
    for (const a of arrivals)
      this.checkHolderPod('Barrier', v, { uid: a.uid, pod: a.pod, grantedAt: ms(b.status.openedAt) }, false);
  }

  private checkGate(prev: Version<Primitive> | undefined, v: Version<Primitive>): void {
    const g = v.object as Gate;
    if (g.status?.phase !== 'Open' || (prev?.object as Gate | undefined)?.status?.phase === 'Open') return;
    const at = ref('Gate', v.name, v.rev);
    for (const c of g.spec.conditions) {
      if (c.type === 'Job') {
        const done = (this.history.jobs.get(c.name) ?? []).some(
          (j) =>
            j.rev < v.rev &&
            j.object?.status?.conditions?.some((x) => x.type === c.state && x.status === 'True'),
        );
        if (!done) this.violation('gate-conditions', `opened before Job ${c.name} was ${c.state}`, [at]);
      } else if (c.type === 'Semaphore') {
        const value = c.value ?? 1;
        const free = this.history
          .versionsOf('Semaphore', c.name)
          .some(
            (s) => s.rev < v.rev && ((s.object as Semaphore | undefined)?.status?.available ?? 0) >= value,
          );
        if (!free)
          this.violation('gate-conditions', `opened before Semaphore ${c.name} had ${value} available`, [at]);
      }
    }
  }
}
