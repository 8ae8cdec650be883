/**
 * The manager's HTTPS servers on the real control plane (issue 15, items 10 and 12):
 * - admission and the agent API listen on separate ports, so agents filling the agent port's connections
 *   cannot starve admission;
 * - a slow client (headers that never finish) is cut off by the server's timeouts;
 * - a pod's wait streams are capped: opening more closes the oldest;
 * - only tokens minted for audience `konductor` are accepted: an ordinary service-account token of the
 *   devcluster (its API server's audience only, as in a real cluster) is refused, the injected projected
 *   token still works;
 * - the largest pod etcd stores passes the webhook's body limit.
 */
import { request as httpsRequest } from 'node:https';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import type { Pod, Semaphore } from '../../api/types.ts';
import { postAgent } from '../helpers/agentApi.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { mainRunning, namespacePods, waitingInInit } from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('agent-limits');
const MAX_AGENT_CONNECTIONS = 8;
const konductor = useKonductor(ns, [`--max-agent-connections=${MAX_AGENT_CONNECTIONS}`]);
const client = ns.client;
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`;
const nsPods = namespacePods(ns);
const sockets: TLSSocket[] = [];
afterAll(() => {
  for (const s of sockets) s.destroy();
});

const { createSemaphore } = nsPods;

/** A TLS connection to `url`'s port, open and idle. */
function openConnection(url: string): Promise<TLSSocket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), ca: konductor.install.caPem }, () =>
      resolve(s),
    );
    s.on('error', reject);
    sockets.push(s);
  });
}

/** Resolves when the server closes `socket` (whatever it sends first is read and dropped). */
const closedByServer = (socket: TLSSocket) =>
  new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    socket.once('close', () => resolve());
    socket.resume(); // a paused socket never sees the end of the stream
  });

/** POST to the agent API or admission, leaving no idle keep-alive connection (they count against the cap). */
const post = (url: string, path: string, token?: string) =>
  postAgent(url, konductor.install.caPem, path, token, { agent: false });

/** A /v1/wait stream: resolves `opened` on the first NDJSON event, `ended` when the server ends it. */
function openWaitStream(token: string) {
  let onFirst!: (ev: string) => void;
  const opened = new Promise<string>((r) => {
    onFirst = r;
  });
  let onEnd!: () => void;
  const ended = new Promise<void>((r) => {
    onEnd = r;
  });
  const req = httpsRequest(
    `${konductor.install.url}/v1/wait`,
    {
      method: 'POST',
      ca: konductor.install.caPem,
      agent: false,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    },
    (res) => {
      let first = true;
      res.on('data', (c: Buffer) => {
        if (first) onFirst(`${res.statusCode} ${c.toString()}`);
        first = false;
      });
      res.on('end', onEnd);
      res.on('close', onEnd);
    },
  );
  req.on('error', onEnd);
  req.end('{}');
  return { opened, ended, close: () => req.destroy() };
}

async function tokenFor(pod: string, audiences?: string[]): Promise<string> {
  const p = await nsPods.getPod(pod);
  const tr = await client.create<{ status: { token: string } }>(
    `/api/v1/namespaces/${ns.name}/serviceaccounts/default/token`,
    {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        ...(audiences ? { audiences } : {}),
        expirationSeconds: 600,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod, uid: p.metadata.uid },
      },
    },
  );
  return tr.status.token;
}

describe('admission has its own port', () => {
  it('serves /mutate only on the webhook port and the agent API only on its own', async () => {
    const { admissionUrl, url: agentUrl } = konductor.install;
    expect(new URL(admissionUrl).port).not.toBe(new URL(agentUrl).port);
    expect((await post(agentUrl, '/mutate')).status).toBe(404);
    expect((await post(admissionUrl, '/v1/wait')).status).toBe(404);
    expect((await post(admissionUrl, '/mutate')).status).toBe(400); // not an AdmissionReview, but served
    const cfg = await client.get<{ webhooks: { clientConfig: { url: string } }[] }>(
      `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${konductor.install.webhookConfigurationName}`,
    );
    for (const w of cfg.webhooks) expect(w.clientConfig.url).toBe(`${admissionUrl}/mutate`);
  });

  it('agents holding every agent connection do not starve admission', async () => {
    const held = await Promise.all(
      Array.from({ length: MAX_AGENT_CONNECTIONS }, () => openConnection(konductor.install.url)),
    );
    // The cap is reached: one more connection is closed by the server at once.
    const extra = await openConnection(konductor.install.url).catch(() => undefined);
    if (extra) await closedByServer(extra);
    // Admission is unaffected: an annotated pod is admitted and injected.
    await createSemaphore('starve', 1);
    const pod = await nsPods.createPod('admitted', {
      annotations: { 'konductor.io/semaphore': 'starve' },
      script: 'exit 0',
    });
    expect(pod.spec.initContainers?.[0]?.name).toBe('konductor-wait');
    for (const s of held) s.destroy();
    await nsPods.waitForPhase('admitted', 'Succeeded', { timeoutMs: 60_000 });
  });

  it('a client that never finishes its headers is disconnected by the server', async () => {
    for (const url of [konductor.install.admissionUrl, konductor.install.url]) {
      const s = await openConnection(url);
      s.write('POST /mutate HTTP/1.1\r\nHost: x\r\nX-Slow: ');
      // The server's header deadline is 10 s (Node's default: 60 s, checked every 30 s).
      await expect(
        Promise.race([
          closedByServer(s).then(() => 'closed'),
          new Promise((r) => setTimeout(() => r(`${url} still open after 30 s`), 30_000)),
        ]),
      ).resolves.toBe('closed');
    }
  });
});

describe('the agent API', () => {
  it('refuses an ordinary service-account token (the API server’s audience) and accepts the injected one', async () => {
    await createSemaphore('aud', 1);
    await nsPods.createPod('aud-holder', {
      annotations: { 'konductor.io/semaphore': 'aud' },
      script: 'sleep 3600',
    });
    // The injected projected token (audience konductor) works: the pod was granted and runs.
    await waitFor(async () => mainRunning(await nsPods.getPod('aud-holder')), { message: 'aud-holder runs' });

    // `kubectl create token default --bound-object-kind Pod ...`: the devcluster's default audience only.
    const ordinary = await tokenFor('aud-holder');
    const claims = JSON.parse(Buffer.from(ordinary.split('.')[1] ?? '', 'base64url').toString()) as {
      aud: string[];
    };
    expect(claims.aud).toEqual(['https://kubernetes.default.svc']);
    for (const path of ['/v1/release', '/v1/wait']) {
      const r = await post(konductor.install.url, path, ordinary);
      expect(r.status, path).toBe(401);
      expect(r.body).toContain('KDR_AGENT_UNAUTHENTICATED');
    }
    const unbound = (await kubectl(['create', 'token', 'default'], { namespace: ns.name })).stdout.trim();
    expect([401, 403]).toContain((await post(konductor.install.url, '/v1/release', unbound)).status);

    const sem = await client.get<Semaphore>(`${SEMS}/aud`);
    expect(sem.status?.holders?.map((h) => h.pod)).toEqual(['aud-holder']);
  });

  it('caps a pod’s wait streams: opening more closes the oldest', async () => {
    await createSemaphore('streams', 1);
    await nsPods.createPod('streams-holder', {
      annotations: { 'konductor.io/semaphore': 'streams' },
      script: 'sleep 3600',
    });
    await waitFor(async () => mainRunning(await nsPods.getPod('streams-holder')), { message: 'holder runs' });
    await nsPods.createPod('streams-waiter', {
      annotations: { 'konductor.io/semaphore': 'streams' },
      script: 'exit 0',
    });
    await waitFor(async () => waitingInInit((await nsPods.getPod('streams-waiter')) as Pod), {
      message: 'the waiter waits in konductor-wait',
    });
    const token = await tokenFor('streams-waiter', ['konductor']);
    const first = openWaitStream(token);
    expect(await first.opened).toMatch(/^200 .*"queued"/);
    const second = openWaitStream(token);
    await second.opened;
    const third = openWaitStream(token);
    await third.opened;
    // At most 2 per pod: the first of ours (older than the others) has been closed by the server.
    await first.ended;
    for (const s of [second, third]) s.close();
  });
});

describe('the webhook’s body limit', () => {
  it('admits a pod near the largest etcd stores (1.5 MiB)', async () => {
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'huge', annotations: { 'konductor.io/semaphore': 'huge' } },
      spec: {
        nodeName: 'kt-agent-limits-no-node', // never run: only admission is tested
        restartPolicy: 'Never',
        containers: Array.from({ length: 10 }, (_, i) => ({
          name: `c${i}`,
          image: 'busybox',
          env: Array.from({ length: 100 }, (_, j) => ({ name: `V${j}`, value: 'x'.repeat(1300) })),
        })),
      },
    };
    const size = Buffer.byteLength(JSON.stringify(pod));
    expect(size).toBeGreaterThan(1.2 * 1024 * 1024);
    const created = await client.create<Pod>(`/api/v1/namespaces/${ns.name}/pods`, pod);
    expect(created.spec.initContainers?.[0]?.name).toBe('konductor-wait');
    await client.delete(`/api/v1/namespaces/${ns.name}/pods/huge`).catch(() => undefined);
  });
});
