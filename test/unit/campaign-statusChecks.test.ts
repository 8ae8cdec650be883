import { describe, expect, it } from 'vitest';
import type { StoredVersion } from '../../campaign/etcdWatch.ts';
import { RoundHistory } from '../../campaign/history.ts';
import { StatusChecker } from '../../campaign/statusChecks.ts';

const NS = 'r';
const T = Date.parse('2030-01-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

/** Feeds versions in revision order, as the etcd watcher does. */
function harness() {
  const history = new RoundHistory(NS);
  const checker = new StatusChecker(history);
  let rev = 100;
  const put = (key: string, object: Record<string, unknown> | undefined, observedAt = T) => {
    rev++;
    const v: StoredVersion = { key, object, modRevision: rev, createRevision: 1, version: 1, observedAt };
    const u = history.add(v);
    if (u?.resource === 'primitive') checker.onVersion(u.kind, u.version);
    return rev;
  };
  const pod = (name: string, uid: string, extra: Record<string, unknown> = {}, observedAt = T) =>
    put(
      `/registry/pods/${NS}/${name}`,
      {
        metadata: {
          name,
          uid,
          annotations: { 'konductor.io/semaphore': 'slots', 'konductor.io/lease': 'lock' },
        },
        spec: { restartPolicy: 'Never', containers: [{ name: 'main' }] },
        status: { phase: 'Pending' },
        ...extra,
      },
      observedAt,
    );
  /** A Semaphore version; nextToken undefined: a new object without status (before its first decision). */
  const sem = (
    uid: string,
    permits: number,
    holders: [string, number, number?][],
    nextToken: number | undefined,
    observedAt = T,
    inUse = holders.reduce((s, h) => s + (h[2] ?? 1), 0),
  ) => {
    const status = {
      inUse,
      holders: holders.map(([p, token, permitsHeld]) => ({
        pod: p,
        uid: p,
        token,
        permits: permitsHeld ?? 1,
        grantedAt: iso(T),
        ...(token === 0 ? { adopted: true } : {}),
      })),
      nextToken,
    };
    return put(
      `/registry/sync.konductor.io/semaphores/${NS}/slots`,
      { metadata: { name: 'slots', uid }, spec: { permits }, ...(nextToken === undefined ? {} : { status }) },
      observedAt,
    );
  };
  return { history, checker, put, pod, sem };
}

const checks = (c: StatusChecker) => c.violations.map((v) => v.check);

describe('status checks at every version', () => {
  it('a grant into full permits is an over-grant; lowering permits alone is not', () => {
    const h = harness();
    for (const p of ['a', 'b', 'c']) h.pod(p, p);
    h.sem('s1', 2, [], 1000);
    h.sem(
      's1',
      2,
      [
        ['a', 1000],
        ['b', 1001],
      ],
      1002,
    );
    h.sem(
      's1',
      1,
      [
        ['a', 1000],
        ['b', 1001],
      ],
      1002,
    ); // spec lowered: holders kept
    expect(h.checker.violations).toEqual([]);
    h.sem(
      's1',
      1,
      [
        ['a', 1000],
        ['b', 1001],
        ['c', 1002],
      ],
      1003,
    );
    expect(checks(h.checker)).toEqual(['over-grant']);
  });

  it('tokens must grow across grants and across a recreated object; nextToken never goes down', () => {
    const h = harness();
    for (const p of ['a', 'b', 'c']) h.pod(p, p);
    h.sem('s1', 3, [], 1000);
    h.sem('s1', 3, [['a', 1000]], 1001);
    h.put(`/registry/sync.konductor.io/semaphores/${NS}/slots`, undefined); // deleted
    h.sem('s2', 3, [], undefined); // recreated: no status before its first decision
    h.sem(
      's2',
      3,
      [
        ['a', 0],
        ['b', 5000],
      ],
      5001,
    ); // adopted a, granted b
    expect(h.checker.violations).toEqual([]);
    h.sem(
      's2',
      3,
      [
        ['a', 0],
        ['b', 5000],
        ['c', 999],
      ],
      1000,
    ); // token below earlier ones, counter back
    expect(checks(h.checker).sort()).toEqual(['fencing-token', 'token-counter']);
  });

  it('adoption only in the first decision; unique holders; inUse matches', () => {
    const h = harness();
    for (const p of ['a', 'b']) h.pod(p, p);
    h.sem('s1', 3, [['a', 1000]], 1001);
    h.sem(
      's1',
      3,
      [
        ['a', 1000],
        ['b', 0],
      ],
      1001,
    );
    h.sem(
      's1',
      3,
      [
        ['a', 1000],
        ['a', 1000],
      ],
      1001,
    );
    h.sem('s1', 3, [['a', 1000]], 1001, T, 2);
    expect(checks(h.checker)).toContain('adoption');
    expect(checks(h.checker)).toContain('unique-holders');
    expect(checks(h.checker)).toContain('in-use');
  });

  it('a holder must be a pod created before the grant, referencing the primitive, not finished when decided', () => {
    const h = harness();
    h.sem('s1', 3, [], 1000);
    h.sem('s1', 3, [['ghost', 1000]], 1001);
    expect(checks(h.checker)).toEqual(['holder-pod']);
    const g = harness();
    g.pod('done', 'done', { status: { phase: 'Succeeded' } }, T - 60_000);
    g.sem('s1', 3, [], 1000);
    g.sem('s1', 3, [['done', 1000]], 1001);
    expect(checks(g.checker)).toEqual(['holder-pod']);
    // Finished a moment before the decision: a cache a watch delivery behind, counted, not a violation.
    const s = harness();
    s.pod('late', 'late', { status: { phase: 'Succeeded' } }, T - 20);
    s.sem('s1', 3, [], 1000);
    s.sem('s1', 3, [['late', 1000]], 1001);
    expect(s.checker.violations).toEqual([]);
    expect(s.checker.staleGrants).toHaveLength(1);
  });

  it('records grants and removals for the ground truth and the liveness checks', () => {
    const h = harness();
    h.pod('a', 'a');
    h.sem('s1', 1, [], 1000);
    h.sem('s1', 1, [['a', 1000]], 1001);
    h.sem('s1', 1, [], 1001, T + 5000);
    expect(h.checker.grants.get('Semaphore/slots')?.get('a')).toMatchObject({
      token: 1000,
      permitsAtGrant: 1,
    });
    expect(h.checker.removals.get('Semaphore/slots')?.get('a')).toMatchObject({
      observedAt: T + 5000,
      objectDeleted: false,
    });
  });

  it('Barrier: opens only at quorum, and Open is latched', () => {
    const h = harness();
    for (const p of ['a', 'b'])
      h.pod(p, p, { metadata: { name: p, uid: p, annotations: { 'konductor.io/barrier': 'start' } } });
    const barrier = (phase: string, arrived: string[], openedAt?: string) =>
      h.put(`/registry/sync.konductor.io/barriers/${NS}/start`, {
        metadata: { name: 'start', uid: 'b1' },
        spec: { expected: 3, quorum: 2 },
        status: {
          phase,
          arrived: arrived.length,
          arrivals: arrived.map((p) => ({ pod: p, uid: p, arrivedAt: iso(T) })),
          ...(openedAt ? { openedAt } : {}),
        },
      });
    barrier('Waiting', ['a']);
    barrier('Open', ['a'], iso(T));
    expect(checks(h.checker)).toEqual(['barrier-quorum']);
    const l = harness();
    for (const p of ['a', 'b'])
      l.pod(p, p, { metadata: { name: p, uid: p, annotations: { 'konductor.io/barrier': 'start' } } });
    const b2 = (phase: string, openedAt: string) =>
      l.put(`/registry/sync.konductor.io/barriers/${NS}/start`, {
        metadata: { name: 'start', uid: 'b1' },
        spec: { expected: 2 },
        status: {
          phase,
          arrived: 2,
          arrivals: ['a', 'b'].map((p) => ({ pod: p, uid: p, arrivedAt: iso(T) })),
          openedAt,
        },
      });
    b2('Open', iso(T));
    expect(l.checker.violations).toEqual([]);
    b2('Waiting', iso(T));
    expect(checks(l.checker)).toEqual(['latched']);
  });

  it('a status of 1 MiB or more is a violation', () => {
    const h = harness();
    h.put(`/registry/sync.konductor.io/gates/${NS}/ready`, {
      metadata: { name: 'ready', uid: 'g' },
      spec: { conditions: [] },
      status: { phase: 'Waiting', conditionStatuses: [{ message: 'x'.repeat(1024 * 1024) }] },
    });
    expect(checks(h.checker)).toEqual(['status-size']);
  });
});
