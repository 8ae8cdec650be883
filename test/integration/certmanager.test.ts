/**
 * cert-manager built from its Go modules (devcluster/certmanager), on a control plane of its own
 * (its real CRDs must not meet the stand-in CRDs other test files apply to the shared one):
 *
 * - `installCertManager()` installs it as on the real node (`helm upgrade --install` of its release
 *   chart, assembled from the module: CRDs, ServiceAccounts, RBAC, Services, webhook configurations,
 *   Deployments on the local images), only without waiting for a rollout: no node runs pods here. The
 *   three binaries run as host processes in the pods' place, with the Deployments' own arguments and
 *   each Deployment's ServiceAccount token (the chart's RBAC is what they get); the webhook
 *   configurations point at the host process (`webhook.url.host`);
 * - its webhook wait fails while nothing serves and `installCertManager` resolves once the webhook serves
 *   with the CA cainjector injected; an invalid Certificate is then rejected by the webhook;
 * - then `helm install charts/konductor` with its defaults (cert-manager mode): its self-signed Issuer ->
 *   CA Certificate -> CA Issuer -> serving Certificate go Ready, the serving certificate is signed by the
 *   CA, and cainjector fills the MutatingWebhookConfiguration's caBundle with that CA.
 * On a real node the same install runs the images instead (the real-node e2e tests).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { KubeClient } from '../../api/kubeClient.ts';
import {
  CERT_MANAGER_VERSION,
  type CertManagerInstall,
  ensureCertManagerBinaries,
  installCertManager,
  waitForCertManagerWebhook,
} from '../../devcluster/certmanager/index.ts';
import { type DevCluster, getFreePorts, startCluster } from '../../devcluster/index.ts';
import { CHART_DIR, findChartTools } from '../helpers/chartTools.ts';
import { runProcess } from '../helpers/process.ts';
import { waitFor } from '../helpers/waitFor.ts';

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects of many kinds
type Obj = any;

const NS = 'cert-manager';
const KONDUCTOR_NS = 'konductor-system';

let cluster: DevCluster;
let client: KubeClient;
let work: string;
let helmBin: string;
const children: ChildProcess[] = [];
let rendered: Obj[] = [];

async function helm(args: string[]) {
  const r = await runProcess(helmBin, [...args, '--kubeconfig', cluster.kubeconfigPath], {
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(work, 'helm/cache'),
      HELM_CONFIG_HOME: join(work, 'helm/config'),
      HELM_DATA_HOME: join(work, 'helm/data'),
    },
    timeoutMs: 170_000,
  });
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** A kubeconfig for a ServiceAccount (TokenRequest), so a host process has exactly the chart's RBAC. */
async function serviceAccountKubeconfig(name: string): Promise<string> {
  const tr = await client.request<Obj>('POST', `/api/v1/namespaces/${NS}/serviceaccounts/${name}/token`, {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  });
  const path = join(work, `${name}.kubeconfig`);
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'devcluster',
          cluster: {
            server: cluster.apiserverUrl,
            'certificate-authority-data': readFileSync(cluster.caCertPath).toString('base64'),
          },
        },
      ],
      users: [{ name, user: { token: tr.status.token } }],
      contexts: [{ name, context: { cluster: 'devcluster', user: name } }],
      'current-context': name,
    }),
  );
  return path;
}

/** Runs a Deployment's container as a host process: its args, its env's POD_NAMESPACE, its ServiceAccount. */
async function runAsHostProcess(deployment: Obj, binary: string, extraArgs: string[]): Promise<void> {
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  const args: string[] = (container.args ?? []).map((a: string) => a.replaceAll('$(POD_NAMESPACE)', NS));
  const kubeconfig = await serviceAccountKubeconfig(pod.serviceAccountName);
  const log = createWriteStream(join(work, `${deployment.metadata.name}.log`));
  const child = spawn(binary, [...args, `--kubeconfig=${kubeconfig}`, ...extraArgs], {
    env: { PATH: process.env.PATH ?? '', POD_NAMESPACE: NS },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  children.push(child);
}

const ready = (o: Obj) =>
  (o?.status?.conditions ?? []).some((c: Obj) => c.type === 'Ready' && c.status === 'True');

/** What `installCertManager` resolved with: helm's and the webhook wait's durations. */
let install: CertManagerInstall;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'konductor-certmanager-'));
  const [binaries, tools] = await Promise.all([ensureCertManagerBinaries(), findChartTools()]);
  helmBin = tools.helm;
  cluster = await startCluster();
  client = KubeClient.fromKubeconfig(cluster.kubeconfigPath);
  const [webhookPort, healthzPort, metricsPort] = await getFreePorts(3);

  // helm upgrade --install of cert-manager's chart, exactly as on the real node but without waiting for
  // a rollout no node will do; its webhook wait runs while this hook starts the host processes.
  const installing = installCertManager({
    kubeconfig: cluster.kubeconfigPath,
    helm: helmBin,
    waitForRollout: false,
    timeoutMs: 150_000,
    extraArgs: [
      '--set',
      `webhook.securePort=${webhookPort}`,
      '--set',
      `webhook.url.host=localhost:${webhookPort}`,
    ],
    log: (l) => process.stderr.write(`[cert-manager] ${l}\n`),
  });
  installing.catch(() => {}); // awaited below; a failure must not be an unhandled rejection meanwhile
  const deployments = await waitFor(
    async () => {
      const list = await client.request<Obj>('GET', `/apis/apps/v1/namespaces/${NS}/deployments`);
      return list.items.length === 3 ? (list.items as Obj[]) : undefined;
    },
    { message: "cert-manager's three Deployments created by helm", timeoutMs: 150_000 },
  );
  // helm creates the webhook configurations last (kinds outside its install order): wait for them too.
  for (const kind of ['validatingwebhookconfigurations', 'mutatingwebhookconfigurations']) {
    await waitFor(
      () => client.request('GET', `/apis/admissionregistration.k8s.io/v1/${kind}/cert-manager-webhook`),
      { message: `${kind} cert-manager-webhook created by helm`, timeoutMs: 150_000 },
    );
  }
  rendered = parseAllDocuments(await helm(['get', 'manifest', 'cert-manager', '--namespace', NS]))
    .map((d) => d.toJSON())
    .filter(Boolean);
  const byName = (suffix: string) => deployments.find((o) => o.metadata.name === `cert-manager${suffix}`);
  // Nothing serves the webhook yet: the wait must fail (this is what makes its success mean something).
  await expect(
    waitForCertManagerWebhook({ kubeconfig: cluster.kubeconfigPath, timeoutMs: 1500 }),
  ).rejects.toMatchObject({ code: 'KDR_CERTMANAGER_NOT_READY' });
  // url.host carries the port, which the chart also adds to the serving certificate's DNS names: add the bare host.
  await runAsHostProcess(byName('-webhook'), binaries.webhook, [
    `--healthz-port=${healthzPort}`,
    '--dynamic-serving-dns-names=localhost',
  ]);
  await runAsHostProcess(byName('-cainjector'), binaries.cainjector, []);
  await runAsHostProcess(byName(''), binaries.controller, [
    `--metrics-listen-address=127.0.0.1:${metricsPort}`,
  ]);
  install = await installing;
}, 900_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGTERM');
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(() => c.kill('SIGKILL'), 5000);
          c.on('exit', () => {
            clearTimeout(t);
            resolve();
          });
        }),
    ),
  );
  await cluster?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe(`cert-manager ${CERT_MANAGER_VERSION} from its Go modules`, () => {
  it('the release holds its CRDs (labels templated), Deployments on the local images, no startupapicheck', () => {
    const crds = rendered.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata.name);
    expect(crds.sort()).toEqual([
      'certificaterequests.cert-manager.io',
      'certificates.cert-manager.io',
      'challenges.acme.cert-manager.io',
      'clusterissuers.cert-manager.io',
      'issuers.cert-manager.io',
      'orders.acme.cert-manager.io',
    ]);
    for (const crd of rendered.filter((o) => o.kind === 'CustomResourceDefinition')) {
      expect(crd.metadata.labels['app.kubernetes.io/instance']).toBe('cert-manager');
      expect(crd.metadata.labels['app.kubernetes.io/version']).toBe(CERT_MANAGER_VERSION);
    }
    const images = rendered
      .filter((o) => o.kind === 'Deployment')
      .map((o) => [
        o.spec.template.spec.containers[0].image,
        o.spec.template.spec.containers[0].imagePullPolicy,
      ]);
    expect(images.sort()).toEqual([
      [`konductor/cert-manager-cainjector:${CERT_MANAGER_VERSION}`, 'Never'],
      [`konductor/cert-manager-controller:${CERT_MANAGER_VERSION}`, 'Never'],
      [`konductor/cert-manager-webhook:${CERT_MANAGER_VERSION}`, 'Never'],
    ]);
    expect(rendered.some((o) => o.kind === 'Job')).toBe(false);
  });

  it('installCertManager resolved once the webhook answered with the CA cainjector injected', async () => {
    expect(install).toMatchObject({ release: 'cert-manager', namespace: NS, version: CERT_MANAGER_VERSION });
    expect(install.webhookSeconds).toBeGreaterThan(0);
    await waitForCertManagerWebhook({ kubeconfig: cluster.kubeconfigPath, timeoutMs: 10_000 });
    const secret = await client.request<Obj>(
      'GET',
      `/api/v1/namespaces/${NS}/secrets/cert-manager-webhook-ca`,
    );
    const ca = secret.data['ca.crt'];
    expect(ca).toBeTruthy();
    for (const kind of ['validatingwebhookconfigurations', 'mutatingwebhookconfigurations']) {
      const cfg = await client.request<Obj>(
        'GET',
        `/apis/admissionregistration.k8s.io/v1/${kind}/cert-manager-webhook`,
      );
      expect(cfg.webhooks[0].clientConfig.caBundle, kind).toBe(ca);
    }
    // The validating webhook really validates: an invalid Certificate is rejected by it.
    const bad = await client
      .request('POST', '/apis/cert-manager.io/v1/namespaces/default/certificates', {
        body: {
          apiVersion: 'cert-manager.io/v1',
          kind: 'Certificate',
          metadata: { name: 'invalid' },
          spec: { secretName: 's', issuerRef: { name: 'x' } },
        },
        query: { dryRun: 'All' },
      })
      .catch((err: Error) => err);
    expect(String(bad)).toMatch(/admission webhook "webhook.cert-manager.io" denied the request/);
  }, 150_000);

  it('issues the konductor chart certificate chain (cert-manager mode) and injects the caBundle', async () => {
    await helm([
      'install',
      'konductor',
      CHART_DIR,
      '--namespace',
      KONDUCTOR_NS,
      '--create-namespace',
      '--set',
      'image.repository=konductor/manager',
      '--set',
      'image.tag=dev',
      '--wait=false',
    ]);
    const api = `/apis/cert-manager.io/v1/namespaces/${KONDUCTOR_NS}`;
    for (const issuer of ['konductor-selfsigned', 'konductor-ca']) {
      await waitFor(async () => ready(await client.request(`GET`, `${api}/issuers/${issuer}`)), {
        message: `Issuer ${issuer} Ready`,
        timeoutMs: 90_000,
      });
    }
    for (const cert of ['konductor-ca', 'konductor-serving']) {
      await waitFor(async () => ready(await client.request(`GET`, `${api}/certificates/${cert}`)), {
        message: `Certificate ${cert} Ready`,
        timeoutMs: 90_000,
      });
    }
    const secret = await client.request<Obj>(
      'GET',
      `/api/v1/namespaces/${KONDUCTOR_NS}/secrets/konductor-webhook-tls`,
    );
    const pem = (k: string) => Buffer.from(secret.data[k], 'base64').toString();
    const leaf = new X509Certificate(pem('tls.crt'));
    const ca = new X509Certificate(pem('ca.crt'));
    expect(ca.ca).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.subjectAltName).toContain(`DNS:konductor.${KONDUCTOR_NS}.svc`);
    const mwc = await waitFor(
      async () => {
        const m = await client.request<Obj>(
          'GET',
          '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/konductor',
        );
        return m.webhooks.every((w: Obj) => w.clientConfig.caBundle) ? m : undefined;
      },
      { message: 'caBundle injected into the konductor MutatingWebhookConfiguration', timeoutMs: 60_000 },
    );
    for (const w of mwc.webhooks)
      expect(Buffer.from(w.clientConfig.caBundle, 'base64').toString()).toBe(pem('ca.crt'));
  }, 240_000);
});
