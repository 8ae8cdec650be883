import { describe, expect, it } from 'vitest';
import type { Lease, Pod, Semaphore } from '../../api/types.ts';
import { identityFromReview, jwtExpiry } from '../../controller/agentAuth.ts';
import { PodIndex, primitiveKey, slimPod } from '../../controller/arbitration/podIndex.ts';
import { eligibleFor, stagePassed, stageState } from '../../controller/arbitration/stages.ts';
import { createMetrics } from '../../controller/metrics.ts';
import { WorkQueue } from '../../controller/workQueue.ts';

function pod(name: string, annotations: Record<string, string>, extra: Partial<Pod> = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'ns',
      uid: `uid-${name}`,
      annotations,
      creationTimestamp: '2026-01-01T00:00:00Z',
    },
    spec: { nodeName: 'n', containers: [{ name: 'main' }] },
    ...extra,
  } as Pod;
}

describe('WorkQueue', () => {
  it('processes a key added many times once, and again if re-added while processing', async () => {
    const seen: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const q = new WorkQueue({
      concurrency: 2,
      process: async (key) => {
        seen.push(key);
        if (seen.length === 1) await gate;
        return undefined;
      },
    });
    q.add('a');
    q.add('a');
    q.add('a');
    await Promise.resolve();
    q.add('a'); // while processing -> once more afterwards
    q.add('a');
    release();
    await q.idle();
    await q.idle();
    expect(seen).toEqual(['a', 'a']);
  });

  it('never processes one key on two workers at once', async () => {
    let active = 0;
    let maxActive = 0;
    const q = new WorkQueue({
      concurrency: 4,
      process: async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        await new Promise((r) => setImmediate(r));
        active--;
        return undefined;
      },
    });
    for (let i = 0; i < 20; i++) {
      q.add('k');
      await new Promise((r) => setImmediate(r));
    }
    await q.idle();
    expect(maxActive).toBe(1);
  });

  it('retries a failing key with backoff', async () => {
    let calls = 0;
    const errors: number[] = [];
    const q = new WorkQueue({
      minRetryMs: 1,
      process: async () => {
        calls++;
        if (calls < 3) throw new Error('boom');
        return undefined;
      },
      onError: (_k, _e, attempt) => errors.push(attempt),
    });
    q.add('x');
    const deadline = Date.now() + 2000;
    while (calls < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    expect(calls).toBe(3);
    expect(errors).toEqual([1, 2]);
  });
});

describe('PodIndex', () => {
  it('indexes pods by the primitives they reference, in acquisition order', () => {
    const idx = new PodIndex();
    const keys = idx.upsert(pod('p1', { 'konductor.io/semaphore': 's', 'konductor.io/gate': 'g' }));
    expect(keys.sort()).toEqual(
      [primitiveKey('Gate', 'ns', 'g'), primitiveKey('Semaphore', 'ns', 's')].sort(),
    );
    expect(idx.get('uid-p1')?.stages.map((s) => s.kind)).toEqual(['Gate', 'Semaphore']);
    expect(idx.podsOf(primitiveKey('Semaphore', 'ns', 's'))).toHaveLength(1);
    // re-annotated: old reference reported so it gets re-arbitrated
    const moved = idx.upsert(pod('p1', { 'konductor.io/semaphore': 't' }));
    expect(moved).toContain(primitiveKey('Semaphore', 'ns', 's'));
    expect(idx.podsOf(primitiveKey('Semaphore', 'ns', 's'))).toHaveLength(0);
    expect(idx.remove('uid-p1')).toEqual([primitiveKey('Semaphore', 'ns', 't')]);
    expect(idx.size).toBe(0);
  });

  it('ignores pods whose annotations do not parse', () => {
    const idx = new PodIndex();
    expect(idx.upsert(pod('bad', { 'konductor.io/permits': 'two', 'konductor.io/semaphore': 's' }))).toEqual(
      [],
    );
    expect(idx.size).toBe(0);
  });

  it('slimPod keeps what arbitration reads and drops the rest', () => {
    const p = pod('p', { 'konductor.io/semaphore': 's', other: 'x'.repeat(1000) }, {
      status: {
        phase: 'Running',
        conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: '2026-01-01T00:00:01Z' }],
        initContainerStatuses: [
          { name: 'konductor-wait', ready: false, restartCount: 0, state: { terminated: { exitCode: 0 } } },
        ],
      },
    } as Partial<Pod>);
    const s = slimPod(p);
    expect(s.metadata.annotations).toEqual({ 'konductor.io/semaphore': 's' });
    expect(s.status?.conditions?.[0]?.type).toBe('PodScheduled');
    expect(s.status?.initContainerStatuses?.[0]?.state?.terminated?.exitCode).toBe(0);
    expect(JSON.stringify(s).length).toBeLessThan(JSON.stringify(p).length);
  });
});

describe('stages', () => {
  const sem = (holders: string[], permits = 2): Semaphore =>
    ({
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name: 's', namespace: 'ns' },
      spec: { permits },
      status: {
        inUse: holders.length,
        available: permits - holders.length,
        phase: 'Ready',
        waiting: 0,
        nextToken: holders.length + 1,
        holders: holders.map((uid, i) => ({
          pod: uid,
          uid,
          permits: 1,
          token: i + 1,
          grantedAt: '2026-01-01T00:00:00Z',
        })),
      },
    }) as Semaphore;

  it('a semaphore stage is passed only by its holders', () => {
    const stage = { kind: 'Semaphore' as const, name: 's', key: 'Semaphore/ns/s', permits: 1 };
    expect(stagePassed(stage, sem(['a']), 'a')).toBe(true);
    expect(stagePassed(stage, sem(['a']), 'b')).toBe(false);
    expect(stagePassed(stage, undefined, 'a')).toBe(false);
  });

  it('eligibility requires every earlier stage', () => {
    const stages = [
      { kind: 'Lease' as const, name: 'l', key: 'Lease/ns/l', permits: 1 },
      { kind: 'Semaphore' as const, name: 's', key: 'Semaphore/ns/s', permits: 1 },
    ];
    const lease = {
      spec: { ttl: '1m' },
      status: { holder: { uid: 'a', pod: 'a', token: 1 }, phase: 'Held' },
    } as unknown as Lease;
    expect(eligibleFor(stages, 0, () => undefined, 'b')).toBe(true);
    expect(eligibleFor(stages, 1, (k) => (k === 'Lease/ns/l' ? lease : undefined), 'a')).toBe(true);
    expect(eligibleFor(stages, 1, (k) => (k === 'Lease/ns/l' ? lease : undefined), 'b')).toBe(false);
  });

  it('reports a missing primitive and a grant with its token', () => {
    const stage = { kind: 'Semaphore' as const, name: 's', key: 'Semaphore/ns/s', permits: 1 };
    const ref = { name: 'a', namespace: 'ns', uid: 'a' };
    expect(stageState(stage, undefined, ref, () => ({ index: new Map(), length: 0 }))).toMatchObject({
      state: 'waiting',
      standing: { missing: true },
    });
    expect(stageState(stage, sem(['x', 'a']), ref, () => ({ index: new Map(), length: 0 }))).toMatchObject({
      state: 'passed',
      grant: { token: 2 },
    });
  });
});

describe('agentAuth', () => {
  const ok = {
    authenticated: true,
    audiences: ['konductor'],
    user: {
      username: 'system:serviceaccount:ns:default',
      extra: {
        'authentication.kubernetes.io/pod-name': ['p'],
        'authentication.kubernetes.io/pod-uid': ['u'],
      },
    },
  };
  it('takes the pod from the bound token claims', () => {
    expect(identityFromReview(ok)).toEqual({
      namespace: 'ns',
      serviceAccount: 'default',
      pod: 'p',
      uid: 'u',
    });
  });
  it('rejects unauthenticated (401), wrong audience (401) and non-pod tokens (403)', () => {
    expect(() => identityFromReview({ authenticated: false, error: 'bad' })).toThrow(
      expect.objectContaining({ statusCode: 401 }),
    );
    expect(() => identityFromReview({ ...ok, audiences: ['other'] })).toThrow(
      expect.objectContaining({ statusCode: 401 }),
    );
    expect(() => identityFromReview({ ...ok, user: { username: 'admin' } })).toThrow(
      expect.objectContaining({ statusCode: 403 }),
    );
  });
  it('reads a JWT expiry without trusting it', () => {
    const claims = Buffer.from(JSON.stringify({ exp: 2000000000 })).toString('base64url');
    expect(jwtExpiry(`x.${claims}.y`)).toBe(2000000000 * 1000);
    expect(jwtExpiry('garbage')).toBeUndefined();
  });
});

describe('metrics', () => {
  it('renders counters and histograms in the Prometheus text format', async () => {
    const m = createMetrics();
    m.grants.inc({ kind: 'Semaphore' }, 3);
    m.reconcileSeconds.observe({ kind: 'Semaphore' }, 0.002);
    const text = await m.render();
    expect(text).toContain('konductor_grants_total{kind="Semaphore"} 3');
    expect(text).toContain('konductor_reconcile_duration_seconds_bucket{le="0.0025",kind="Semaphore"} 1');
    expect(text).toContain('konductor_reconcile_duration_seconds_bucket{le="0.001",kind="Semaphore"} 0');
  });
});
