/** The event recorder against the real API server: per-pod events as they come, primitive events aggregated. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KubeClient } from '../../api/kubeClient.ts';
import { EventRecorder } from '../../controller/eventRecorder.ts';
import { clusterInfo } from '../helpers/cluster.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { kubeconfigThrough, startTcpProxy } from '../helpers/tcpProxy.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('events');

interface CoreEvent {
  involvedObject: { kind: string; name: string };
  reason: string;
  message: string;
  count?: number;
  type: string;
}

describe('EventRecorder', () => {
  it('aggregates Normal events on a primitive into one Event with a count; pod and Warning events pass as they come', async () => {
    const recorder = new EventRecorder({ client: ns.client, aggregateMs: 60_000 });
    const sem = { apiVersion: 'sync.konductor.io/v1', kind: 'Semaphore', name: 'busy', namespace: ns.name };
    for (let i = 0; i < 5; i++) {
      recorder.record({
        target: sem,
        type: 'Normal',
        reason: 'Released',
        message: `pod p${i} released 1 permit`,
      });
    }
    recorder.record({ target: sem, type: 'Warning', reason: 'Expired', message: 'pod p9 lost 1 permit' });
    recorder.record({
      target: { apiVersion: 'v1', kind: 'Pod', name: 'p0', namespace: ns.name },
      type: 'Normal',
      reason: 'Granted',
      message: 'granted 1 permit',
    });
    // Before the window ends only the Warning and the pod event are sent.
    const early = await waitFor(
      async () => {
        const list = await ns.client.list<CoreEvent>(`/api/v1/namespaces/${ns.name}/events`);
        return list.items.length >= 2 ? list.items : undefined;
      },
      { message: 'the immediate events' },
    );
    expect(early.map((e) => e.reason).sort()).toEqual(['Expired', 'Granted']);
    recorder.flushAggregates();
    const all = await waitFor(
      async () => {
        const list = await ns.client.list<CoreEvent>(`/api/v1/namespaces/${ns.name}/events`);
        return list.items.length >= 3 ? list.items : undefined;
      },
      { message: 'the aggregated event' },
    );
    const released = all.filter((e) => e.reason === 'Released');
    expect(released).toHaveLength(1);
    expect(released[0]?.count).toBe(5);
    expect(released[0]?.message).toBe('pod p4 released 1 permit (and 4 more Released since the last report)');
  });

  it('sends again an Event the API server could not take (an outage): an Expired warning is not lost', async () => {
    const info = clusterInfo();
    const url = new URL(info.apiserverUrl);
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
    const kubeconfig = await kubeconfigThrough(
      proxy,
      info.kubeconfigPath,
      join(info.dataDir, `kubeconfig-events-${ns.name}`),
    );
    const client = KubeClient.fromKubeconfig(kubeconfig);
    try {
      let failed = 0;
      const recorder = new EventRecorder({
        client,
        retry: { baseMs: 100, maxMs: 6400, budgetMs: 12_700 },
        onError: () => failed++,
      });
      proxy.cut();
      recorder.record({
        target: { apiVersion: 'v1', kind: 'Pod', name: 'outlived', namespace: ns.name },
        type: 'Warning',
        reason: 'Expired',
        message: 'lost 1 permit of semaphore s: held longer than its ttl',
      });
      await waitFor(() => failed >= 1, { message: 'a send refused while the API server is unreachable' });
      proxy.restore();
      const sent = await waitFor(
        async () => {
          const list = await ns.client.list<CoreEvent>(`/api/v1/namespaces/${ns.name}/events`);
          return list.items.find((e) => e.involvedObject.name === 'outlived');
        },
        { timeoutMs: 30_000, message: 'the Expired event, sent once the API server answers again' },
      );
      expect(sent.reason).toBe('Expired');
      expect(sent.type).toBe('Warning');
    } finally {
      client.close();
      await proxy.close();
    }
  });
});
