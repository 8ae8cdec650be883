/**
 * What a pod asks of its node, as kube-scheduler counts it: resource quantities (CPU in cores, memory in
 * bytes) and a pod's effective requests with init containers and native sidecars (KEP-753): the larger of
 * (every regular container + every sidecar) and, for each ordinary init container, itself plus the sidecars
 * started before it. Pure functions, for the wait-resources benchmark.
 */
import type { Container, PodSpec } from '../api/types.ts';

export interface Requests {
  /** Cores. */
  cpu: number;
  /** Bytes. */
  memory: number;
}

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A Kubernetes resource quantity (`100m`, `0.5`, `128Mi`, `1G`, `1e3`) as a number; throws on anything else. */
export function parseQuantity(q: string | number | undefined): number {
  if (q === undefined) return 0;
  if (typeof q === 'number') return q;
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(
    q.trim(),
  );
  if (!m) throw new Error(`not a resource quantity: ${JSON.stringify(q)}`);
  return Number(m[1]) * (SUFFIX[m[2] ?? ''] as number);
}

export function containerRequests(c: Pick<Container, 'resources'>): Requests {
  const r = c.resources?.requests ?? {};
  return { cpu: parseQuantity(r.cpu), memory: parseQuantity(r.memory) };
}

const add = (a: Requests, b: Requests): Requests => ({ cpu: a.cpu + b.cpu, memory: a.memory + b.memory });
const max = (a: Requests, b: Requests): Requests => ({
  cpu: Math.max(a.cpu, b.cpu),
  memory: Math.max(a.memory, b.memory),
});
const ZERO: Requests = { cpu: 0, memory: 0 };

/** The pod's effective requests (per resource, as the scheduler's NodeResourcesFit computes them). */
export function podRequests(spec: Pick<PodSpec, 'containers' | 'initContainers'>): Requests {
  let sidecars = ZERO;
  let initPeak = ZERO;
  for (const c of spec.initContainers ?? []) {
    if (c.restartPolicy === 'Always') sidecars = add(sidecars, containerRequests(c));
    else initPeak = max(initPeak, add(containerRequests(c), sidecars));
  }
  const steady = spec.containers.reduce((sum, c) => add(sum, containerRequests(c)), sidecars);
  return max(steady, initPeak);
}

export function sumRequests(all: readonly Requests[]): Requests {
  return all.reduce(add, ZERO);
}
