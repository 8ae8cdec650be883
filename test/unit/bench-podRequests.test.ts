/**
 * The wait-resources benchmark's arithmetic (bench/podRequests.ts): quantities and a pod's effective requests
 * the way kube-scheduler counts them, with init containers and native sidecars.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Container, Pod } from '../../api/types.ts';
import { parseQuantity, podRequests, sumRequests } from '../../bench/podRequests.ts';
import { buildInjectionPatch } from '../../webhook/injectionPatch.ts';

const c = (name: string, cpu: string, memory: string, sidecar = false): Container => ({
  name,
  resources: { requests: { cpu, memory } },
  ...(sidecar ? { restartPolicy: 'Always' as const } : {}),
});

describe('parseQuantity', () => {
  it('reads the forms the API server accepts', () => {
    expect(parseQuantity('100m')).toBeCloseTo(0.1);
    expect(parseQuantity('2')).toBe(2);
    expect(parseQuantity('0.5')).toBe(0.5);
    expect(parseQuantity('128Mi')).toBe(128 * 2 ** 20);
    expect(parseQuantity('64Gi')).toBe(64 * 2 ** 30);
    expect(parseQuantity('1G')).toBe(1e9);
    expect(parseQuantity('1e3')).toBe(1000);
    expect(parseQuantity(undefined)).toBe(0);
  });

  it('refuses what is not a quantity', () => {
    for (const bad of ['', 'Mi', '1.2.3', '10 Mi', 'abc', '5mi']) expect(() => parseQuantity(bad)).toThrow();
  });

  it('is linear in the number for every binary suffix', () => {
    fc.assert(
      fc.property(fc.nat(1_000_000), fc.constantFrom('Ki', 'Mi', 'Gi'), (n, suffix) => {
        expect(parseQuantity(`${n}${suffix}`)).toBe(n * parseQuantity(`1${suffix}`));
      }),
    );
  });
});

describe('podRequests', () => {
  it('sums regular containers and sidecars; an init container counts with the sidecars before it', () => {
    expect(
      podRequests({
        initContainers: [c('wait', '10m', '48Mi'), c('hold', '10m', '48Mi', true)],
        containers: [c('work', '100m', '128Mi')],
      }),
    ).toEqual({ cpu: 0.11, memory: 176 * 2 ** 20 });
    // A big ordinary init container sets the pod's request; a sidecar started before it adds to it.
    const r = podRequests({
      initContainers: [c('side', '50m', '10Mi', true), c('setup', '2', '1Gi')],
      containers: [c('work', '100m', '128Mi')],
    });
    expect(r.cpu).toBeCloseTo(2.05);
    expect(r.memory).toBe(2 ** 30 + 10 * 2 ** 20);
  });

  it('counts the containers konductor injects into a Job pod', () => {
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', annotations: { 'konductor.io/semaphore': 's' } },
      spec: { containers: [c('work', '100m', '128Mi')] },
    };
    const patch = buildInjectionPatch(pod, {
      agentImage: 'agent',
      agentUrl: 'https://127.0.0.1:1',
      caBundle: '',
      version: '0',
      admittedAt: new Date(0).toISOString(),
    });
    const op = patch.find((o) => o.path === '/spec/initContainers');
    const inits = (op && 'value' in op ? op.value : []) as Container[];
    const r = podRequests({ ...pod.spec, initContainers: inits });
    // work + the konductor-hold sidecar (10m / 48Mi); konductor-wait ends before them.
    expect(r.cpu).toBeCloseTo(0.11);
    expect(r.memory).toBe(176 * 2 ** 20);
  });

  it('is never less than the regular containers, nor than any init container alone', () => {
    const req = fc.record({ cpu: fc.nat(4000), mem: fc.nat(4096) });
    const container = fc.record({ r: req, sidecar: fc.boolean() });
    fc.assert(
      fc.property(
        fc.array(container, { maxLength: 4 }),
        fc.array(req, { minLength: 1, maxLength: 3 }),
        (inits, mains) => {
          const toC = (x: { cpu: number; mem: number }, i: number, sidecar = false) =>
            c(`c${i}`, `${x.cpu}m`, `${x.mem}Mi`, sidecar);
          const spec = {
            initContainers: inits.map((x, i) => toC(x.r, i, x.sidecar)),
            containers: mains.map((x, i) => toC(x, i + 10)),
          };
          const r = podRequests(spec);
          const mainSum = sumRequests(mains.map((x) => ({ cpu: x.cpu / 1000, memory: x.mem * 2 ** 20 })));
          expect(r.cpu).toBeGreaterThanOrEqual(mainSum.cpu - 1e-9);
          expect(r.memory).toBeGreaterThanOrEqual(mainSum.memory);
          for (const x of inits) {
            expect(r.cpu).toBeGreaterThanOrEqual(x.r.cpu / 1000 - 1e-9);
            expect(r.memory).toBeGreaterThanOrEqual(x.r.mem * 2 ** 20);
          }
        },
      ),
    );
  });
});
