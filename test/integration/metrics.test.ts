/**
 * The manager's /metrics on the real control plane, during a run that exercises every metric: grants and
 * handoffs on a Semaphore, a Lease, an expiry, a Barrier and a Gate that open, a denied annotation. A scrape
 * is checked metric by metric (name and type, and the samples the run must have produced), the pod index
 * against the live managed pods, and every query of the chart's Grafana dashboard against what the run
 * exported (metric names and the labels each query selects or groups by).
 */
import { describe, expect, it } from 'vitest';
import { MANAGED_LABEL } from '../../api/constants.ts';
import type { Pod } from '../../api/types.ts';
import { familyOf, loadDashboard, panelsOf, parseQuery } from '../helpers/dashboard.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { mainRunning, namespacePods, release, untilReleased, waitingInInit } from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('metrics');
const konductor = useKonductor(ns);
const client = ns.client;
const nsPods = namespacePods(ns);
const API = `/apis/sync.konductor.io/v1/namespaces/${ns.name}`;

interface Scrape {
  /** TYPE of each metric family. */
  types: Map<string, string>;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

async function scrape(): Promise<Scrape> {
  const res = await fetch(konductor.install.metricsUrl);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const types = new Map<string, string>();
  const samples: Scrape['samples'] = [];
  for (const line of (await res.text()).split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) throw new Error(`not the text exposition format: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

const value = (s: Scrape, name: string, labels: Record<string, string> = {}) =>
  s.samples
    .filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))
    .reduce((n, x) => n + x.value, 0);

async function create(plural: string, kind: string, name: string, spec: unknown): Promise<void> {
  await client.create(`${API}/${plural}`, {
    apiVersion: 'sync.konductor.io/v1',
    kind,
    metadata: { name },
    spec,
  });
}

/** Every metric of docs/metrics.md with its type. */
const EXPECTED: [string, string][] = [
  ['konductor_grants_total', 'counter'],
  ['konductor_releases_total', 'counter'],
  ['konductor_expiries_total', 'counter'],
  ['konductor_status_writes_total', 'counter'],
  ['konductor_status_conflicts_total', 'counter'],
  ['konductor_admission_reviews_total', 'counter'],
  ['konductor_admission_denials_total', 'counter'],
  ['konductor_agent_waits_total', 'counter'],
  ['konductor_wait_duration_seconds', 'histogram'],
  ['konductor_handoff_duration_seconds', 'histogram'],
  ['konductor_admission_duration_seconds', 'histogram'],
  ['konductor_status_write_duration_seconds', 'histogram'],
  ['konductor_reconcile_duration_seconds', 'histogram'],
  ['konductor_primitives', 'gauge'],
  ['konductor_primitive_capacity', 'gauge'],
  ['konductor_primitive_in_use', 'gauge'],
  ['konductor_primitive_waiting_pods', 'gauge'],
  ['konductor_primitive_oldest_wait_seconds', 'gauge'],
  ['konductor_leader', 'gauge'],
  ['konductor_workqueue_depth', 'gauge'],
  ['konductor_pod_index_pods', 'gauge'],
  ['process_cpu_seconds_total', 'counter'],
  ['process_resident_memory_bytes', 'gauge'],
  ['nodejs_heap_size_used_bytes', 'gauge'],
  ['nodejs_eventloop_lag_p99_seconds', 'gauge'],
];

/** Labels Prometheus itself attaches to every scraped series (target labels), and `le` of buckets. */
const TARGET_LABELS = [
  'job',
  'instance',
  'namespace',
  'pod',
  'container',
  'service',
  'endpoint',
  'le',
  '__name__',
];

describe('a run that exercises every metric', () => {
  let s: Scrape;
  const marker = nsPods.uniq('metrics');

  it('runs: handoffs, a wait, an expiry, a lease, a barrier and a gate that open, a denial', async () => {
    await create('semaphores', 'Semaphore', 'slots', { permits: 1 });
    await create('semaphores', 'Semaphore', 'short', { permits: 1, ttl: '1s' });
    await create('leases', 'Lease', 'lock', { ttl: '5m' });
    await create('barriers', 'Barrier', 'meet', { expected: 2 });
    await create('gates', 'Gate', 'after', {
      conditions: [{ type: 'Barrier', name: 'meet', state: 'Open' }],
    });
    // Three pods through one permit: two handoffs.
    for (const n of ['s1', 's2', 's3']) {
      await nsPods.createPod(n, { annotations: { 'konductor.io/semaphore': 'slots' }, script: 'sleep 0.2' });
    }
    // A holder that outlives the ttl: an expiry (it keeps running; the next pod gets the permit).
    await nsPods.createPod('long', {
      annotations: { 'konductor.io/semaphore': 'short' },
      script: untilReleased(marker),
    });
    await nsPods.createPod('next', { annotations: { 'konductor.io/semaphore': 'short' }, script: 'exit 0' });
    await nsPods.createPod('l1', { annotations: { 'konductor.io/lease': 'lock' }, script: 'sleep 0.2' });
    await nsPods.createPod('l2', { annotations: { 'konductor.io/lease': 'lock' }, script: 'exit 0' });
    // The gate's pod waits before the barrier (and so the gate) can open: its wait is timed at the opening.
    await nsPods.createPod('g1', { annotations: { 'konductor.io/gate': 'after' }, script: 'exit 0' });
    await waitFor(async () => waitingInInit(await nsPods.getPod('g1')), { message: 'g1 waits at the gate' });
    await nsPods.createPod('b1', { annotations: { 'konductor.io/barrier': 'meet' }, script: 'exit 0' });
    await nsPods.createPod('b2', { annotations: { 'konductor.io/barrier': 'meet' }, script: 'exit 0' });
    await expect(
      nsPods.createPod('bad', {
        annotations: { 'konductor.io/semaphore': 'slots', 'konductor.io/permits': 'two' },
        script: 'exit 0',
      }),
    ).rejects.toThrow(/konductor.io\/permits/);
    await nsPods.waitForPhase(['s1', 's2', 's3', 'next', 'l1', 'l2', 'b1', 'b2', 'g1'], 'Succeeded', {
      timeoutMs: 90_000,
    });
    expect(mainRunning(await nsPods.getPod('long'))).toBe(true);
    s = await waitFor(
      async () => {
        const x = await scrape();
        return value(x, 'konductor_expiries_total', { kind: 'Semaphore' }) >= 1 &&
          value(x, 'konductor_handoff_duration_seconds_count', { kind: 'Semaphore' }) >= 2
          ? x
          : undefined;
      },
      { timeoutMs: 30_000, message: 'the expiry and the handoffs in the metrics' },
    );
    await release(marker);
  });

  it.each(EXPECTED)('%s is a %s', (name, type) => {
    expect(s.types.get(name)).toBe(type);
    const family = s.samples.filter((x) => familyOf(x.name, new Set([name])) === name);
    expect(family.length, `samples of ${name}`).toBeGreaterThan(0);
    if (type === 'histogram') {
      expect(family.some((x) => x.name === `${name}_bucket` && x.labels.le === '+Inf')).toBe(true);
      expect(family.some((x) => x.name === `${name}_count`)).toBe(true);
    }
  });

  it('counts what the run did', () => {
    expect(value(s, 'konductor_grants_total', { kind: 'Semaphore' })).toBeGreaterThanOrEqual(5);
    expect(value(s, 'konductor_grants_total', { kind: 'Lease' })).toBe(2);
    expect(value(s, 'konductor_releases_total', { kind: 'Semaphore' })).toBeGreaterThanOrEqual(3);
    expect(value(s, 'konductor_expiries_total', { kind: 'Semaphore' })).toBeGreaterThanOrEqual(1); // 'next' too, if slow
    expect(value(s, 'konductor_admission_denials_total', { annotation: 'konductor.io/permits' })).toBe(1);
    expect(value(s, 'konductor_admission_reviews_total', { result: 'denied' })).toBe(1);
    expect(value(s, 'konductor_admission_duration_seconds_count')).toBeGreaterThanOrEqual(12);
    // every pod that passed something was timed since its admission (5 permits, 2 leases, 2 + 1 openings)
    expect(value(s, 'konductor_wait_duration_seconds_count')).toBeGreaterThanOrEqual(10);
    expect(value(s, 'konductor_wait_duration_seconds_count', { kind: 'Barrier' })).toBe(2);
    expect(value(s, 'konductor_wait_duration_seconds_count', { kind: 'Gate' })).toBe(1);
    expect(value(s, 'konductor_status_write_duration_seconds_count')).toBe(
      value(s, 'konductor_status_writes_total'),
    );
    expect(value(s, 'konductor_agent_waits_total')).toBeGreaterThanOrEqual(10);
    expect(value(s, 'konductor_leader')).toBe(1);
    expect(value(s, 'konductor_primitives', { kind: 'Semaphore' })).toBe(2);
    expect(
      value(s, 'konductor_primitive_capacity', {
        kind: 'Barrier',
        primitive_namespace: ns.name,
        primitive: 'meet',
      }),
    ).toBe(2);
    expect(value(s, 'konductor_primitive_in_use', { kind: 'Lease', primitive: 'lock' })).toBe(0);
    expect(value(s, 'process_resident_memory_bytes')).toBeGreaterThan(10 * 2 ** 20);
  });

  it('the pod index equals the live managed pods (the fault campaign’s check)', async () => {
    await waitFor(
      async () => {
        const pods = await client.list<Pod>(`/api/v1/namespaces/${ns.name}/pods`, {
          labelSelector: `${MANAGED_LABEL}=true`,
        });
        const x = await scrape();
        return pods.items.length > 0 && value(x, 'konductor_pod_index_pods') === pods.items.length;
      },
      { message: 'konductor_pod_index_pods = the managed pods' },
    );
    await client.delete(`/api/v1/namespaces/${ns.name}/pods/s1`);
    await waitFor(
      async () => {
        const pods = await client.list<Pod>(`/api/v1/namespaces/${ns.name}/pods`, {
          labelSelector: `${MANAGED_LABEL}=true`,
        });
        return (
          value(await scrape(), 'konductor_pod_index_pods') === pods.items.length &&
          !pods.items.some((p) => p.metadata.name === 's1')
        );
      },
      { message: 'the index follows a deletion' },
    );
  });

  it('a waiting pod shows in the per-primitive gauges', async () => {
    await create('semaphores', 'Semaphore', 'full', { permits: 1 });
    const hold = nsPods.uniq('full');
    await nsPods.createPod('f1', {
      annotations: { 'konductor.io/semaphore': 'full' },
      script: untilReleased(hold),
    });
    await waitFor(async () => mainRunning(await nsPods.getPod('f1')), {
      timeoutMs: 90_000,
      message: 'f1 holds full',
    });
    await nsPods.createPod('f2', { annotations: { 'konductor.io/semaphore': 'full' }, script: 'exit 0' });
    // ground truth first (the process kubelet may be slow on a loaded machine), then the gauge
    await waitFor(async () => waitingInInit(await nsPods.getPod('f2')), {
      timeoutMs: 90_000,
      message: 'f2 waits',
    });
    const labels = { kind: 'Semaphore', primitive_namespace: ns.name, primitive: 'full' };
    const x = await waitFor(
      async () => {
        const y = await scrape();
        return value(y, 'konductor_primitive_waiting_pods', labels) === 1 ? y : undefined;
      },
      { message: 'konductor_primitive_waiting_pods{primitive="full"} = 1' },
    );
    expect(value(x, 'konductor_primitive_in_use', labels)).toBe(1);
    expect(value(x, 'konductor_primitive_oldest_wait_seconds', labels)).toBeGreaterThanOrEqual(0);
    await release(hold);
  });

  describe('the Grafana dashboard’s queries, against this run’s metrics', () => {
    const dashboard = loadDashboard();
    const queries = panelsOf(dashboard).flatMap((p) =>
      (p.targets ?? []).map((t) => [`${p.title} ${t.refId}`, t.expr] as const),
    );

    it.each(queries)('%s', (_name, expr) => {
      const q = parseQuery(expr);
      expect(q.errors).toEqual([]);
      const families = new Set(s.types.keys());
      for (const sel of q.selectors) {
        const family = familyOf(sel.metric, families);
        expect(family, `${sel.metric} is exported`).toBeDefined();
        const labels = new Set(
          s.samples.filter((x) => x.name === sel.metric).flatMap((x) => Object.keys(x.labels)),
        );
        for (const l of sel.labels)
          expect(labels.has(l) || TARGET_LABELS.includes(l), `${sel.metric} has label ${l}`).toBe(true);
      }
      const all = new Set(
        q.selectors.flatMap((sel) =>
          s.samples.filter((x) => x.name === sel.metric).flatMap((x) => Object.keys(x.labels)),
        ),
      );
      for (const l of q.groupings)
        expect(all.has(l) || TARGET_LABELS.includes(l), `grouping label ${l}`).toBe(true);
    });

    it('the namespace variable lists this run’s namespace', () => {
      const v = dashboard.templating.list.find((x) => x.name === 'namespace');
      const [, metric, label] = /^label_values\((\w+), *(\w+)\)$/.exec(String(v?.query)) ?? [];
      expect(s.samples.filter((x) => x.name === metric).map((x) => x.labels[label!])).toContain(ns.name);
    });
  });
});
