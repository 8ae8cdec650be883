import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkGroundTruth,
  type GroundTruthInput,
  type PodRuns,
  parseStamps,
} from '../../campaign/groundTruth.ts';
import type { PlannedPod } from '../../campaign/plan.ts';
import type { GrantRecord, RemovalRecord } from '../../campaign/statusChecks.ts';

const S = 1_000_000; // µs per second
const T0 = 1_800_000_000 * S;

function planned(
  name: string,
  kind: 'Semaphore' | 'Lease' | 'Barrier' = 'Semaphore',
  permits = 1,
): PlannedPod {
  const prim = kind === 'Semaphore' ? 'slots' : kind === 'Lease' ? 'lock' : 'start';
  return {
    name,
    annotations: {},
    refs: [{ kind, name: prim, permits }],
    workMs: 1000,
    restartPolicy: 'Never',
    failFirstRun: false,
    exitCode: 0,
    createAtMs: 0,
  };
}

function grant(uid: string, atUs: number, permitsAtGrant: number, permits = 1): GrantRecord {
  return {
    uid,
    pod: uid,
    token: 1,
    rev: 1,
    grantedAt: atUs / 1000,
    permitsAtGrant,
    permits,
    adopted: false,
    objectUid: 'o',
  };
}

interface Case {
  pods: PlannedPod[];
  runs: PodRuns[];
  grants: GrantRecord[];
  key?: string;
  forceDeleted?: [string, number][];
  removals?: RemovalRecord[];
  expired?: string[];
  openedAt?: [string, number][];
}

function check(c: Case) {
  const key = c.key ?? 'Semaphore/slots';
  const input: GroundTruthInput = {
    pods: new Map(c.pods.map((p) => [p.name, p])),
    runs: c.runs,
    forceDeleted: new Map(c.forceDeleted ?? []),
    grants: new Map([[key, new Map(c.grants.map((g) => [g.uid, g]))]]),
    adoptions: new Map(),
    removals: new Map([[key, new Map((c.removals ?? []).map((r) => [r.uid, r]))]]),
    expired: new Set(c.expired ?? []),
    openedAt: new Map(c.openedAt ?? []),
    observedUntil: T0 + 3600 * S,
  };
  return checkGroundTruth(input);
}

const run = (pod: string, start: number, end?: number): PodRuns => ({
  pod,
  uid: pod,
  runs: [{ start: T0 + start, ...(end !== undefined ? { end: T0 + end } : {}) }],
});

describe('parseStamps', () => {
  it('reads runs (a restarted container starts a new one), SIGTERM and missing ends', () => {
    const text = [
      'start 1800000000000000000',
      'term 1800000000500000000',
      'end 1800000001000000000',
      'start 1800000002000000000',
      'garbage',
      '',
    ].join('\n');
    expect(parseStamps(text)).toEqual([
      { start: 1800000000 * S, term: 1800000000.5 * S, end: 1800000001 * S },
      { start: 1800000002 * S },
    ]);
  });
});

describe('checkGroundTruth', () => {
  it('two pods running at once on one permit is a violation; one after the other is not', () => {
    const pods = [planned('a'), planned('b')];
    const grants = [grant('a', T0, 1), grant('b', T0 + 2 * S, 1)];
    const ok = check({ pods, grants, runs: [run('a', 0.1 * S, 2 * S), run('b', 2.1 * S, 3 * S)] });
    expect(ok.violations).toEqual([]);
    expect(ok.intervalsChecked).toBe(2);
    const bad = check({
      pods,
      grants: [grant('a', T0, 1), grant('b', T0 + 1 * S, 1)],
      runs: [run('a', 0.1 * S, 2 * S), run('b', 1.5 * S, 3 * S)],
    });
    expect(bad.violations.map((v) => v.check)).toEqual(['concurrent-holders']);
    expect(bad.violations[0]?.intervals).toHaveLength(2);
  });

  it("lowering permits revokes nothing: the bound is the grant's spec.permits", () => {
    const pods = [planned('a'), planned('b'), planned('c')];
    // a and b granted with 2 permits; permits lowered to 1; c granted at 1 only after both ended.
    const ok = check({
      pods,
      grants: [grant('a', T0, 2), grant('b', T0, 2), grant('c', T0 + 5 * S, 1)],
      runs: [run('a', 0.1 * S, 4 * S), run('b', 0.2 * S, 4.5 * S), run('c', 5.1 * S, 6 * S)],
    });
    expect(ok.violations).toEqual([]);
    // c granted under permits 1 while a still runs: over its grant's bound.
    const bad = check({
      pods,
      grants: [grant('a', T0, 2), grant('b', T0, 2), grant('c', T0 + 4.2 * S, 1)],
      runs: [run('a', 0.1 * S, 4 * S), run('b', 0.2 * S, 4.5 * S), run('c', 4.3 * S, 6 * S)],
    });
    expect(bad.violations.map((v) => v.check)).toEqual(['concurrent-holders']);
  });

  it('raising permits lets a later grant in beside an earlier one granted under fewer: the latest grant bounds them', () => {
    // Round 3 of seed real-1 on the real node: slots-28 granted under spec.permits 1 (a permits-change fault),
    // permits raised back to 2, slots-31 granted under 2 a version later; the real kubelet started slots-31's
    // container first, then slots-28's: two running, within slots-31's grant, which counted slots-28 as a holder.
    const pods = [planned('slots-28'), planned('slots-31'), planned('slots-40')];
    const g28 = { ...grant('slots-28', T0, 1), rev: 1219 };
    const g31 = { ...grant('slots-31', T0 + 0.06 * S, 2), rev: 1225 };
    const runs = [run('slots-31', 1.6 * S, 9.9 * S), run('slots-28', 3.5 * S, 6.6 * S)];
    expect(check({ pods, grants: [g28, g31], runs }).violations).toEqual([]);
    // The latest grant's bound still holds: a third pod granted under 2 while both run is over it.
    const g40 = { ...grant('slots-40', T0 + 4 * S, 2), rev: 1300 };
    const over = check({ pods, grants: [g28, g31, g40], runs: [...runs, run('slots-40', 4.1 * S, 5 * S)] });
    expect(over.violations.map((v) => v.check)).toEqual(['concurrent-holders']);
    expect(over.violations[0]?.message).toContain(
      "bound 2, the spec.permits of the latest of their grants: slots-40's",
    );
    // And the newer grant made under 1 while the older one runs is over its own bound, whichever starts first.
    const g31at1 = { ...g31, permitsAtGrant: 1 };
    expect(check({ pods, grants: [g28, g31at1], runs }).violations.map((v) => v.check)).toEqual([
      'concurrent-holders',
    ]);
  });

  it('a pod restarting under its grant holds it throughout: the bound applies when the holding begins', () => {
    // The first 100-round run's false alarm: a (OnFailure) and b granted at permits 2; permits raised to 3 and c
    // granted; a's container restarts while b and c run: three holders, within c's grant, and a's restart
    // admits nobody new.
    const pods = [planned('a'), planned('b'), planned('c')];
    const grants = [grant('a', T0, 2), grant('b', T0, 2), grant('c', T0 + 1.7 * S, 3)];
    const restarted: PodRuns = {
      pod: 'a',
      uid: 'a',
      runs: [
        { start: T0 + 0.03 * S, end: T0 + 1.97 * S },
        { start: T0 + 2.2 * S, end: T0 + 4.1 * S },
      ],
    };
    const runs = [restarted, run('b', 0.15 * S, 2.7 * S), run('c', 1.78 * S, 3.5 * S)];
    expect(check({ pods, grants, runs }).violations).toEqual([]);
    // A grant given back between the two runs (while the container restarts) is given back while it holds.
    const removals: RemovalRecord[] = [
      { uid: 'a', rev: 60, observedAt: (T0 + 2.1 * S) / 1000, objectDeleted: false },
    ];
    expect(check({ pods, grants, runs, removals }).violations.map((v) => v.check)).toEqual([
      'released-while-running',
    ]);
  });

  it('weighs permits: a 2-permit holder and a 1-permit holder on 2 permits is a violation', () => {
    const pods = [planned('big', 'Semaphore', 2), planned('small')];
    const r = check({
      pods,
      grants: [grant('big', T0, 2, 2), grant('small', T0, 2)],
      runs: [run('big', 0.1 * S, 3 * S), run('small', 1 * S, 2 * S)],
    });
    expect(r.violations.map((v) => v.check)).toEqual(['concurrent-holders']);
  });

  it('a force-deleted holder stops holding when the API server answered the deletion', () => {
    const pods = [planned('a'), planned('b')];
    const grants = [grant('a', T0, 1), grant('b', T0 + 2 * S, 1)];
    const runs = [run('a', 0.1 * S), run('b', 2.1 * S, 3 * S)];
    expect(check({ pods, grants, runs, forceDeleted: [['a', T0 + 2 * S]] }).violations).toEqual([]);
    // b started before the deletion: two at once.
    expect(check({ pods, grants, runs, forceDeleted: [['a', T0 + 2.5 * S]] }).violations).toHaveLength(1);
    // Without a deletion, a run without an end runs until the end of observation.
    expect(check({ pods, grants, runs }).violations).toHaveLength(1);
  });

  it('a ttl expiry ends the hold only when an Expired event announced it', () => {
    const pods = [planned('a', 'Lease'), planned('b', 'Lease')];
    const grants = [grant('a', T0, 1), grant('b', T0 + 10 * S, 1)];
    const runs = [run('a', 0.1 * S, 15 * S), run('b', 10.1 * S, 11 * S)];
    const removals: RemovalRecord[] = [
      {
        uid: 'a',
        rev: 9,
        observedAt: (T0 + 10 * S) / 1000,
        lastExpiresAt: (T0 + 10 * S) / 1000,
        ttlBefore: '10s',
        ttlAtRemoval: '10s',
        objectDeleted: false,
      },
    ];
    const key = 'Lease/lock';
    expect(check({ pods, grants, runs, removals, key, expired: ['Lease/lock/a'] }).violations).toEqual([]);
    // Without the event it is a grant given back while the holder ran, and two holders at once.
    expect(
      check({ pods, grants, runs, removals, key })
        .violations.map((v) => v.check)
        .sort(),
    ).toEqual(['concurrent-holders', 'released-while-running']);
    // The expiry follows a ttl lowered by the decision that expired it (5s instead of 10s).
    const lowered = [{ ...removals[0]!, ttlAtRemoval: '5s' }];
    const early = [run('a', 0.1 * S, 15 * S), run('b', 6 * S, 7 * S)];
    expect(
      check({
        pods,
        grants: [grant('a', T0, 1), grant('b', T0 + 5.5 * S, 1)],
        runs: early,
        removals: lowered,
        key,
        expired: ['Lease/lock/a'],
      }).violations,
    ).toEqual([]);
  });

  it('an announced expiry ends the hold when it was seen, even if the last expiresAt listed came from an older ttl', () => {
    // Round 29 of reliability-6: the last status listing the holder had an expiresAt under ttl 8760h (the
    // manager decided from a spec not yet set back to 8s); the expiry came with ttl 8s and was announced.
    const pods = [planned('a', 'Lease'), planned('b', 'Lease')];
    const grants = [grant('a', T0, 1), grant('b', T0 + 10 * S, 1)];
    const runs = [run('a', 0.1 * S, 15 * S), run('b', 10.1 * S, 11 * S)];
    const stale: RemovalRecord = {
      uid: 'a',
      rev: 9,
      observedAt: (T0 + 10 * S) / 1000,
      lastExpiresAt: (T0 + 8760 * 3600 * S) / 1000,
      ttlBefore: '10s',
      ttlAtRemoval: '10s',
      objectDeleted: false,
    };
    const key = 'Lease/lock';
    const c = { pods, grants, runs, removals: [stale], key };
    expect(check({ ...c, expired: ['Lease/lock/a'] }).violations).toEqual([]);
    // b starting before the expiry was seen still overlaps a.
    const before = check({
      ...c,
      grants: [grant('a', T0, 1), grant('b', T0 + 9 * S, 1)],
      runs: [run('a', 0.1 * S, 15 * S), run('b', 9.5 * S, 11 * S)],
      expired: ['Lease/lock/a'],
    });
    expect(before.violations.map((v) => v.check)).toEqual(['concurrent-holders']);
  });

  it("a grant that leaves the status while its holder's container runs is a violation", () => {
    const pods = [planned('a')];
    const grants = [grant('a', T0, 1)];
    const removal = (at: number, extra: Partial<RemovalRecord> = {}): RemovalRecord => ({
      uid: 'a',
      rev: 50,
      observedAt: (T0 + at) / 1000,
      objectDeleted: false,
      ...extra,
    });
    const runs = [run('a', 1 * S, 3 * S)];
    expect(check({ pods, grants, runs, removals: [removal(3.2 * S)] }).violations).toEqual([]);
    expect(check({ pods, grants, runs, removals: [removal(2 * S)] }).violations.map((v) => v.check)).toEqual([
      'released-while-running',
    ]);
    // With its object (deleted: adopted by the next one), or after a force deletion, it is not.
    expect(
      check({ pods, grants, runs, removals: [removal(2 * S, { objectDeleted: true })] }).violations,
    ).toEqual([]);
    expect(
      check({
        pods,
        grants,
        runs: [run('a', 1 * S)],
        removals: [removal(2.5 * S)],
        forceDeleted: [['a', T0 + 2 * S]],
      }).violations,
    ).toEqual([]);
  });

  it('running without a grant, or before it, is a violation; barrier pods wait for the opening', () => {
    const r = check({
      pods: [planned('a'), planned('b'), planned('c', 'Barrier')],
      grants: [grant('b', T0 + 5 * S, 3)],
      runs: [run('a', 0, 1 * S), run('b', 4 * S, 6 * S), run('c', 1 * S, 2 * S)],
      openedAt: [['Barrier/start', (T0 + 1.5 * S) / 1000]],
    });
    expect(r.violations.map((v) => v.check).sort()).toEqual([
      'ran-before-open',
      'ran-without-grant',
      'started-before-grant',
    ]);
  });

  it('property: runs started only when a permit was free are never flagged; one early start is', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 2, maxLength: 25 }),
        (permits, durations) => {
          // A reference semaphore: each pod starts at the earliest instant a permit is free.
          const ends: number[] = [];
          const runs: PodRuns[] = [];
          const grants: GrantRecord[] = [];
          durations.forEach((d, i) => {
            ends.sort((a, b) => a - b);
            const start = ends.length < permits ? i : Math.max(i, ends.shift()! + 1);
            ends.push(start + d);
            runs.push(run(`p${i}`, start * 1000, (start + d) * 1000));
            grants.push(grant(`p${i}`, T0 + start * 1000 - 1, permits));
          });
          const pods = durations.map((_, i) => planned(`p${i}`));
          expect(check({ pods, grants, runs }).violations).toEqual([]);
          // Start one more pod at an instant when every permit is held: over the bound.
          const covering = (t: number) =>
            runs.filter((r) => r.runs[0]!.start <= t && t < r.runs[0]!.end!).length;
          const full = runs.map((r) => r.runs[0]!.start).find((t) => covering(t) >= permits);
          if (full !== undefined) {
            const extra = run('x', full - T0, full - T0 + 1000);
            const r = check({
              pods: [...pods, planned('x')],
              grants: [...grants, grant('x', full - 1, permits)],
              runs: [...runs, extra],
            });
            expect(r.violations.map((v) => v.check)).toContain('concurrent-holders');
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
