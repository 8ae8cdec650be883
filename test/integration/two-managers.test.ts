/**
 * Two managers on one namespace with leader election OFF: both arbitrate the same Semaphore at once.
 * Optimistic concurrency on the status (resourceVersion preconditions) must keep every invariant: an
 * independent watcher checks each status version the API server publishes.
 */
import { describe, expect, it } from 'vitest';
import type { Pod, Semaphore } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { namespacePods } from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { watchObjects } from '../helpers/watchers.ts';

const ns = testNamespace('race');
useKonductor(ns, [], 'a');
useKonductor(ns, [], 'b');
const client = ns.client;
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`;
const nsPods = namespacePods(ns);
const { PODS } = nsPods;

const violations: string[] = [];
const tokens = new Map<number, string>();
let versions = 0;

watchObjects<Semaphore>(client, SEMS, (s) => {
  versions++;
  const held = (s.status?.holders ?? []).reduce((n, h) => n + h.permits, 0);
  if (held > s.spec.permits)
    violations.push(`${s.metadata.resourceVersion}: ${held} held > ${s.spec.permits}`);
  for (const h of s.status?.holders ?? []) {
    const owner = tokens.get(h.token);
    if (owner && owner !== h.uid) violations.push(`token ${h.token} given to ${owner} and ${h.uid}`);
    tokens.set(h.token, h.uid);
  }
});

describe('two managers racing (leader election off)', () => {
  it('never over-grant, never reuse a token, and drain the queue', async () => {
    await client.create(SEMS, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name: 'contended' },
      spec: { permits: 3 },
    });
    const names = Array.from({ length: 12 }, (_, i) => `racer-${i}`);
    await Promise.all(
      names.map((name) =>
        nsPods.createPod(name, {
          annotations: { 'konductor.io/semaphore': 'contended' },
          script: 'sleep 0.2',
          terminationGracePeriodSeconds: 1,
        }),
      ),
    );
    await waitFor(
      async () => {
        const pods = (await client.list<Pod>(PODS)).items.filter((p) =>
          names.includes(p.metadata.name ?? ''),
        );
        return pods.length === 12 && pods.every((p) => p.status?.phase === 'Succeeded');
      },
      { timeoutMs: 90_000, message: 'all 12 pods Succeeded' },
    );
    await waitFor(async () => (await client.get<Semaphore>(`${SEMS}/contended`)).status?.inUse === 0, {
      message: 'every permit returned',
    });
    expect(violations).toEqual([]);
    expect(tokens.size).toBe(12);
    expect(versions).toBeGreaterThan(1);
  });
});
