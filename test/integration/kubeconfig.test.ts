/**
 * Kubeconfigs against the real kube-apiserver: an exec credential plugin (a small script) handing out the
 * admin's client certificate, a service-account token in a token file and from an exec plugin, both
 * refreshed after a 401, a KUBECONFIG of two merged files with contexts, proxy-url through a local CONNECT
 * proxy, tls-server-name — and the manager itself started with `--kubeconfig ... --context ...`.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { KubeApiError, KubeClient } from '../../api/kubeClient.ts';
import { type KubeconfigSelection, resolveKubeconfig } from '../../api/kubeconfig.ts';
import { connectKubeconfig } from '../../api/kubeconfigSource.ts';
import type { Semaphore } from '../../api/types.ts';
import { clusterInfo } from '../helpers/cluster.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { mainRunning, namespacePods } from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('kubeconfig');
const admin = ns.client;
const info = clusterInfo();
const dir = join(info.dataDir, `kubeconfig-${ns.name}`);
mkdirSync(join(dir, 'bin'), { recursive: true });

// The devcluster's admin kubeconfig: server, CA and the admin's client certificate.
const devcluster = parseYaml(readFileSync(info.kubeconfigPath, 'utf8')) as {
  clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
  users: { user: { 'client-certificate-data': string; 'client-key-data': string } }[];
};
const server = devcluster.clusters[0]!.cluster.server;
const caData = devcluster.clusters[0]!.cluster['certificate-authority-data'];
const pem = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');

/** An exec plugin (shell script) that prints the admin's client certificate and counts its runs. */
const certPlugin = join(dir, 'bin', 'admin-cert.sh');
writeFileSync(
  certPlugin,
  `#!/bin/sh
echo run >> ${certPlugin}.runs
cat ${certPlugin}.json
`,
);
chmodSync(certPlugin, 0o755);
writeFileSync(
  `${certPlugin}.json`,
  JSON.stringify({
    apiVersion: 'client.authentication.k8s.io/v1',
    kind: 'ExecCredential',
    status: {
      clientCertificateData: pem(devcluster.users[0]!.user['client-certificate-data']),
      clientKeyData: pem(devcluster.users[0]!.user['client-key-data']),
    },
  }),
);
const runsOf = (plugin: string) => {
  try {
    return readFileSync(`${plugin}.runs`, 'utf8').trim().split('\n').length;
  } catch {
    return 0;
  }
};

/** Two files: the first sets current-context and the exec user; the second the cluster and a token user. */
const first = join(dir, 'first.yaml');
const second = join(dir, 'second.yaml');
writeFileSync(
  first,
  stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'exec',
    users: [
      {
        name: 'exec-admin',
        user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: './bin/admin-cert.sh' } },
      },
    ],
    contexts: [{ name: 'exec', context: { cluster: 'dev', user: 'exec-admin', namespace: ns.name } }],
  }),
);
writeFileSync(
  second,
  stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'sa',
    clusters: [{ name: 'dev', cluster: { server, 'certificate-authority-data': caData } }],
    users: [{ name: 'sa', user: { 'token-file': 'sa-token' } }],
    contexts: [{ name: 'sa', context: { cluster: 'dev', user: 'sa', namespace: ns.name } }],
  }),
);
const merged = `${first}:${second}`;
const env = { ...process.env, KUBECONFIG: merged };
const resolver = (sel: KubeconfigSelection) => resolveKubeconfig(sel, env);

// The manager of this file runs with a kubeconfig whose current context is another one: --context picks exec.
// Its exec plugin hands out the token of the manager's own ServiceAccount (only that identity may write the
// primitives' status: the status-writer admission policy), read from the file the devcluster install writes.
const managerPlugin = join(dir, 'bin', 'manager-token.sh');
const managerTokenFile = join(info.dataDir, `konductor-${ns.name}`, 'manager.kubeconfig.token');
writeFileSync(
  managerPlugin,
  `#!/bin/sh
echo run >> ${managerPlugin}.runs
echo "{\\"apiVersion\\":\\"client.authentication.k8s.io/v1\\",\\"kind\\":\\"ExecCredential\\",\\"status\\":{\\"token\\":\\"$(cat ${managerTokenFile})\\"}}"
`,
);
chmodSync(managerPlugin, 0o755);
const managerKubeconfig = join(dir, 'manager.yaml');
writeFileSync(
  managerKubeconfig,
  stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'nowhere',
    clusters: [{ name: 'dev', cluster: { server, 'certificate-authority-data': caData } }],
    users: [
      {
        name: 'exec-manager',
        user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: './bin/manager-token.sh' } },
      },
    ],
    contexts: [{ name: 'exec', context: { cluster: 'dev', user: 'exec-manager', namespace: ns.name } }],
  }),
);
const konductor = useKonductor(ns, [`--kubeconfig=${managerKubeconfig}`, '--context=exec']);

/** A token of the namespace's default service account, allowed to read pods (ClusterRole view). */
async function serviceAccountToken(): Promise<string> {
  await waitFor(async () => {
    try {
      await admin.get(`/api/v1/namespaces/${ns.name}/serviceaccounts/default`);
      return true;
    } catch {
      return false;
    }
  });
  await admin.create(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns.name}/rolebindings`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: 'default-view' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
    subjects: [{ kind: 'ServiceAccount', name: 'default', namespace: ns.name }],
  });
  const tr = await admin.create<{ status: { token: string } }>(
    `/api/v1/namespaces/${ns.name}/serviceaccounts/default/token`,
    { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  );
  return tr.status.token;
}

let saToken = '';
beforeAll(async () => {
  saToken = await serviceAccountToken();
});

describe('exec credential plugins', () => {
  it('the merged KUBECONFIG’s current context (first file) runs the exec plugin, relative to its file', async () => {
    const client = new KubeClient(await connectKubeconfig({}, resolver));
    try {
      expect(client.connection).toMatchObject({ context: 'exec', namespace: ns.name, server });
      const nsObj = await client.get<{ metadata: { name: string } }>(`/api/v1/namespaces/${ns.name}`);
      expect(nsObj.metadata.name).toBe(ns.name);
      expect(runsOf(certPlugin)).toBeGreaterThanOrEqual(1);
    } finally {
      client.close();
    }
  });

  it('a 401 makes the next request run the plugin again (a revoked or expired credential)', async () => {
    const plugin = join(dir, 'bin', 'token.sh');
    // First run: a token the API server rejects; later runs: the service account's.
    writeFileSync(
      plugin,
      `#!/bin/sh
echo run >> ${plugin}.runs
if [ "$(wc -l < ${plugin}.runs)" -eq 1 ]; then t=not-a-valid-token; else t=$(cat ${plugin}.token); fi
echo "{\\"apiVersion\\":\\"client.authentication.k8s.io/v1\\",\\"kind\\":\\"ExecCredential\\",\\"status\\":{\\"token\\":\\"$t\\"}}"
`,
    );
    chmodSync(plugin, 0o755);
    writeFileSync(`${plugin}.token`, saToken);
    const file = join(dir, 'exec-token.yaml');
    writeFileSync(
      file,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        'current-context': 'c',
        clusters: [{ name: 'dev', cluster: { server, 'certificate-authority-data': caData } }],
        users: [
          { name: 'u', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin } } },
        ],
        contexts: [{ name: 'c', context: { cluster: 'dev', user: 'u' } }],
      }),
    );
    const client = new KubeClient(await connectKubeconfig({ kubeconfig: file }, resolver));
    try {
      const pods = `/api/v1/namespaces/${ns.name}/pods`;
      await expect(client.list(pods)).rejects.toMatchObject({ statusCode: 401 });
      await expect(client.list(pods)).resolves.toMatchObject({ items: expect.any(Array) });
      expect(runsOf(plugin)).toBe(2);
    } finally {
      client.close();
    }
  });
});

describe('token files, contexts, proxy-url, tls-server-name', () => {
  it('--context picks the second file’s context; its token file is read again after a 401', async () => {
    const tokenFile = join(dir, 'sa-token');
    writeFileSync(tokenFile, 'stale-token\n');
    const client = new KubeClient(await connectKubeconfig({ context: 'sa' }, resolver));
    try {
      expect(client.connection?.context).toBe('sa');
      const pods = `/api/v1/namespaces/${ns.name}/pods`;
      await expect(client.list(pods)).rejects.toMatchObject({ statusCode: 401 });
      writeFileSync(tokenFile, `${saToken}\n`); // the kubelet rotated the projected token
      await expect(client.list(pods)).resolves.toMatchObject({ items: expect.any(Array) });
      // the service account may read pods but not nodes: the request really is made as it
      const err = await client.get('/api/v1/nodes').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KubeApiError);
      expect((err as KubeApiError).message).toContain(`system:serviceaccount:${ns.name}:default`);
    } finally {
      client.close();
    }
  });

  describe('proxy-url', () => {
    let proxy: Server;
    const tunnels: string[] = [];
    beforeAll(async () => {
      proxy = createServer();
      proxy.on('connect', (req, socket: Socket, head) => {
        tunnels.push(req.url ?? '');
        const [host, port] = (req.url ?? '').split(':');
        const upstream = connect(Number(port), host, () => {
          socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          upstream.write(head);
          upstream.pipe(socket);
          socket.pipe(upstream);
        });
        upstream.on('error', () => socket.destroy());
        socket.on('error', () => upstream.destroy());
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    });
    afterAll(() => new Promise<void>((r) => proxy.close(() => r())));

    it('requests go through the proxy (CONNECT)', async () => {
      const port = (proxy.address() as { port: number }).port;
      const file = join(dir, 'proxied.yaml');
      const doc = parseYaml(readFileSync(info.kubeconfigPath, 'utf8')) as {
        clusters: { cluster: Record<string, unknown> }[];
      };
      doc.clusters[0]!.cluster['proxy-url'] = `http://127.0.0.1:${port}`;
      writeFileSync(file, stringify(doc));
      const client = new KubeClient(await connectKubeconfig({ kubeconfig: file }, resolver));
      try {
        await client.get(`/api/v1/namespaces/${ns.name}`);
        expect(tunnels).toContain(new URL(server).host);
      } finally {
        client.close();
      }
    });
  });

  it('tls-server-name is the name the API server’s certificate is checked against', async () => {
    const withName = (name: string) => {
      const file = join(dir, `tls-${name}.yaml`);
      const doc = parseYaml(readFileSync(info.kubeconfigPath, 'utf8')) as {
        clusters: { cluster: Record<string, unknown> }[];
      };
      doc.clusters[0]!.cluster['tls-server-name'] = name;
      writeFileSync(file, stringify(doc));
      return file;
    };
    const good = new KubeClient(
      await connectKubeconfig({ kubeconfig: withName('kubernetes.default') }, resolver),
    );
    const bad = new KubeClient(
      await connectKubeconfig({ kubeconfig: withName('not-the-apiserver.example') }, resolver),
    );
    try {
      await expect(good.get(`/api/v1/namespaces/${ns.name}`)).resolves.toBeTruthy();
      await expect(bad.get(`/api/v1/namespaces/${ns.name}`)).rejects.toThrow(/not-the-apiserver\.example/);
    } finally {
      good.close();
      bad.close();
    }
  });
});

describe('konductor --kubeconfig FILE --context NAME', () => {
  it('the manager connects with the exec plugin context and grants', async () => {
    expect(konductor.install.manager()?.exitInfo).toBeUndefined();
    expect(runsOf(managerPlugin)).toBeGreaterThanOrEqual(1); // the manager's own resolution ran it
    const nsPods = namespacePods(ns);
    await admin.create(`/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name: 'via-exec' },
      spec: { permits: 1 },
    });
    await nsPods.createPod('granted', {
      annotations: { 'konductor.io/semaphore': 'via-exec' },
      script: 'sleep 1',
    });
    await waitFor(
      async () =>
        mainRunning(await nsPods.getPod('granted')) || (await nsPods.phaseOf('granted')) === 'Succeeded',
      {
        timeoutMs: 60_000,
        message: 'the pod granted by the manager',
      },
    );
    const s = await admin.get<Semaphore>(
      `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores/via-exec`,
    );
    // one grant: the counter moved one past the token the pod got (tokens start at the object's revision)
    const granted = s.status?.holders?.[0]?.token;
    if (granted !== undefined) expect(s.status?.nextToken).toBe(granted + 1);
    expect(s.status?.nextToken).toBeGreaterThan(1);
  });
});
