/**
 * Global setup of the `integration` project: ONE control plane and ONE process kubelet for the
 * whole run. Test files read it with `clusterInfo()` (test/helpers/cluster.ts);
 * KUBECONFIG is set for anything the tests spawn.
 */
import type { TestProject } from 'vitest/node';
import { startCluster } from '../devcluster/index.ts';
import { type ProcessKubelet, startProcessKubelet } from '../devcluster/kubelet/index.ts';
import { devclusterInfo } from './helpers/cluster.ts';

export default async function setup(project: TestProject) {
  const cluster = await startCluster();
  let kubelet: ProcessKubelet;
  try {
    kubelet = await startProcessKubelet({ cluster });
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  const info = devclusterInfo(cluster, kubelet.nodeName);
  project.provide('devcluster', info);
  process.env.KUBECONFIG = cluster.kubeconfigPath;
  process.env.KONDUCTOR_KUBECTL = cluster.binaries.kubectl;
  return async () => {
    try {
      await kubelet.stop();
    } finally {
      await cluster.stop();
    }
  };
}
