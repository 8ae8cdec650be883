/**
 * konductor on the real node the way a user runs it: the images built from Dockerfile.webhook and
 * Dockerfile.sidecar (devcluster/images/), cert-manager installed as it installs itself
 * (devcluster/certmanager/), then `helm upgrade --install charts/konductor` with the chart's defaults
 * (or `certManager.enabled=false`). For `npm run cluster -- --node real`, the demo and the benchmarks;
 * the e2e tests run helm themselves.
 */
import { join } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import { ensureGoTools } from '../binaries.ts';
import { ensureCertManagerImages, installCertManager } from '../certmanager/index.ts';
import { exec } from '../exec.ts';
import { ensureImages, type ImageRecord, konductorChartImageArgs } from '../images/index.ts';
import { REPO_ROOT } from '../konductor.ts';
import type { RealCluster } from './cluster.ts';

export const KONDUCTOR_RELEASE = 'konductor';
export const KONDUCTOR_NAMESPACE = 'konductor-system';

/** The images konductor needs on the node besides the node's own: manager, agent, cert-manager's three. */
export async function konductorNodeImages(log?: (line: string) => void): Promise<ImageRecord[]> {
  const opts = log ? { log } : {};
  const konductor = await ensureImages(opts);
  const certManager = await ensureCertManagerImages(opts);
  return [konductor.manager, konductor.agent, ...Object.values(certManager)];
}

export interface InstallOptions {
  /** The chart's default (true): cert-manager issues the webhook certificate. */
  certManager?: boolean;
  /** More `helm` flags. */
  extraArgs?: string[];
  log?: (line: string) => void;
}

/** Installs cert-manager (in cert-manager mode) and the konductor chart; resolves when the manager is Ready. */
export async function installKonductorChart(cluster: RealCluster, opts: InstallOptions = {}): Promise<void> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`[devcluster] ${l}\n`));
  const helm = join(await ensureGoTools('chart-tools'), 'helm');
  const started = Date.now();
  if (opts.certManager !== false) await installCertManager({ kubeconfig: cluster.kubeconfigPath, helm, log });
  const args = [
    'upgrade',
    '--install',
    KONDUCTOR_RELEASE,
    join(REPO_ROOT, 'charts', 'konductor'),
    '--namespace',
    KONDUCTOR_NAMESPACE,
    '--create-namespace',
    ...konductorChartImageArgs(),
    ...(opts.certManager === false ? ['--set', 'certManager.enabled=false'] : []),
    ...(opts.extraArgs ?? []),
    '--wait',
    '--timeout',
    '5m',
    '--kubeconfig',
    cluster.kubeconfigPath,
  ];
  const res = await exec(helm, args, { timeoutMs: 330_000 });
  if (res.code !== 0) {
    throw konductorError(
      'KDR_REALNODE_HELM_FAILED',
      `helm ${args.join(' ')} failed:\n${res.stderr || res.stdout}`,
    );
  }
  // cainjector (or the manager, self-managed) fills the caBundle after helm returns: until then the
  // API server cannot call the webhook and annotated pods are refused.
  const deadline = Date.now() + 120_000;
  for (;;) {
    const cfg = await cluster.client
      .get<{ webhooks?: { clientConfig?: { caBundle?: string } }[] }>(
        `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${KONDUCTOR_RELEASE}`,
      )
      .catch(() => undefined);
    if (cfg?.webhooks?.length && cfg.webhooks.every((w) => w.clientConfig?.caBundle)) break;
    if (Date.now() > deadline) {
      throw konductorError(
        'KDR_REALNODE_HELM_FAILED',
        'the webhook configuration got no caBundle within 120 s',
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  log(
    `konductor installed with helm (${opts.certManager === false ? 'self-managed certificate' : 'cert-manager'}) ` +
      `in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}
