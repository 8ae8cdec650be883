/**
 * Kubeconfig resolution (api/kubeconfig.ts, api/kubeconfigSource.ts) with @kubernetes/client-node's
 * KubeConfig: exec plugins (a small script), merged KUBECONFIG files, contexts, relative paths, token files,
 * in-cluster, proxy-url and tls-server-name, and the refresh of credentials for long-running processes.
 * Pure resolution: no API server (the integration test kubeconfig.test.ts talks to the real one).
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { type KubeconfigSelection, loadKubeConfig, resolveKubeconfig } from '../../api/kubeconfig.ts';
import {
  connectKubeconfig,
  KubeconfigCredentials,
  resolveInSubprocess,
  TOKEN_FILE_REREAD_MS,
} from '../../api/kubeconfigSource.ts';

const dir = mkdtempSync(join(tmpdir(), 'konductor-kubeconfig-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NO_ENV = { HOME: join(dir, 'no-home') } as NodeJS.ProcessEnv;

function file(name: string, doc: unknown): string {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, typeof doc === 'string' ? doc : stringify(doc));
  return path;
}

interface Entry {
  name: string;
  [k: string]: unknown;
}
const config = (over: { current?: string; clusters?: Entry[]; users?: Entry[]; contexts?: Entry[] }) => ({
  apiVersion: 'v1',
  kind: 'Config',
  ...(over.current ? { 'current-context': over.current } : {}),
  clusters: over.clusters ?? [],
  users: over.users ?? [],
  contexts: over.contexts ?? [],
});
const cluster = (name: string, server: string, extra: Record<string, unknown> = {}) => ({
  name,
  cluster: { server, ...extra },
});
const tokenUser = (name: string, token: string) => ({ name, user: { token } });
const context = (name: string, c: string, u: string, namespace?: string) => ({
  name,
  context: { cluster: c, user: u, ...(namespace ? { namespace } : {}) },
});

/**
 * An exec credential plugin as a small shell script: each run bumps a counter file, prints a token that
 * carries the count, expires `ttl` seconds from now, and saves the KUBERNETES_EXEC_INFO it was given.
 */
function execPlugin(name: string, ttlSeconds: number): { path: string; runs(): number; info(): unknown } {
  const path = join(dir, 'plugins', name);
  const counter = `${path}.count`;
  const infoFile = `${path}.info`;
  mkdirSync(join(dir, 'plugins'), { recursive: true });
  writeFileSync(counter, '0');
  file(
    `plugins/${name}`,
    `#!/bin/sh
n=$(( $(cat ${counter}) + 1 )); echo $n > ${counter}
printf '%s' "$KUBERNETES_EXEC_INFO" > ${infoFile}
exp=$(date -u -d "@$(( $(date +%s) + ${ttlSeconds} ))" +%Y-%m-%dT%H:%M:%SZ)
echo "{\\"apiVersion\\":\\"client.authentication.k8s.io/v1\\",\\"kind\\":\\"ExecCredential\\",\\"status\\":{\\"token\\":\\"exec-token-$n\\",\\"expirationTimestamp\\":\\"$exp\\"}}"
`,
  );
  chmodSync(path, 0o755);
  return {
    path,
    runs: () => Number(readFileSync(counter, 'utf8').trim()),
    info: () => JSON.parse(readFileSync(infoFile, 'utf8')),
  };
}

const execUser = (name: string, command: string, extra: Record<string, unknown> = {}) => ({
  name,
  user: {
    exec: { apiVersion: 'client.authentication.k8s.io/v1', command, interactionMode: 'Never', ...extra },
  },
});

describe('contexts', () => {
  const path = file(
    'contexts.yaml',
    config({
      current: 'one',
      clusters: [cluster('c1', 'https://one.example:6443/'), cluster('c2', 'https://two.example:6443')],
      users: [tokenUser('u1', 't1'), tokenUser('u2', 't2')],
      contexts: [context('one', 'c1', 'u1', 'ns-one'), context('two', 'c2', 'u2')],
    }),
  );

  it('uses the current-context by default', async () => {
    const r = await resolveKubeconfig({ kubeconfig: path }, NO_ENV);
    expect(r).toMatchObject({
      context: 'one',
      server: 'https://one.example:6443',
      namespace: 'ns-one',
      headers: { Authorization: 'Bearer t1' },
    });
    expect(r.refresh).toBeUndefined();
  });

  it('--context picks another context, its cluster, user and (absent) namespace', async () => {
    const r = await resolveKubeconfig({ kubeconfig: path, context: 'two' }, NO_ENV);
    expect(r).toMatchObject({ context: 'two', server: 'https://two.example:6443' });
    expect(r.headers.Authorization).toBe('Bearer t2');
    expect(r.namespace).toBeUndefined();
  });

  it('an unknown context is an error naming the contexts there are', () => {
    expect(() => loadKubeConfig({ kubeconfig: path, context: 'three' }, NO_ENV)).toThrow(
      /context "three" is not in .*contexts\.yaml \(contexts: one, two\)/,
    );
  });

  it('a context whose cluster is missing is an error', () => {
    const broken = file(
      'broken.yaml',
      config({ current: 'x', users: [tokenUser('u', 't')], contexts: [context('x', 'nowhere', 'u')] }),
    );
    expect(() => loadKubeConfig({ kubeconfig: broken }, NO_ENV)).toThrow(
      /names a cluster that is not defined/,
    );
  });

  it('no kubeconfig anywhere and not in a cluster is KDR_KUBECONFIG_MISSING', () => {
    expect(() => loadKubeConfig({}, NO_ENV)).toThrow(
      expect.objectContaining({ code: 'KDR_KUBECONFIG_MISSING' }),
    );
  });
});

describe('KUBECONFIG of several files, merged the kubectl way', () => {
  const first = file(
    'merge/first.yaml',
    config({
      current: 'dev',
      clusters: [cluster('shared', 'https://first.example')],
      users: [tokenUser('me', 'first-token')],
      contexts: [context('dev', 'shared', 'me', 'dev-ns')],
    }),
  );
  const second = file(
    'merge/second.yaml',
    config({
      current: 'prod',
      clusters: [cluster('shared', 'https://second.example'), cluster('prod', 'https://prod.example')],
      users: [tokenUser('me', 'second-token'), tokenUser('ops', 'ops-token')],
      contexts: [context('dev', 'prod', 'ops'), context('prod', 'prod', 'ops', 'prod-ns')],
    }),
  );
  const env = { ...NO_ENV, KUBECONFIG: [first, join(dir, 'merge/missing.yaml'), second].join(':') };

  it('the first file that sets current-context wins, and the first definition of a name wins', async () => {
    const r = await resolveKubeconfig({}, env);
    expect(r).toMatchObject({
      context: 'dev',
      server: 'https://first.example',
      namespace: 'dev-ns',
      headers: { Authorization: 'Bearer first-token' },
    });
  });

  it('contexts of later files are usable; missing files are skipped', async () => {
    const r = await resolveKubeconfig({ context: 'prod' }, env);
    expect(r).toMatchObject({
      context: 'prod',
      server: 'https://prod.example',
      namespace: 'prod-ns',
      headers: { Authorization: 'Bearer ops-token' },
    });
  });

  it('--kubeconfig replaces KUBECONFIG', async () => {
    const r = await resolveKubeconfig({ kubeconfig: second }, env);
    expect(r.context).toBe('prod');
  });
});

describe('paths, certificates and cluster options', () => {
  it('relative certificate, key and token-file paths are relative to the kubeconfig file', async () => {
    file('rel/pki/ca.crt', 'CA PEM');
    file('rel/pki/client.crt', 'CERT PEM');
    file('rel/pki/client.key', 'KEY PEM');
    file('rel/token', 'file-token\n');
    const path = file(
      'rel/config',
      config({
        current: 'c',
        clusters: [cluster('k', 'https://k.example', { 'certificate-authority': 'pki/ca.crt' })],
        users: [
          {
            name: 'certs',
            user: { 'client-certificate': 'pki/client.crt', 'client-key': './pki/client.key' },
          },
          { name: 'tf', user: { 'token-file': 'token' } },
        ],
        contexts: [context('c', 'k', 'certs'), context('t', 'k', 'tf')],
      }),
    );
    const r = await resolveKubeconfig({ kubeconfig: path }, NO_ENV);
    expect(r).toMatchObject({ ca: 'CA PEM', cert: 'CERT PEM', key: 'KEY PEM' });
    const t = await resolveKubeconfig({ kubeconfig: path, context: 't' }, NO_ENV);
    expect(t.headers.Authorization).toBe('Bearer file-token');
    expect(t.tokenFile).toBe(join(dir, 'rel/token'));
  });

  it("kubectl's tokenFile key (client-go's AuthInfo) is read like the library's token-file", async () => {
    file('kc/sa-token', 'sa-token\n');
    const path = file(
      'kc/config',
      config({
        current: 'c',
        clusters: [cluster('k', 'https://k.example')],
        users: [{ name: 'sa', user: { tokenFile: 'sa-token' } }],
        contexts: [context('c', 'k', 'sa')],
      }),
    );
    const r = await resolveKubeconfig({ kubeconfig: path }, NO_ENV);
    expect(r.headers.Authorization).toBe('Bearer sa-token');
    expect(r.tokenFile).toBe(join(dir, 'kc/sa-token'));
  });

  it('inline data, tls-server-name, proxy-url, insecure-skip-tls-verify, basic auth and impersonation', async () => {
    const path = file(
      'options.yaml',
      config({
        current: 'c',
        clusters: [
          cluster('k', 'https://10.0.0.1:6443', {
            'certificate-authority-data': Buffer.from('INLINE CA').toString('base64'),
            'tls-server-name': 'kubernetes.default.svc',
            'proxy-url': 'http://proxy.example:3128',
          }),
          cluster('insecure', 'https://k.example', { 'insecure-skip-tls-verify': true }),
        ],
        users: [
          { name: 'basic', user: { username: 'admin', password: 's3cret', as: 'jane' } },
          { name: 'anon', user: {} },
        ],
        contexts: [context('c', 'k', 'basic'), context('i', 'insecure', 'anon')],
      }),
    );
    const r = await resolveKubeconfig({ kubeconfig: path }, NO_ENV);
    expect(r).toMatchObject({
      ca: 'INLINE CA',
      tlsServerName: 'kubernetes.default.svc',
      proxyUrl: 'http://proxy.example:3128',
      headers: {
        Authorization: `Basic ${Buffer.from('admin:s3cret').toString('base64')}`,
        'Impersonate-User': 'jane',
      },
    });
    const i = await resolveKubeconfig({ kubeconfig: path, context: 'i' }, NO_ENV);
    expect(i.insecureSkipTLSVerify).toBe(true);
    expect(i.headers.Authorization).toBeUndefined();
  });

  it('in a cluster: the service account token, CA and namespace (preferred over ~/.kube/config when asked)', async () => {
    const root = join(dir, 'pod');
    file('pod/var/run/secrets/kubernetes.io/serviceaccount/token', 'sa-token');
    file('pod/var/run/secrets/kubernetes.io/serviceaccount/ca.crt', 'SA CA');
    file('pod/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'konductor-system');
    file(
      'pod-home/.kube/config',
      config({
        current: 'h',
        clusters: [cluster('h', 'https://home.example')],
        users: [tokenUser('h', 'h')],
        contexts: [context('h', 'h', 'h')],
      }),
    );
    const env = {
      HOME: join(dir, 'pod-home'),
      KUBERNETES_SERVICE_HOST: 'fd00::1',
      KUBERNETES_SERVICE_PORT: '443',
    };
    // KubeConfig.loadFromCluster reads process.env itself
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    Object.assign(process.env, { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' });
    onTestFinished(() => {
      for (const [k, v] of [
        ['KUBERNETES_SERVICE_HOST', saved.host],
        ['KUBERNETES_SERVICE_PORT', saved.port],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });
    const r = await resolveKubeconfig({ preferInCluster: true, inClusterRoot: root }, env);
    expect(r).toMatchObject({
      server: 'https://[fd00::1]:443',
      ca: 'SA CA',
      namespace: 'konductor-system',
      headers: { Authorization: 'Bearer sa-token' },
      tokenFile: join(root, 'var/run/secrets/kubernetes.io/serviceaccount/token'),
    });
    // kubectl's order: ~/.kube/config first
    expect((await resolveKubeconfig({ inClusterRoot: root }, env)).server).toBe('https://home.example');
  });
});

describe('exec credential plugins', () => {
  it('runs the plugin (a relative command), passes KUBERNETES_EXEC_INFO, and reports the expiry', async () => {
    const plugin = execPlugin('token.sh', 3600);
    const path = file(
      'exec.yaml',
      config({
        current: 'e',
        clusters: [
          cluster('k', 'https://k.example', {
            'certificate-authority-data': Buffer.from('CA').toString('base64'),
          }),
        ],
        users: [
          execUser('e', './plugins/token.sh', {
            provideClusterInfo: true,
            env: [{ name: 'FOO', value: 'bar' }],
          }),
        ],
        contexts: [context('e', 'k', 'e')],
      }),
    );
    const before = Date.now();
    const r = await resolveKubeconfig({ kubeconfig: path }, NO_ENV);
    expect(r.headers.Authorization).toBe('Bearer exec-token-1');
    expect(r.refresh?.kind).toBe('exec');
    expect(r.refresh?.expiresAt).toBeGreaterThan(before + 3500_000);
    expect(plugin.runs()).toBe(1);
    expect(plugin.info()).toEqual({
      apiVersion: 'client.authentication.k8s.io/v1',
      kind: 'ExecCredential',
      spec: {
        interactive: false,
        cluster: {
          server: 'https://k.example',
          'insecure-skip-tls-verify': false,
          'certificate-authority-data': Buffer.from('CA').toString('base64'),
        },
      },
    });
  });

  it('a failing plugin is KDR_KUBECONFIG_CREDENTIALS with its stderr', async () => {
    file('plugins/fail.sh', '#!/bin/sh\necho "you must log in first" >&2\nexit 1\n');
    chmodSync(join(dir, 'plugins/fail.sh'), 0o755);
    const path = file(
      'exec-fail.yaml',
      config({
        current: 'e',
        clusters: [cluster('k', 'https://k.example')],
        users: [execUser('e', join(dir, 'plugins/fail.sh'))],
        contexts: [context('e', 'k', 'e')],
      }),
    );
    await expect(resolveKubeconfig({ kubeconfig: path }, NO_ENV)).rejects.toMatchObject({
      code: 'KDR_KUBECONFIG_CREDENTIALS',
      message: expect.stringMatching(/context "e": you must log in first/),
    });
  });

  it('a long-running process gets a new token before the old one expires, and after a 401', async () => {
    const plugin = execPlugin('short.sh', 60);
    const path = file(
      'exec-short.yaml',
      config({
        current: 'e',
        clusters: [cluster('k', 'https://k.example')],
        users: [execUser('e', join(dir, 'plugins/short.sh'))],
        contexts: [context('e', 'k', 'e')],
      }),
    );
    let now = Date.now();
    const sel = { kubeconfig: path };
    const resolver = (s: KubeconfigSelection) => resolveKubeconfig(s, NO_ENV);
    const creds = new KubeconfigCredentials(await resolver(sel), sel, resolver, () => now);
    expect(creds.isStatic).toBe(false);
    expect(await creds.current()).toMatchObject({ headers: { Authorization: 'Bearer exec-token-1' } });
    now += 30_000; // still valid: no new run
    expect(await creds.current()).toMatchObject({ headers: { Authorization: 'Bearer exec-token-1' } });
    expect(plugin.runs()).toBe(1);
    now += 25_000; // within the margin before expiry: refreshed
    expect(await creds.current()).toMatchObject({ headers: { Authorization: 'Bearer exec-token-2' } });
    creds.invalidate(); // the API server said 401
    expect(await creds.current()).toMatchObject({ headers: { Authorization: 'Bearer exec-token-3' } });
    expect(plugin.runs()).toBe(3);
  });

  it('client certificates from the plugin', async () => {
    file(
      'plugins/cert.sh',
      `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"clientCertificateData":"EXEC CERT","clientKeyData":"EXEC KEY"}}'\n`,
    );
    chmodSync(join(dir, 'plugins/cert.sh'), 0o755);
    const path = file(
      'exec-cert.yaml',
      config({
        current: 'e',
        clusters: [cluster('k', 'https://k.example')],
        users: [
          execUser('e', join(dir, 'plugins/cert.sh'), { apiVersion: 'client.authentication.k8s.io/v1beta1' }),
        ],
        contexts: [context('e', 'k', 'e')],
      }),
    );
    const r = await resolveKubeconfig({ kubeconfig: path }, NO_ENV);
    expect(r).toMatchObject({ cert: 'EXEC CERT', key: 'EXEC KEY', refresh: { kind: 'exec' } });
    expect(r.refresh?.expiresAt).toBeUndefined();
  });
});

describe('token files and connections', () => {
  it('a token file is re-read every minute (a rotating service-account token), and at once after a 401', async () => {
    const tokenPath = file('rotating/token', 'first');
    const path = file(
      'rotating/config',
      config({
        current: 'c',
        clusters: [cluster('k', 'https://k.example')],
        users: [{ name: 'u', user: { 'token-file': 'token' } }],
        contexts: [context('c', 'k', 'u')],
      }),
    );
    let now = Date.now();
    const sel = { kubeconfig: path };
    const resolver = (s: KubeconfigSelection) => resolveKubeconfig(s, NO_ENV);
    const creds = new KubeconfigCredentials(await resolver(sel), sel, resolver, () => now);
    expect(creds.isStatic).toBe(false);
    expect((await creds.current()).headers.Authorization).toBe('Bearer first');
    writeFileSync(tokenPath, 'second');
    now += TOKEN_FILE_REREAD_MS;
    expect((await creds.current()).headers.Authorization).toBe('Bearer second');
    writeFileSync(tokenPath, 'third');
    creds.invalidate();
    expect((await creds.current()).headers.Authorization).toBe('Bearer third');
  });

  it('connectKubeconfig: static credentials become plain headers and certificates', async () => {
    const path = file(
      'static.yaml',
      config({
        current: 'c',
        clusters: [cluster('k', 'https://k.example', { 'tls-server-name': 'api' })],
        users: [
          {
            name: 'u',
            user: {
              token: 'abc',
              'client-certificate-data': Buffer.from('C').toString('base64'),
              'client-key-data': Buffer.from('K').toString('base64'),
            },
          },
        ],
        contexts: [context('c', 'k', 'u', 'ns')],
      }),
    );
    const conn = await connectKubeconfig({ kubeconfig: path }, (s) => resolveKubeconfig(s, NO_ENV));
    expect(conn).toEqual({
      server: 'https://k.example',
      context: 'c',
      namespace: 'ns',
      tlsServerName: 'api',
      cert: 'C',
      key: 'K',
      headers: { Authorization: 'Bearer abc' },
    });
  });

  it('the manager resolves in a subprocess with the same result', async () => {
    const plugin = execPlugin('sub.sh', 3600);
    const path = file(
      'sub.yaml',
      config({
        current: 'e',
        clusters: [cluster('k', 'https://k.example')],
        users: [execUser('e', join(dir, 'plugins/sub.sh'))],
        contexts: [context('e', 'k', 'e', 'sub-ns')],
      }),
    );
    const r = await resolveInSubprocess({ kubeconfig: path });
    expect(r).toMatchObject({
      context: 'e',
      namespace: 'sub-ns',
      headers: { Authorization: 'Bearer exec-token-1' },
    });
    expect(plugin.runs()).toBe(1);
    await expect(resolveInSubprocess({ kubeconfig: path, context: 'nope' })).rejects.toMatchObject({
      code: 'KDR_KUBECONFIG_CONTEXT',
    });
  });
});
