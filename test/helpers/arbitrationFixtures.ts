/** Builders shared by the arbitration unit tests. */

import type { Barrier, Gate, Lease, Semaphore } from '../../api/types.ts';
import type { PodView } from '../../controller/arbitration/podView.ts';

export const T0 = Date.parse('2030-01-01T00:00:00.000Z');

export function view(uid: string, overrides: Partial<PodView> = {}): PodView {
  return {
    name: `pod-${uid}`,
    namespace: 'default',
    uid,
    priority: undefined,
    permits: 1,
    scheduledAt: T0,
    admittedAt: T0,
    bound: true,
    gated: false,
    finished: false,
    terminating: false,
    passedWait: false,
    eligible: true,
    ...overrides,
  };
}

export function semaphore(
  permits: number,
  opts: { ttl?: string; status?: Semaphore['status'] } = {},
): Semaphore {
  const s: Semaphore = {
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Semaphore',
    metadata: { name: 'slots', namespace: 'default', generation: 1 },
    spec: { permits },
  };
  if (opts.ttl !== undefined) s.spec.ttl = opts.ttl;
  if (opts.status !== undefined) s.status = opts.status;
  return s;
}

export function lease(ttl: string, opts: { priority?: number; status?: Lease['status'] } = {}): Lease {
  const l: Lease = {
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Lease',
    metadata: { name: 'db', namespace: 'default', generation: 1 },
    spec: { ttl },
  };
  if (opts.priority !== undefined) l.spec.priority = opts.priority;
  if (opts.status !== undefined) l.status = opts.status;
  return l;
}

export function barrier(
  expected: number,
  opts: { quorum?: number; timeout?: string; status?: Barrier['status'] } = {},
): Barrier {
  const b: Barrier = {
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Barrier',
    metadata: { name: 'start', namespace: 'default', generation: 1 },
    spec: { expected },
  };
  if (opts.quorum !== undefined) b.spec.quorum = opts.quorum;
  if (opts.timeout !== undefined) b.spec.timeout = opts.timeout;
  if (opts.status !== undefined) b.status = opts.status;
  return b;
}

export function gate(
  conditions: Gate['spec']['conditions'],
  opts: { timeout?: string; status?: Gate['status']; name?: string } = {},
): Gate {
  const g: Gate = {
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Gate',
    metadata: {
      name: opts.name ?? 'ready',
      namespace: 'default',
      generation: 1,
      creationTimestamp: new Date(T0).toISOString(),
    },
    spec: { conditions },
  };
  if (opts.timeout !== undefined) g.spec.timeout = opts.timeout;
  if (opts.status !== undefined) g.status = opts.status;
  return g;
}
