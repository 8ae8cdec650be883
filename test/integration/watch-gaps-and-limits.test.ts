/**
 * Two edges of the storage under the API server, on a control plane of this file's own (the shared one must
 * not be cut off, compacted or shrunk under other files):
 *
 * - A watch that was away while an object was deleted and recreated under the same name resumes into a
 *   410 Gone (etcd compacted past its resourceVersion; the watch cache is off so that etcd answers) and
 *   re-lists: the informer must report the old object deleted and the new one added, and the controller must
 *   give back the deleted holder's permit (issue 15, item 3: a StatefulSet pod recreated during an outage).
 * - A status write larger than etcd accepts (here --max-request-bytes=48 KiB, 1.5 MiB by default) is refused:
 *   the controller must say so on the object, in its Ready condition and a Warning Event (item 8).
 *
 * The manager reaches the API server through a TCP proxy the test can cut (test/helpers/tcpProxy.ts); the
 * process kubelet and the test's own client go direct.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Informer, type InformerEvent } from '../../api/informer.ts';
import { isGone, KubeClient } from '../../api/kubeClient.ts';
import type { Gate, Pod, Semaphore } from '../../api/types.ts';
import { compactEtcd as compactEtcdAt } from '../../devcluster/etcd.ts';
import { type DevCluster, startCluster } from '../../devcluster/index.ts';
import { installKonductor, type KonductorInstall } from '../../devcluster/konductor.ts';
import { type ProcessKubelet, startProcessKubelet } from '../../devcluster/kubelet/index.ts';
import { type AgentAnswer, mintPodToken, postAgent } from '../helpers/agentApi.ts';
import { kubeconfigThrough, startTcpProxy, type TcpProxy } from '../helpers/tcpProxy.ts';
import { waitFor } from '../helpers/waitFor.ts';

const NS = 'default';
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${NS}/semaphores`;
const GATES = `/apis/sync.konductor.io/v1/namespaces/${NS}/gates`;
const PODS = `/api/v1/namespaces/${NS}/pods`;
const CONFIGMAPS = `/api/v1/namespaces/${NS}/configmaps`;
const ETCD_MAX_REQUEST_BYTES = 48 * 1024;

let cluster: DevCluster;
let kubelet: ProcessKubelet;
let proxy: TcpProxy;
let konductor: KonductorInstall;

beforeAll(async () => {
  cluster = await startCluster({
    log: () => undefined,
    extraApiserverArgs: ['--watch-cache=false'],
    extraEtcdArgs: [`--max-request-bytes=${ETCD_MAX_REQUEST_BYTES}`],
  });
  kubelet = await startProcessKubelet({ cluster });
  proxy = await startTcpProxy({ host: '127.0.0.1', port: cluster.apiserverPort });
  const proxied = await kubeconfigThrough(
    proxy,
    cluster.kubeconfigPath,
    join(cluster.dataDir, 'kubeconfig-through-proxy'),
  );
  konductor = await installKonductor(
    {
      client: cluster.client,
      kubeconfigPath: proxied,
      dataDir: cluster.dataDir,
      processes: cluster.processes,
    },
    { log: () => undefined },
  );
});

afterAll(async () => {
  await konductor?.uninstall();
  await kubelet?.stop();
  await proxy?.close();
  await cluster?.stop();
});

/** Compacts etcd at its current revision: every older resourceVersion is gone (watches from it get 410). */
const compactEtcd = () => compactEtcdAt(cluster.etcdUrl);

const annotatedPod = (name: string, script: string): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, annotations: { 'konductor.io/semaphore': 'sts' } },
  spec: {
    restartPolicy: 'Never',
    terminationGracePeriodSeconds: 1,
    containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', script] }],
  },
});

describe('a re-list after 410 Gone', () => {
  it('reports a new UID under an old name as the old object deleted and the new one added', async () => {
    const client = new KubeClient({ ...cluster.kubeConfig, server: `https://127.0.0.1:${proxy.port}` });
    const events: InformerEvent<{ metadata: { name?: string; uid?: string } }>[] = [];
    let gone = 0;
    const informer = new Informer<{ metadata: { name?: string; uid?: string; resourceVersion?: string } }>(
      client,
      {
        path: CONFIGMAPS,
        fieldSelector: 'metadata.name=reborn',
        onEvent: (ev) => events.push(ev),
        onError: (err) => {
          if (isGone(err)) gone++;
        },
      },
    );
    try {
      const first = await cluster.client.create<{ metadata: { uid: string } }>(CONFIGMAPS, {
        metadata: { name: 'reborn' },
      });
      informer.start();
      await informer.synced;
      await waitFor(
        () => events.some((e) => e.type === 'added' && e.object.metadata.uid === first.metadata.uid),
        {
          message: 'the first object is cached',
        },
      );
      proxy.cut();
      await cluster.client.delete(`${CONFIGMAPS}/reborn`);
      const second = await cluster.client.create<{ metadata: { uid: string } }>(CONFIGMAPS, {
        metadata: { name: 'reborn' },
      });
      await compactEtcd();
      events.length = 0;
      proxy.restore();
      await waitFor(() => informer.get(`${NS}/reborn`)?.metadata.uid === second.metadata.uid, {
        message: 'the cache holds the new object',
      });
      expect(gone, 'the watch resumed into 410 Gone and re-listed').toBeGreaterThan(0);
      expect(events.map((e) => [e.type, e.object.metadata.uid])).toEqual([
        ['deleted', first.metadata.uid],
        ['added', second.metadata.uid],
      ]);
    } finally {
      proxy.restore();
      informer.stop();
      client.close();
    }
  });

  it("gives back the permit of a holder recreated under the same name while the manager's watch was away", async () => {
    await cluster.client.create(SEMS, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name: 'sts' },
      spec: { permits: 1 },
    });
    const getSem = () => cluster.client.get<Semaphore>(`${SEMS}/sts`);
    const old = await cluster.client.create<Pod>(PODS, annotatedPod('web-0', 'sleep 3600'));
    await waitFor(async () => (await getSem()).status?.holders?.[0]?.uid === old.metadata.uid, {
      message: 'web-0 holds the permit',
    });
    await cluster.client.create(PODS, annotatedPod('batch', 'true'));
    await waitFor(async () => (await getSem()).status?.waiting === 1, { message: 'batch waits' });

    // The manager loses the API server; meanwhile web-0 is deleted and recreated (a StatefulSet would).
    proxy.cut();
    try {
      await cluster.client.delete(`${PODS}/web-0`, { gracePeriodSeconds: 0 });
      await waitFor(
        async () =>
          (await cluster.client.list<Pod>(PODS, { fieldSelector: 'metadata.name=web-0' })).items.length === 0,
        { message: 'the old web-0 is gone' },
      );
      await cluster.client.create(PODS, annotatedPod('web-0', 'true'));
      await compactEtcd();
    } finally {
      proxy.restore();
    }
    // The manager re-lists (410): the old web-0's permit comes back; both other pods get their turn.
    await waitFor(
      async () => {
        const phases = await Promise.all(
          ['batch', 'web-0'].map(async (n) => (await cluster.client.get<Pod>(`${PODS}/${n}`)).status?.phase),
        );
        return phases.every((p) => p === 'Succeeded');
      },
      { timeoutMs: 60_000, message: 'batch and the new web-0 were granted and ran' },
    );
    const sem = await getSem();
    expect(sem.status?.holders.some((h) => h.uid === old.metadata.uid)).toBe(false);
  });
});

describe('a pod cache that missed events (410 Gone)', () => {
  it('is not decided from until it has re-listed: a waiter deleted meanwhile is never granted', async () => {
    const ROLE = '/apis/rbac.authorization.k8s.io/v1/clusterroles/konductor-manager';
    await cluster.client.create(SEMS, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name: 'gap' },
      spec: { permits: 1 },
    });
    const getSem = () => cluster.client.get<Semaphore>(`${SEMS}/gap`);
    const gapPod = (name: string, script: string): Pod => {
      const pod = annotatedPod(name, script);
      pod.metadata.annotations = { 'konductor.io/semaphore': 'gap' };
      return pod;
    };
    await cluster.client.create(PODS, gapPod('gap-holder', 'sleep 3600'));
    await waitFor(async () => (await getSem()).status?.holders?.[0]?.pod === 'gap-holder', {
      message: 'gap-holder holds the permit',
    });
    const waiter = await cluster.client.create<Pod>(PODS, gapPod('gap-waiter', 'true'));
    await waitFor(async () => (await getSem()).status?.waiting === 1, { message: 'gap-waiter waits' });
    let grantedToGone = false;
    const watcher = new Informer<Semaphore>(cluster.client, {
      path: SEMS,
      fieldSelector: 'metadata.name=gap',
      onEvent: (ev) => {
        if (ev.type !== 'deleted' && ev.object.status?.holders?.some((h) => h.uid === waiter.metadata.uid))
          grantedToGone = true;
      },
    }).start();
    await watcher.synced;
    const role = await cluster.client.get<{ rules: { resources?: string[]; verbs: string[] }[] }>(ROLE);
    try {
      // While the manager is cut off, the waiter goes and etcd forgets the manager's place in the pod watch.
      proxy.cut();
      await cluster.client.delete(`${PODS}/gap-waiter`, { gracePeriodSeconds: 0 });
      await waitFor(
        async () =>
          (await cluster.client.list<Pod>(PODS, { fieldSelector: 'metadata.name=gap-waiter' })).items
            .length === 0,
        { message: 'gap-waiter is gone' },
      );
      await compactEtcd();
      // The re-list the pod watch needs cannot complete (as under a list the API server is slow to serve).
      await cluster.client.replace(ROLE, {
        ...role,
        rules: role.rules.map((r) =>
          r.resources?.includes('pods') ? { ...r, verbs: r.verbs.filter((v) => v !== 'list') } : r,
        ),
      });
      proxy.restore();
      // Something to decide: a second permit. From its stale pod cache the manager would grant gap-waiter.
      await cluster.client.patchMerge(`${SEMS}/gap`, { spec: { permits: 2 } });
      const log = konductor.manager()?.logPath ?? '';
      await waitFor(async () => grantedToGone || (await readFile(log, 'utf8')).includes('decisions paused'), {
        timeoutMs: 60_000,
        message: 'gap-waiter granted, or decisions paused',
      });
      expect(grantedToGone, 'a deleted waiter was granted from a cache that missed its deletion').toBe(false);
    } finally {
      await cluster.client.replace(ROLE, { ...(await cluster.client.get<object>(ROLE)), rules: role.rules });
      proxy.restore();
    }
    // Once the pods are re-listed, the decision is made from the API's state: nobody else waits.
    await waitFor(
      async () => {
        const s = await getSem();
        return s.status?.observedGeneration === s.metadata.generation && s.status?.waiting === 0;
      },
      { timeoutMs: 60_000, message: 'the second permit decided after the re-list' },
    );
    watcher.stop();
    expect(grantedToGone).toBe(false);
    expect((await getSem()).status?.holders.map((h) => h.pod)).toEqual(['gap-holder']);
  });
});

describe('an agent request while the manager cannot reach the API server', () => {
  it('is answered 503 (retry later), not a 500, when its token cannot be reviewed', async () => {
    const pod = await cluster.client.create<Pod>(PODS, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'unreviewed' },
      spec: { containers: [{ name: 'main', image: 'busybox', command: ['sleep', '3600'] }] },
    });
    const token = await mintPodToken(cluster.client, NS, { name: 'unreviewed', uid: pod.metadata.uid }, [
      'konductor',
    ]);
    const release = () => postAgent(konductor.url, konductor.caPem, '/v1/release', token);
    proxy.cut();
    let answer: AgentAnswer;
    try {
      answer = await release();
    } finally {
      proxy.restore();
    }
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toMatchObject({ code: 'KDR_AGENT_AUTH_UNAVAILABLE' });
    // Not remembered as a refusal: once the API server is reachable the same token is reviewed and accepted.
    await waitFor(async () => (await release()).status === 200, { message: 'the release is answered' });
  });
});

describe('a status write too large for etcd', () => {
  it('is reported in the Ready condition and a Warning Event instead of failing silently', async () => {
    // 64 conditions on Jobs with 253-character names: the spec fits in 48 KiB, the status that describes
    // each condition does not.
    const conditions = Array.from({ length: 64 }, (_, i) => ({
      type: 'Job' as const,
      name: `job-${String(i).padStart(2, '0')}-${'x'.repeat(246)}`,
      state: 'Complete',
    }));
    await cluster.client.create(GATES, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Gate',
      metadata: { name: 'oversized' },
      spec: { conditions },
    });
    const gate = await waitFor(
      async () => {
        const g = await cluster.client.get<Gate>(`${GATES}/oversized`);
        const ready = g.status?.conditions?.find((c) => c.type === 'Ready');
        return ready?.reason === 'StatusTooLarge' ? g : undefined;
      },
      { message: 'Ready=False StatusTooLarge on the Gate' },
    );
    const ready = gate.status?.conditions?.find((c) => c.type === 'Ready');
    expect(ready?.status).toBe('False');
    expect(ready?.message).toMatch(/refused for its size .*request is too large/);
    const event = await waitFor(
      async () =>
        (
          await cluster.client.list<{ reason: string; type: string; involvedObject: { name: string } }>(
            `/api/v1/namespaces/${NS}/events`,
          )
        ).items.find((e) => e.reason === 'StatusTooLarge' && e.involvedObject.name === 'oversized'),
      { message: 'a StatusTooLarge Event on the Gate' },
    );
    expect(event.type).toBe('Warning');
  });
});

describe('a ttl expiry', () => {
  it('is announced before the status takes the grant: while the manager may not send Events the holder keeps it', async () => {
    const ROLE = '/apis/rbac.authorization.k8s.io/v1/clusterroles/konductor-manager';
    await cluster.client.create(SEMS, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name: 'announce' },
      spec: { permits: 1, ttl: '2s' },
    });
    const getSem = () => cluster.client.get<Semaphore>(`${SEMS}/announce`);
    const pod = annotatedPod('announce-holder', 'sleep 3600');
    pod.metadata.annotations = { 'konductor.io/semaphore': 'announce' };
    const holder = await cluster.client.create<Pod>(PODS, pod);
    const role = await cluster.client.get<{ rules: { resources?: string[]; verbs: string[] }[] }>(ROLE);
    let takenWhileSilenced = false;
    let silenced = false;
    const watcher = new Informer<Semaphore>(cluster.client, {
      path: SEMS,
      fieldSelector: 'metadata.name=announce',
      onEvent: (ev) => {
        const holds = ev.object.status?.holders?.some((h) => h.uid === holder.metadata.uid) ?? false;
        if (silenced && ev.type !== 'deleted' && !holds) takenWhileSilenced = true;
      },
    }).start();
    await watcher.synced;
    const log = konductor.manager()?.logPath ?? '';
    const logSize = async () => (await readFile(log, 'utf8')).length;
    try {
      await waitFor(async () => (await getSem()).status?.holders?.[0]?.uid === holder.metadata.uid, {
        message: 'announce-holder holds the permit',
      });
      // Then the manager may not create Events: the grant's ttl (2 s) runs out while it is silenced.
      const from = await logSize();
      await cluster.client.replace(ROLE, {
        ...role,
        rules: role.rules.map((r) =>
          r.resources?.includes('events') ? { ...r, verbs: r.verbs.filter((v) => v !== 'create') } : r,
        ),
      });
      silenced = true;
      // Past the ttl the manager decides to expire the grant; its Expired announcement is refused (403) and the
      // decision is retried — or, without the announcement first, the grant is simply taken.
      await waitFor(
        async () => {
          const text = (await readFile(log, 'utf8')).slice(from);
          const refused = text
            .split('\n')
            .some((l) => l.includes('reconcile failed') && l.includes('events is forbidden'));
          return takenWhileSilenced || refused;
        },
        {
          timeoutMs: 60_000,
          message: 'the expiry held back by its refused announcement, or the grant taken',
        },
      );
      expect(takenWhileSilenced, 'the grant was taken while its Expired Event could not be sent').toBe(false);
      expect((await getSem()).status?.holders?.map((h) => h.pod)).toEqual(['announce-holder']);
    } finally {
      silenced = false;
      await cluster.client.replace(ROLE, { ...(await cluster.client.get<object>(ROLE)), rules: role.rules });
    }
    // Allowed again: the Event is sent, then the grant goes.
    await waitFor(async () => ((await getSem()).status?.holders ?? []).length === 0, {
      timeoutMs: 60_000,
      message: 'the grant expires once its Event can be sent',
    });
    const events = await cluster.client.list<{ involvedObject: { name: string }; reason: string }>(
      `/api/v1/namespaces/${NS}/events`,
    );
    expect(
      events.items.some((e) => e.involvedObject.name === 'announce-holder' && e.reason === 'Expired'),
    ).toBe(true);
    watcher.stop();
    expect(takenWhileSilenced).toBe(false);
    await cluster.client.delete(`${PODS}/announce-holder`, { gracePeriodSeconds: 0 });
  });
});
