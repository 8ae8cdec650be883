/**
 * Global setup of the `e2e` project: ONE real node for the run (devcluster/realnode/: kubelet,
 * containerd, CNI, kube-proxy, CoreDNS) with the images built from the project's Dockerfiles and
 * cert-manager's images imported, and cert-manager installed as it installs itself. konductor itself
 * is installed by the tests, with helm, as a user does (test/e2e/helpers.ts `ensureInstalled`).
 * Waits (up to 30 min) if another real node runs on this machine.
 */
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureGoTools } from '../../devcluster/binaries.ts';
import { ensureCertManagerImages, installCertManager } from '../../devcluster/certmanager/index.ts';
import { ensureImages, konductorChartImageArgs } from '../../devcluster/images/index.ts';
import { startRealCluster } from '../../devcluster/realnode/index.ts';
import { devclusterInfo } from '../helpers/cluster.ts';
import type { E2eInfo } from './helpers.ts';

export default async function setup(project: TestProject) {
  const konductorImages = await ensureImages();
  const certManagerImages = await ensureCertManagerImages();
  const helm = join(await ensureGoTools('chart-tools'), 'helm');
  const cluster = await startRealCluster({
    images: [konductorImages.manager, konductorImages.agent, ...Object.values(certManagerImages)],
    lockWaitMs: 30 * 60_000,
    readyTimeoutMs: 120_000,
  });
  try {
    await installCertManager({ kubeconfig: cluster.kubeconfigPath, helm });
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  const info = devclusterInfo(cluster, cluster.node.name);
  const e2e: E2eInfo = {
    helmPath: helm,
    imageArgs: konductorChartImageArgs(),
    agentImage: konductorImages.agent.ref,
  };
  project.provide('devcluster', info);
  project.provide('e2e', e2e);
  process.env.KUBECONFIG = cluster.kubeconfigPath;
  return () => cluster.stop();
}
