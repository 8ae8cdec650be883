/**
 * Installs cert-manager the way cert-manager installs itself: `helm upgrade --install` of its own
 * release chart (CRDs included, `installCRDs=true`) with the image values pointing at the local images,
 * then waits until its webhook answers through the API server, as `cmctl check api` does: a dry-run
 * create of a Certificate succeeds only when the webhook serves TLS with the CA that cainjector put
 * into the webhook configurations. The images must already be in the node's containerd
 * (`importImages()` of `ensureCertManagerImages()`); the pods never pull.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import { KubeClient } from '../../api/kubeClient.ts';
import { ensureGoTools } from '../binaries.ts';
import { exec } from '../exec.ts';
import { CERT_MANAGER_VERSION, ensureCertManagerChart } from './chart.ts';
import { CERT_MANAGER_COMPONENTS, type CertManagerComponent, certManagerImageRef } from './images.ts';

/** The chart values' key prefix of each component's image. */
const IMAGE_VALUE: Record<CertManagerComponent, string> = {
  controller: 'image',
  cainjector: 'cainjector.image',
  webhook: 'webhook.image',
};

/**
 * `--set` flags of cert-manager's chart for the local images (never pulled), its CRDs, and no
 * `startupapicheck` Job (its cmctl image is not built; `waitForCertManagerWebhook` does its check).
 */
export function certManagerHelmArgs(): string[] {
  const args = ['--set', 'installCRDs=true', '--set', 'startupapicheck.enabled=false'];
  for (const c of CERT_MANAGER_COMPONENTS) {
    const ref = certManagerImageRef(c);
    const i = ref.lastIndexOf(':');
    const key = IMAGE_VALUE[c];
    args.push(
      '--set',
      `${key}.repository=${ref.slice(0, i)}`,
      '--set',
      `${key}.tag=${ref.slice(i + 1)}`,
      '--set',
      `${key}.pullPolicy=Never`,
    );
  }
  return args;
}

export interface WaitForCertManagerOptions {
  kubeconfig: string;
  /** Namespace of the dry-run Certificate (default `default`). */
  namespace?: string;
  timeoutMs?: number;
  log?: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves when cert-manager's webhook answers: a server-side dry-run create of a Certificate passes
 * the mutating and validating webhooks. Throws `KDR_CERTMANAGER_NOT_READY` with the last error.
 */
export async function waitForCertManagerWebhook(opts: WaitForCertManagerOptions): Promise<number> {
  const client = KubeClient.fromKubeconfig(opts.kubeconfig);
  const ns = opts.namespace ?? 'default';
  const started = Date.now();
  const deadline = started + (opts.timeoutMs ?? 180_000);
  const body = {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: { generateName: 'konductor-webhook-check-', namespace: ns },
    spec: {
      secretName: 'konductor-webhook-check',
      dnsNames: ['check.konductor.invalid'],
      issuerRef: { name: 'check' },
    },
  };
  let last = '';
  let lastLog = started;
  for (;;) {
    try {
      await client.request('POST', `/apis/cert-manager.io/v1/namespaces/${ns}/certificates`, {
        body,
        query: { dryRun: 'All' },
        timeoutMs: 15_000,
      });
      const seconds = (Date.now() - started) / 1000;
      opts.log?.(`cert-manager webhook answers (after ${seconds.toFixed(1)} s)`);
      return seconds;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() >= deadline) {
      throw konductorError(
        'KDR_CERTMANAGER_NOT_READY',
        `cert-manager's webhook did not answer within ${Math.round((Date.now() - started) / 1000)} s ` +
          `(dry-run Certificate create in ${ns}); last error: ${last}`,
      );
    }
    if (Date.now() - lastLog >= 15_000) {
      lastLog = Date.now();
      opts.log?.(`waiting for cert-manager's webhook: ${last}`);
    }
    await sleep(500);
  }
}

export interface InstallCertManagerOptions {
  kubeconfig: string;
  /** helm binary (default: the chart-tools build). */
  helm?: string;
  namespace?: string;
  release?: string;
  /** More `helm` flags (e.g. `['--set', 'webhook.timeoutSeconds=30']`). */
  extraArgs?: string[];
  /** For helm's `--wait` and the webhook check each (default 5 min). */
  timeoutMs?: number;
  /**
   * `helm --wait` for the Deployments (default true). False only when something else than the node's
   * kubelet runs them (the integration test runs the binaries as host processes).
   */
  waitForRollout?: boolean;
  cacheRoot?: string;
  log?: (line: string) => void;
}

export interface CertManagerInstall {
  release: string;
  namespace: string;
  version: string;
  chartDir: string;
  /** Seconds of `helm upgrade --install --wait`, then until the webhook answered. */
  helmSeconds: number;
  webhookSeconds: number;
}

/** helm with its config, cache and data in a throwaway home (never the user's ~/.config/helm). */
export async function withHelmHome<T>(fn: (env: NodeJS.ProcessEnv) => Promise<T>): Promise<T> {
  const home = await mkdtemp(join(tmpdir(), 'konductor-helm-'));
  try {
    return await fn({
      ...process.env,
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_DATA_HOME: join(home, 'data'),
    });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** `helm upgrade --install` of cert-manager's chart with the local images, then waits for its webhook. */
export async function installCertManager(opts: InstallCertManagerOptions): Promise<CertManagerInstall> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`[cert-manager] ${l}\n`));
  const namespace = opts.namespace ?? 'cert-manager';
  const release = opts.release ?? 'cert-manager';
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const chartDir = await ensureCertManagerChart(opts.cacheRoot ? { cacheRoot: opts.cacheRoot } : {});
  const helm =
    opts.helm ??
    join(await ensureGoTools('chart-tools', opts.cacheRoot ? { cacheRoot: opts.cacheRoot } : {}), 'helm');
  const args = [
    'upgrade',
    '--install',
    release,
    chartDir,
    '--namespace',
    namespace,
    '--create-namespace',
    '--kubeconfig',
    opts.kubeconfig,
    ...(opts.waitForRollout === false ? [] : ['--wait']),
    '--timeout',
    `${Math.ceil(timeoutMs / 1000)}s`,
    ...certManagerHelmArgs(),
    ...(opts.extraArgs ?? []),
  ];
  log(`helm upgrade --install ${release} cert-manager ${CERT_MANAGER_VERSION} (namespace ${namespace})`);
  const started = Date.now();
  // No timeout of our own: helm's --timeout bounds the wait.
  const r = await withHelmHome((env) => exec(helm, args, { env, timeoutMs: 0 }));
  if (r.code !== 0) {
    throw konductorError(
      'KDR_CERTMANAGER_INSTALL_FAILED',
      `helm ${args.join(' ')} failed:\n${`${r.stdout}${r.stderr}`.slice(-3000)}`,
    );
  }
  const helmSeconds = (Date.now() - started) / 1000;
  log(
    `helm done after ${helmSeconds.toFixed(1)} s${opts.waitForRollout === false ? '' : ' (deployments available)'}`,
  );
  const webhookSeconds = await waitForCertManagerWebhook({ kubeconfig: opts.kubeconfig, timeoutMs, log });
  return { release, namespace, version: CERT_MANAGER_VERSION, chartDir, helmSeconds, webhookSeconds };
}
