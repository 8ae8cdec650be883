/**
 * Ground truth from the pods themselves: the main containers' own clock readings (their stamp files), not
 * any status. Pure: the caller reads the files and the records.
 *
 * What "at most N running" means, checked exactly:
 * - A pod holds a Semaphore or the Lease from its main container's own `start` until its own `end` — cut
 *   short only by (a) a force deletion (Kubernetes' statement that the containers are gone; konductor takes
 *   it at its word: docs/security.md) at the moment the API server answered it, and (b) a ttl expiry that an
 *   `Expired` Event announced, at the moment the holder's ttl ran out (its expiresAt under the spec.ttl of the
 *   decision that expired it). A run whose end was never written counts as running until the end of the
 *   observation (conservative).
 * - Lowering spec.permits revokes nothing, so the bound is a grant's: at the instant a pod's container
 *   starts, the permits of every pod holding at that instant (itself included) are at most spec.permits of the
 *   status version that made the latest of their grants (1 for the Lease). That decision saw every other one
 *   of them as a holder (a holder that left the status while it ran is a violation of its own), so its
 *   spec.permits bounds them all; an older grant's smaller spec.permits does not, once spec.permits was raised
 *   and another pod granted into the new permits (a real kubelet may start the older grant's container after
 *   the newer one's). The count only grows at starts, so checking every start checks every instant.
 * - A pod that ran on a primitive has a grant of it in some status version (adopted pods: the earlier
 *   object's), and its container started after the grant's time.
 * - A Barrier's or Gate's pods start only after it opened (its openedAt).
 */

import { parseDuration } from '../api/duration.ts';
import type { PlannedPod } from './plan.ts';
import type { GrantRecord, RemovalRecord, Violation } from './statusChecks.ts';

/** One run of a main container, from its own stamps, in µs since the epoch. */
export interface Run {
  start: number;
  /** Its own `end` stamp (undefined: never written — killed, or still running). */
  end?: number;
  /** When it received SIGTERM (graceful deletion). */
  term?: number;
}

export interface PodRuns {
  pod: string;
  uid: string;
  runs: Run[];
}

/** Parses a stamp file (`start <ns>`, `term <ns>`, `end <ns>` lines). A start before an end opens a new run. */
export function parseStamps(text: string): Run[] {
  const runs: Run[] = [];
  let open: Run | undefined;
  for (const line of text.split('\n')) {
    const m = /^(start|term|end) (\d+)$/.exec(line.trim());
    if (!m) continue;
    const us = Number(BigInt(m[2] as string) / 1000n);
    if (m[1] === 'start') {
      open = { start: us };
      runs.push(open);
    } else if (open && m[1] === 'term') {
      open.term ??= us;
    } else if (open && m[1] === 'end') {
      open.end = us;
      open = undefined;
    }
  }
  return runs;
}

export interface GroundTruthInput {
  /** The planned pods (their admission-time annotations), by name. */
  pods: ReadonlyMap<string, PlannedPod>;
  runs: readonly PodRuns[];
  /** Force deletions the campaign made: pod UID -> when the API server answered, µs. */
  forceDeleted: ReadonlyMap<string, number>;
  /** Grants and adoptions by `Kind/name`, then pod UID (StatusChecker). */
  grants: ReadonlyMap<string, ReadonlyMap<string, GrantRecord>>;
  adoptions: ReadonlyMap<string, ReadonlyMap<string, GrantRecord>>;
  /** Every grant and adoption, in order (default: the first ones): a run's bound is the grant in force at its start. */
  allGrants?: ReadonlyMap<string, ReadonlyMap<string, readonly GrantRecord[]>>;
  removals: ReadonlyMap<string, ReadonlyMap<string, RemovalRecord>>;
  /** Every removal of a holder from a status, in order (default: the last ones). */
  allRemovals?: ReadonlyMap<string, ReadonlyMap<string, readonly RemovalRecord[]>>;
  /** `Kind/name/podUid` of every Expired Event. */
  expired: ReadonlySet<string>;
  /** When the Barrier / Gate opened (openedAt, ms), by `Kind/name`; absent: never opened. */
  openedAt: ReadonlyMap<string, number>;
  /** End of observation, µs. */
  observedUntil: number;
}

export interface GroundTruthResult {
  intervalsChecked: number;
  violations: Violation[];
}

interface Holding {
  pod: string;
  uid: string;
  start: number;
  end: number;
  permits: number;
  bound: number;
  /** The order of its grant's decision: the etcd revision of the version that made it, then its time. */
  decided: [number, number];
  /** The grant in force at the start: `token N @ revision`. */
  grant: string;
  cut?: string;
}

const later = (a: [number, number], b: [number, number]) => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
const iso = (us: number) => (Number.isFinite(us) ? new Date(us / 1000).toISOString() : 'open');
const describe = (h: Holding) =>
  `${h.pod} (${h.uid.slice(0, 8)}) ${iso(h.start)} .. ${iso(h.end)}${h.cut ? ` (${h.cut})` : ''}, ${h.permits} permit${h.permits === 1 ? '' : 's'}, ${h.grant}, bound ${h.bound}`;

/** When a holder's expiry cut its hold (µs), if an Expired Event announced it. */
function expiryCut(removal: RemovalRecord | undefined, announced: boolean): number | undefined {
  if (!announced || !removal || removal.objectDeleted || removal.lastExpiresAt === undefined)
    return undefined;
  let at = removal.lastExpiresAt;
  try {
    if (removal.ttlBefore && removal.ttlAtRemoval)
      at = at - parseDuration(removal.ttlBefore) + parseDuration(removal.ttlAtRemoval);
  } catch {
    /* keep the listed expiry */
  }
  // At the latest when the removal was seen: a status may list an expiresAt computed from an older spec (its
  // observedGeneration behind), e.g. 8760h for a ttl already set back to 8s (round 29 of reliability-6).
  return Math.min(at, removal.observedAt) * 1000;
}

export function checkGroundTruth(input: GroundTruthInput): GroundTruthResult {
  const violations: Violation[] = [];
  let intervalsChecked = 0;
  const byPrimitive = new Map<string, Holding[]>();

  for (const pr of input.runs) {
    const planned = input.pods.get(pr.pod);
    if (!planned) continue;
    intervalsChecked += pr.runs.length;
    const forced = input.forceDeleted.get(pr.uid);
    for (const r of planned.refs) {
      const key = `${r.kind}/${r.name}`;
      if (r.kind === 'Barrier' || r.kind === 'Gate') {
        const opened = input.openedAt.get(key);
        for (const run of pr.runs) {
          if (opened === undefined || run.start < opened * 1000)
            violations.push({
              check: 'ran-before-open',
              message: `${pr.pod} started at ${iso(run.start)} but ${key} ${opened === undefined ? 'never opened' : `opened at ${iso(opened * 1000)}`}`,
              intervals: [
                `${pr.pod} (${pr.uid.slice(0, 8)}) ${iso(run.start)} .. ${iso(run.end ?? Number.NaN)}`,
              ],
            });
        }
        continue;
      }
      const grant = input.grants.get(key)?.get(pr.uid);
      const adoption = input.adoptions.get(key)?.get(pr.uid);
      const removal = input.removals.get(key)?.get(pr.uid);
      const cut = expiryCut(removal, input.expired.has(`${key}/${pr.uid}`));
      const grants =
        input.allGrants?.get(key)?.get(pr.uid) ?? [grant ?? adoption].filter((g) => g !== undefined);
      const removals = input.allRemovals?.get(key)?.get(pr.uid) ?? (removal ? [removal] : []);
      // A pod holds its grant across restarts of its container (restartPolicy OnFailure): the runs under one
      // grant are one holding, from the first run's start to the last run's end. The bound applies when the
      // holding begins — a restart under a grant already held admits nobody new.
      const holdings: {
        grant: GrantRecord | undefined;
        runs: Run[];
        start: number;
        end: number;
        why?: string;
      }[] = [];
      for (const run of pr.runs) {
        if (!grant && !adoption) {
          violations.push({
            check: 'ran-without-grant',
            message: `${pr.pod} ran without any grant of ${key} in any status version`,
            intervals: [
              `${pr.pod} (${pr.uid.slice(0, 8)}) ${iso(run.start)} .. ${iso(run.end ?? Number.NaN)}`,
            ],
          });
          continue;
        }
        if (grant && run.start < grant.grantedAt * 1000)
          violations.push({
            check: 'started-before-grant',
            message: `${pr.pod} started at ${iso(run.start)}, before its grant of ${key} at ${iso(grant.grantedAt * 1000)} (token ${grant.token})`,
            versions: [`${key}@${grant.rev}`],
          });
        let end = run.end ?? forced ?? input.observedUntil;
        let why: string | undefined =
          run.end === undefined ? (forced ? 'force-deleted' : 'no end stamp') : undefined;
        if (forced !== undefined && forced < end) {
          end = forced;
          why = 'force-deleted';
        }
        if (cut !== undefined && cut < end) {
          end = cut;
          why = 'ttl expired (Expired event)';
        }
        // The grant in force when the run started: the last one made before it (a pod released early and
        // granted again runs under its second grant), else the first.
        const inForce =
          grants.findLast((g) => g.grantedAt * 1000 <= run.start) ?? grants[0] ?? grant ?? adoption;
        const last = holdings[holdings.length - 1];
        if (last && last.grant === inForce) {
          last.runs.push(run);
          last.end = Math.max(last.end, end);
          if (why) last.why = why;
          else delete last.why;
        } else holdings.push({ grant: inForce, runs: [run], start: run.start, end, ...(why ? { why } : {}) });
      }
      for (const h of holdings) {
        // A grant given back while the pod still held it (not for its ttl, not because it was force-deleted,
        // not with its object): the status let another pod into permits this one still used.
        const early = removals.find(
          (x) =>
            !x.objectDeleted &&
            x.observedAt * 1000 > h.start &&
            x.observedAt * 1000 < h.end &&
            !input.expired.has(`${key}/${pr.uid}`),
        );
        if (early)
          violations.push({
            check: 'released-while-running',
            message: `${pr.pod}'s grant of ${key} left the status at ${iso(early.observedAt * 1000)} (rev ${early.rev}) while it ran (${iso(h.start)} .. ${iso(h.end)})`,
            versions: [`${key}@${early.rev}`],
          });
        if (h.end <= h.start) continue;
        const g = h.grant;
        byPrimitive.set(key, [
          ...(byPrimitive.get(key) ?? []),
          {
            pod: pr.pod,
            uid: pr.uid,
            start: h.start,
            end: h.end,
            permits: r.permits,
            bound: g?.permitsAtGrant ?? 1,
            decided: [g?.rev ?? -1, g?.grantedAt ?? -1],
            grant: g
              ? `${g.adopted ? 'adopted' : `token ${g.token}`} @${g.rev}${grants.length > 1 ? ` (grant ${grants.indexOf(g) + 1} of ${grants.length})` : ''}${h.runs.length > 1 ? `, ${h.runs.length} runs` : ''}`
              : 'no grant',
            ...(h.why ? { cut: h.why } : {}),
          },
        ]);
      }
    }
  }

  for (const [key, holdings] of byPrimitive) {
    for (const h of holdings) {
      const during = holdings.filter((o) => o.start <= h.start && h.start < o.end);
      const count = during.reduce((s, o) => s + o.permits, 0);
      const latest = during.reduce((a, o) => (later(o.decided, a.decided) ? o : a), h);
      if (count > latest.bound)
        violations.push({
          check: 'concurrent-holders',
          message: `${count} permits of ${key} held at ${iso(h.start)} when ${h.pod} started (bound ${latest.bound}, the spec.permits of the latest of their grants: ${latest.pod}'s)`,
          intervals: during.map(describe),
        });
    }
  }
  return { intervalsChecked, violations };
}
