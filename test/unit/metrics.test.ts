/**
 * controller/metrics.ts and controller/arbitration/queueFigures.ts: what one status write records (grants, releases by
 * reason, expiries, wait and handoff times), the per-primitive figures from pods, the series cap, the
 * annotation at fault of a denial. Clocks are injected; the integration test metrics.test.ts scrapes a real
 * manager.
 */
import { describe, expect, it } from 'vitest';
import type { Barrier, Lease, Pod, Primitive, Semaphore } from '../../api/types.ts';
import { PodIndex, primitiveKey } from '../../controller/arbitration/podIndex.ts';
import { type PrimitiveGauge, primitiveGauges } from '../../controller/arbitration/queueFigures.ts';
import { createMetrics, OTHER } from '../../controller/metrics.ts';
import { capSeries, deniedAnnotations, passChange } from '../../controller/metricsFigures.ts';
import { decideAdmission } from '../../webhook/admission.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function pod(
  name: string,
  annotations: Record<string, string>,
  over: { bound?: boolean; phase?: string; scheduledAt?: number } = {},
): Pod {
  const scheduled = new Date(over.scheduledAt ?? T0).toISOString();
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'ns',
      uid: `uid-${name}`,
      creationTimestamp: scheduled,
      annotations: { 'konductor.io/admitted-at': scheduled, ...annotations },
    },
    spec: {
      ...(over.bound === false ? {} : { nodeName: 'n' }),
      restartPolicy: 'Never',
      containers: [{ name: 'main' }],
    },
    status: {
      phase: over.phase ?? 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: scheduled }],
    },
  } as Pod;
}

const sem = (holders: string[], waiting: number, permits = 2): Semaphore => ({
  apiVersion: 'sync.konductor.io/v1',
  kind: 'Semaphore',
  metadata: { name: 's', namespace: 'ns', resourceVersion: '1' },
  spec: { permits },
  status: {
    inUse: holders.length,
    available: permits - holders.length,
    phase: holders.length >= permits ? 'Full' : 'Ready',
    holders: holders.map((h, i) => ({
      pod: h,
      uid: `uid-${h}`,
      permits: 1,
      token: i + 1,
      grantedAt: new Date(T0).toISOString(),
    })),
    waiting,
    nextToken: holders.length + 1,
  },
});

async function samples(m: ReturnType<typeof createMetrics>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await m.render()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe('one status write', () => {
  it('records the grant, the release by reason, the wait since admission and the handoff since the release was seen', async () => {
    let wall = T0 + 10_000;
    let mono = 1000;
    const m = createMetrics({ defaultMetrics: false, now: () => wall, monotonic: () => mono });
    const index = new PodIndex();
    const a = pod('a', { 'konductor.io/semaphore': 's' }, { phase: 'Succeeded' });
    const b = pod('b', { 'konductor.io/semaphore': 's' }, { scheduledAt: T0 + 2000 });
    index.upsert(a);
    index.upsert(b);
    m.podChanged('updated', a); // the manager sees a finish at mono 1000
    mono = 1012;
    const key = primitiveKey('Semaphore', 'ns', 's');
    m.written({
      kind: 'Semaphore',
      key,
      before: sem(['a'], 1, 1),
      after: sem(['b'], 0, 1),
      pods: index.podsOf(key),
      writeStartedAt: 1008,
    });
    const s = await samples(m);
    expect(s.get('konductor_grants_total{kind="Semaphore"}')).toBe(1);
    expect(s.get('konductor_releases_total{kind="Semaphore",reason="PodFinished"}')).toBe(1);
    expect(s.get('konductor_releases_total{kind="Semaphore",reason="PodDeleted"}')).toBe(0);
    expect(s.get('konductor_status_writes_total{kind="Semaphore"}')).toBe(1);
    // b was admitted at T0+2s and granted at T0+10s
    expect(s.get('konductor_wait_duration_seconds_sum{kind="Semaphore"}')).toBeCloseTo(8);
    expect(s.get('konductor_handoff_duration_seconds_sum{kind="Semaphore"}')).toBeCloseTo(0.012);
    expect(s.get('konductor_handoff_duration_seconds_bucket{le="0.01",kind="Semaphore"}')).toBe(0);
    expect(s.get('konductor_handoff_duration_seconds_bucket{le="0.02",kind="Semaphore"}')).toBe(1);
    expect(s.get('konductor_status_write_duration_seconds_sum{kind="Semaphore"}')).toBeCloseTo(0.004);
    wall += 1;
  });

  it('a holder past its ttl is an expiry; a deleted pod is PodDeleted; a finished pod is PodFinished', async () => {
    const m = createMetrics({ defaultMetrics: false });
    const index = new PodIndex();
    const live = pod('live', { 'konductor.io/lease': 'l' });
    const held = pod('held', { 'konductor.io/lease': 'l' }, { phase: 'Succeeded' });
    index.upsert(live);
    index.upsert(held);
    const key = primitiveKey('Lease', 'ns', 'l');
    const lease = (holder?: string): Lease => ({
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Lease',
      metadata: { name: 'l', namespace: 'ns' },
      spec: { ttl: '1m' },
      status: {
        phase: holder ? 'Held' : 'Available',
        waiting: 0,
        nextToken: 5,
        ...(holder
          ? { holder: { pod: holder, uid: `uid-${holder}`, token: 4, acquiredAt: '', expiresAt: '' } }
          : {}),
      },
    });
    const write = (before: Lease, after: Lease) =>
      m.written({
        kind: 'Lease',
        key,
        before,
        after,
        pods: index.podsOf(key),
        writeStartedAt: 0,
      });
    write(lease('live'), lease()); // pod still running: ttl
    write(lease('gone'), lease()); // pod not in the index
    write(lease('held'), lease()); // pod Succeeded
    const s = await samples(m);
    expect(s.get('konductor_expiries_total{kind="Lease"}')).toBe(1);
    expect(s.get('konductor_releases_total{kind="Lease",reason="PodDeleted"}')).toBe(1);
    expect(s.get('konductor_releases_total{kind="Lease",reason="PodFinished"}')).toBe(1);
    expect(s.get('konductor_grants_total{kind="Lease"}')).toBe(0);
  });

  it('a barrier that opens lets its waiting pods pass (wait time), and grants nothing', () => {
    const index = new PodIndex();
    for (const n of ['x', 'y']) index.upsert(pod(n, { 'konductor.io/barrier': 'b' }));
    index.upsert(pod('late', { 'konductor.io/barrier': 'b' }, { bound: false }));
    const barrier = (phase: 'Waiting' | 'Open'): Barrier => ({
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Barrier',
      metadata: { name: 'b', namespace: 'ns' },
      spec: { expected: 2 },
      status: { phase, arrived: 2, arrivals: [] },
    });
    const change = passChange({
      before: barrier('Waiting'),
      after: barrier('Open'),
      pods: index.podsOf(primitiveKey('Barrier', 'ns', 'b')),
    });
    expect(change.passed.map((p) => p.pod.metadata.name).sort()).toEqual(['x', 'y']);
    expect(change.grantedWaiters).toBe(0);
    expect(passChange({ before: barrier('Open'), after: barrier('Open'), pods: [] }).passed).toEqual([]);
  });
});

describe('per-primitive figures', () => {
  it('waiting pods and the oldest wait come from the pods, at the first primitive each has not passed', () => {
    const index = new PodIndex();
    index.upsert(pod('holder', { 'konductor.io/semaphore': 's' }));
    index.upsert(pod('w1', { 'konductor.io/semaphore': 's' }, { scheduledAt: T0 - 60_000 }));
    index.upsert(pod('w2', { 'konductor.io/semaphore': 's' }, { scheduledAt: T0 - 5_000 }));
    index.upsert(pod('unbound', { 'konductor.io/semaphore': 's' }, { bound: false }));
    index.upsert(pod('done', { 'konductor.io/semaphore': 's' }, { phase: 'Succeeded' }));
    index.upsert(
      pod(
        'gated',
        { 'konductor.io/semaphore': 's', 'konductor.io/gate': 'g' },
        { scheduledAt: T0 - 600_000 },
      ),
    );
    const primitives: { kind: 'Semaphore' | 'Gate'; primitive: Primitive }[] = [
      { kind: 'Semaphore', primitive: sem(['holder'], 2) },
      {
        kind: 'Gate',
        primitive: {
          apiVersion: 'sync.konductor.io/v1',
          kind: 'Gate',
          metadata: { name: 'g', namespace: 'ns' },
          spec: { conditions: [{ type: 'Job', name: 'j', state: 'Complete' }] },
          status: {
            phase: 'Waiting',
            conditionStatuses: [{ type: 'Job', name: 'j', met: false, message: 'no' }],
          },
        },
      },
    ];
    const byKey = new Map(
      primitives.map((p) => [primitiveKey(p.kind, 'ns', p.primitive.metadata.name!), p.primitive]),
    );
    const rows = primitiveGauges(
      { primitives: () => primitives, pods: () => index.all(), primitive: (k) => byKey.get(k) },
      T0,
    );
    expect(rows).toEqual([
      {
        kind: 'Semaphore',
        namespace: 'ns',
        name: 's',
        capacity: 2,
        inUse: 1,
        waiting: 2,
        oldestWaitSeconds: 60,
      },
      { kind: 'Gate', namespace: 'ns', name: 'g', capacity: 1, inUse: 0, waiting: 1, oldestWaitSeconds: 600 },
    ]);
  });

  it('at most N series of their own; the rest summed per kind into (other), the oldest wait their maximum', () => {
    const row = (
      kind: 'Semaphore' | 'Lease',
      name: string,
      waiting: number,
      oldest: number,
    ): PrimitiveGauge => ({
      kind,
      namespace: 'ns',
      name,
      capacity: 2,
      inUse: 1,
      waiting,
      oldestWaitSeconds: oldest,
    });
    const rows = [
      row('Semaphore', 'c', 1, 5),
      row('Semaphore', 'a', 2, 9),
      row('Semaphore', 'b', 3, 7),
      row('Lease', 'l', 1, 1),
    ];
    expect(capSeries(rows, 2)).toEqual([
      row('Lease', 'l', 1, 1),
      row('Semaphore', 'a', 2, 9),
      {
        kind: 'Semaphore',
        namespace: OTHER,
        name: OTHER,
        capacity: 4,
        inUse: 2,
        waiting: 4,
        oldestWaitSeconds: 7,
      },
    ]);
    expect(capSeries(rows, 10)).toHaveLength(4);
  });

  it('the scrape shows them, and counts all primitives per kind', async () => {
    const m = createMetrics({ defaultMetrics: false, maxPrimitiveSeries: 1, now: () => T0 });
    const s1 = sem([], 0);
    const s2 = { ...sem([], 0), metadata: { name: 't', namespace: 'ns' } } as Semaphore;
    m.observe({
      isLeader: true,
      queueDepth: 3,
      podIndexSize: 7,
      primitives: () => [
        { kind: 'Semaphore', primitive: s1 },
        { kind: 'Semaphore', primitive: s2 },
      ],
      pods: () => [],
      primitive: () => undefined,
    });
    const s = await samples(m);
    expect(s.get('konductor_primitives{kind="Semaphore"}')).toBe(2);
    expect(
      s.get('konductor_primitive_capacity{kind="Semaphore",primitive_namespace="ns",primitive="s"}'),
    ).toBe(2);
    expect(
      s.get(
        `konductor_primitive_capacity{kind="Semaphore",primitive_namespace="${OTHER}",primitive="${OTHER}"}`,
      ),
    ).toBe(2);
    expect(s.get('konductor_leader')).toBe(1);
    expect(s.get('konductor_workqueue_depth')).toBe(3);
    expect(s.get('konductor_pod_index_pods')).toBe(7);
  });
});

describe('admission', () => {
  // The annotations at fault come with the admission decision (it parses them once per review).
  const decided = (object: unknown, kind = 'Pod') =>
    decideAdmission(
      {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: 'u',
          kind: { group: kind === 'Pod' ? '' : 'batch', version: 'v1', kind },
          operation: 'CREATE',
          object,
        },
      },
      { injection: { agentImage: 'agent', agentUrl: 'https://m', caBundle: 'ca' } },
    );
  const review = async (object: unknown, kind?: string) => (await decided(object, kind)).problems;
  it('a denial counts the annotations at fault (known keys, unknown keys as one value)', async () => {
    expect(
      deniedAnnotations(
        await review({
          metadata: { annotations: { 'konductor.io/permits': 'two', 'konductor.io/semaphore': 's' } },
        }),
      ),
    ).toEqual(['konductor.io/permits']);
    expect(
      deniedAnnotations(
        await review({
          metadata: { annotations: { 'konductor.io/semaphor': 's', 'konductor.io/typo2': 'x' } },
        }),
      ),
    ).toEqual(['unknown']);
    expect(
      deniedAnnotations(
        await review(
          {
            spec: {
              jobTemplate: {
                spec: { template: { metadata: { annotations: { 'konductor.io/wait-timeout': 'soon' } } } },
              },
            },
          },
          'CronJob',
        ),
      ),
    ).toEqual(['konductor.io/wait-timeout']);
    expect(deniedAnnotations([])).toEqual(['']);
    const m = createMetrics({ defaultMetrics: false });
    const denied = await decided({
      metadata: { annotations: { 'konductor.io/priority': 'high', 'konductor.io/lease': 'l' } },
    });
    m.admitted(denied.review.response, 0.001, denied.problems);
    m.admitted({ allowed: true }, 0.0002, []);
    const s = await samples(m);
    expect(s.get('konductor_admission_reviews_total{result="denied"}')).toBe(1);
    expect(s.get('konductor_admission_reviews_total{result="allowed"}')).toBe(1);
    expect(s.get('konductor_admission_denials_total{annotation="konductor.io/priority"}')).toBe(1);
    expect(s.get('konductor_admission_duration_seconds_count{result="allowed"}')).toBe(1);
  });
});
