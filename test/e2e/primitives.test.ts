/**
 * Lease, Barrier and Gate once each on real containers, checked against the containers' own clock
 * (/proc/uptime of the node, printed by each main container).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { kubectl } from '../helpers/kubectl.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { e2eNamespace, ensureInstalled, intervals, kubectlJson, maxConcurrent, stamped } from './helpers.ts';

const ns = e2eNamespace('primitives');
const k = (args: string[], input?: string) =>
  kubectl(args, { namespace: ns.name, ...(input !== undefined ? { input } : {}) });

function pod(
  name: string,
  annotations: Record<string, string>,
  script: string,
  labels: Record<string, string>,
) {
  return stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations, labels },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'main', image: 'busybox:1.37', command: ['sh', '-c', stamped(script)] }],
    },
  });
}

const phase = async (name: string) =>
  (await kubectlJson<{ status: { phase?: string } }>(['get', 'pod', name], ns.name)).status.phase;
const waitSucceeded = (names: string[]) =>
  waitFor(async () => (await Promise.all(names.map(phase))).every((p) => p === 'Succeeded'), {
    timeoutMs: 120_000,
    message: `${names.join(', ')} to succeed`,
  });
const initWaiting = async (name: string) =>
  (await k(['get', 'pod', name, '--no-headers'])).stdout.split(/\s+/)[2] === 'Init:0/2';

describe('Lease, Barrier and Gate on a real node', () => {
  beforeAll(() => ensureInstalled(), 300_000);

  it('Lease: one holder at a time, each with a larger fencing token', async () => {
    await k(
      ['apply', '-f', '-'],
      'apiVersion: sync.konductor.io/v1\nkind: Lease\nmetadata: {name: db}\nspec: {ttl: 2m}\n',
    );
    const names = ['lease-a', 'lease-b', 'lease-c'];
    for (const n of names) {
      await k(
        ['apply', '-f', '-'],
        pod(n, { 'konductor.io/lease': 'db' }, 'cat /var/run/konductor/grant.json; sleep 1', {
          test: 'lease',
        }),
      );
    }
    await waitSucceeded(names);
    const stamps = (await intervals(ns.name, 'test=lease', 'main')).sort((a, b) => a.start - b.start);
    expect(maxConcurrent(stamps)).toBe(1);
    const tokens: number[] = [];
    for (const s of stamps) {
      const log = (await k(['logs', s.pod, '-c', 'main'])).stdout;
      tokens.push(Number(/"token": (\d+)/.exec(log)?.[1]));
    }
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
    expect(new Set(tokens).size).toBe(3);
  });

  it('Barrier: pods wait until the last one arrives, then start together', async () => {
    await k(
      ['apply', '-f', '-'],
      'apiVersion: sync.konductor.io/v1\nkind: Barrier\nmetadata: {name: together}\nspec: {expected: 3, timeout: 5m}\n',
    );
    const ann = { 'konductor.io/barrier': 'together' };
    await k(['apply', '-f', '-'], pod('bar-1', ann, 'true', { test: 'barrier' }));
    await k(['apply', '-f', '-'], pod('bar-2', ann, 'true', { test: 'barrier' }));
    await waitFor(
      async () => {
        const b = await kubectlJson<{ status: { arrived?: number } }>(
          ['get', 'barrier', 'together'],
          ns.name,
        );
        return b.status.arrived === 2 && (await initWaiting('bar-1')) && (await initWaiting('bar-2'));
      },
      { timeoutMs: 60_000, message: '2 of 3 arrived, both waiting in Init:0/2' },
    );
    // A reading of the node's clock taken after both arrived and before the third pod exists.
    await k(['apply', '-f', '-'], pod('clock', {}, 'true', { test: 'clock' }));
    await waitSucceeded(['clock']);
    const [clock] = await intervals(ns.name, 'test=clock', 'main');
    await k(['apply', '-f', '-'], pod('bar-3', ann, 'true', { test: 'barrier' }));
    await waitSucceeded(['bar-1', 'bar-2', 'bar-3']);
    const stamps = await intervals(ns.name, 'test=barrier', 'main');
    for (const s of stamps)
      expect(s.start, `${s.pod} started after the clock pod`).toBeGreaterThan(clock?.end ?? 0);
    const b = await kubectlJson<{ status: { phase: string } }>(['get', 'barrier', 'together'], ns.name);
    expect(b.status.phase).toBe('Open');
  });

  it('Gate: the report starts only after the preprocessing Job completed', async () => {
    await k(
      ['apply', '-f', '-'],
      stringify({
        apiVersion: 'sync.konductor.io/v1',
        kind: 'Gate',
        metadata: { name: 'after-prep' },
        spec: { conditions: [{ type: 'Job', name: 'prep', state: 'Complete' }], timeout: '5m' },
      }),
    );
    await k(
      ['apply', '-f', '-'],
      pod('report', { 'konductor.io/gate': 'after-prep' }, 'echo report', { test: 'report' }),
    );
    await waitFor(() => initWaiting('report'), { timeoutMs: 60_000, message: 'report waiting at the gate' });
    await k(
      ['apply', '-f', '-'],
      stringify({
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name: 'prep' },
        spec: {
          backoffLimit: 0,
          template: {
            metadata: { labels: { test: 'prep' } },
            spec: {
              restartPolicy: 'Never',
              containers: [
                { name: 'main', image: 'busybox:1.37', command: ['sh', '-c', stamped('sleep 2')] },
              ],
            },
          },
        },
      }),
    );
    await waitSucceeded(['report']);
    const [prep] = await intervals(ns.name, 'test=prep', 'main');
    const [report] = await intervals(ns.name, 'test=report', 'main');
    expect(report?.start).toBeGreaterThan(prep?.end ?? Number.POSITIVE_INFINITY);
  });
});
