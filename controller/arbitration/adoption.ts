/**
 * A primitive's first decision: fencing tokens that keep increasing across a delete and recreate, and the
 * adoption of pods that still run on a grant of an earlier object of the same name.
 *
 * Deleting a Semaphore or Lease deletes its status, the only record of its holders — but not the pods:
 * they keep running. A new object of the same name must not start from "nobody holds anything, next token 1".
 * The pods' own state in the API says who still holds: a pod that references the primitive, has passed its
 * wait (`konductor-wait` exited 0, or a main container started — the wait exits 0 only once every grant was
 * in) and is not finished holds a grant of that name. It is adopted as a holder in the first status write,
 * before anything is granted (arbitration grants only into free permits, so while adopted holders fill the
 * permits — or exceed a lowered spec.permits — nothing is granted).
 *
 * Tokens: the first decision of an object starts its counter at firstToken(resourceVersion). The
 * resourceVersion is the etcd revision, a cluster-wide counter that grows by at least one per write. An
 * object's first decision reads revision r0; each of its m status writes takes a revision of its own and
 * grants at most MAX_PERMITS tokens; deleting it and creating the next one take two more. So the next object's
 * first revision is at least r0 + m + 2, and its first token r0' * MAX_PERMITS exceeds every token the old
 * one issued (at most r0 * MAX_PERMITS + m * MAX_PERMITS). Nothing to remember, no clock involved.
 */

import { MAX_HOLDERS, MAX_PERMITS, MAX_TOKEN } from '../../api/limits.ts';
import type { Holder, LeaseHolder } from '../../api/types.ts';
import type { PodView } from './podView.ts';
import { toIso } from './timestamps.ts';

/** Tokens reserved per etcd revision: more than one status write can grant (<= spec.permits <= MAX_PERMITS). */
export const TOKENS_PER_REVISION = MAX_PERMITS;

/**
 * The first fencing token of an object whose status is empty: resourceVersion x TOKENS_PER_REVISION. A
 * resourceVersion that is not a decimal integer (not etcd-backed storage) or too large for an exact token
 * gives 1 (tokens then increase per object, not across a delete and recreate).
 */
export function firstToken(resourceVersion: string | undefined): number {
  if (resourceVersion === undefined || !/^[0-9]{1,20}$/.test(resourceVersion)) return 1;
  const base = BigInt(resourceVersion) * BigInt(TOKENS_PER_REVISION);
  return base >= 1n && base <= BigInt(MAX_TOKEN) ? Number(base) : 1;
}

/**
 * A pod that runs on a grant of an earlier object of this name: it references the primitive, passed its
 * wait and is not finished (a terminating pod whose containers still run counts: it still runs).
 */
export function runsOnEarlierGrant(pod: PodView): boolean {
  return pod.passedWait && !pod.finished;
}

/** When an adopted pod's hold began, as far as the API tells: when it passed its wait. */
function adoptedAt(pod: PodView, now: number): string {
  return toIso(pod.passedWaitAt ?? now);
}

/**
 * The holders a new Semaphore adopts: every pod running on an earlier grant, most recent first, at most
 * MAX_HOLDERS (more is only possible with more than MAX_HOLDERS expired holders still running). Token 0
 * says "granted by an earlier object": its real token, in the pod's grant.json, is below every token of
 * this object.
 */
export function adoptSemaphoreHolders(pods: readonly PodView[], now: number): Holder[] {
  return pods
    .filter(runsOnEarlierGrant)
    .sort((a, b) => (b.passedWaitAt ?? now) - (a.passedWaitAt ?? now) || (a.uid < b.uid ? -1 : 1))
    .slice(0, MAX_HOLDERS)
    .map((p) => ({
      pod: p.name,
      uid: p.uid,
      permits: p.permits,
      token: 0,
      grantedAt: adoptedAt(p, now),
      adopted: true,
    }));
}

/**
 * The holder a new Lease adopts: of the pods running on an earlier grant, the one that passed its wait last
 * (an earlier one can only still run because its grant expired and this one was granted after it).
 */
export function adoptLeaseHolder(pods: readonly PodView[], now: number): LeaseHolder | undefined {
  const latest = pods
    .filter(runsOnEarlierGrant)
    .sort((a, b) => (b.passedWaitAt ?? now) - (a.passedWaitAt ?? now) || (a.uid < b.uid ? -1 : 1))[0];
  if (latest === undefined) return undefined;
  const at = adoptedAt(latest, now);
  return { pod: latest.name, uid: latest.uid, token: 0, acquiredAt: at, expiresAt: at, adopted: true };
}

/** The Adopted event's words. */
export function adoptionMessage(ref: string, what: string): string {
  return (
    `adopted as a holder of ${what} of ${ref}: the pod passed its wait for an earlier ${ref} and still runs ` +
    '(its token, in its grant.json, is below every token of this one)'
  );
}
