/**
 * What the integration global setup (test/globalSetup.ts) shares with the test files, and an admin
 * client for them.
 */
import { afterAll, inject } from 'vitest';
import { KubeClient } from '../../api/kubeClient.ts';
import type { DevCluster } from '../../devcluster/controlPlane.ts';

export interface DevclusterInfo {
  kubeconfigPath: string;
  kubectlPath: string;
  apiserverUrl: string;
  caCertPath: string;
  caKeyPath: string;
  dataDir: string;
  /** True when the process kubelet runs (always, in the integration project). */
  kubelet: boolean;
  /** The process kubelet's Node (pods without a nodeName are bound to it). */
  nodeName: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    devcluster: DevclusterInfo;
  }
}

/** What a global setup provides for `cluster`, whose pods run on `nodeName`. */
export function devclusterInfo(cluster: DevCluster, nodeName: string): DevclusterInfo {
  return {
    kubeconfigPath: cluster.kubeconfigPath,
    kubectlPath: cluster.binaries.kubectl,
    apiserverUrl: cluster.apiserverUrl,
    caCertPath: cluster.caCertPath,
    caKeyPath: cluster.caKeyPath,
    dataDir: cluster.dataDir,
    kubelet: true,
    nodeName,
  };
}

/** The run's control plane (throws outside the integration project). */
export function clusterInfo(): DevclusterInfo {
  const info = inject('devcluster');
  if (!info) throw new Error('no devcluster: integration tests run in the `integration` vitest project');
  return info;
}

/** An admin KubeClient for this test file, closed after the file's tests. Call at the file's top level. */
export function useAdminClient(): KubeClient {
  const client = KubeClient.fromKubeconfig(clusterInfo().kubeconfigPath);
  afterAll(() => client.close());
  return client;
}
