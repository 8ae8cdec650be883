/**
 * Runs a konductor manager for one test file, scoped to the file's namespace (its own webhook
 * configuration and `--namespace`), so test files share the control plane and the process kubelet
 * without seeing each other's pods, and a test can kill and restart its manager.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { KubeClient } from '../../api/kubeClient.ts';
import { installKonductor, type KonductorInstall } from '../../devcluster/konductor.ts';
import { ProcessGroup } from '../../devcluster/processes.ts';
import { clusterInfo } from './cluster.ts';
import type { TestNamespace } from './namespace.ts';

export interface KonductorHandle {
  /** Valid from beforeAll on. */
  install: KonductorInstall;
}

export function useKonductor(
  ns: TestNamespace,
  managerArgs: string[] = [],
  instanceSuffix?: string,
  /** The install's log lines (the supervisor's restarts among them); default: dropped. */
  log: (line: string) => void = () => undefined,
): KonductorHandle {
  const handle = {} as KonductorHandle;
  let processes: ProcessGroup | undefined;
  let client: KubeClient | undefined;
  beforeAll(async () => {
    const info = clusterInfo();
    if (!info.kubelet) throw new Error('the process kubelet is not running (devcluster/kubelet)');
    client = KubeClient.fromKubeconfig(info.kubeconfigPath);
    processes = new ProcessGroup({
      id: `konductor-${ns.name}-${randomBytes(2).toString('hex')}`,
      dataDir: info.dataDir,
      keepData: true,
    });
    handle.install = await installKonductor(
      { client, kubeconfigPath: info.kubeconfigPath, dataDir: info.dataDir, processes },
      {
        namespace: ns.name,
        managerArgs,
        log,
        ...(instanceSuffix ? { instanceSuffix } : {}),
      },
    );
  });
  afterAll(async () => {
    await handle.install?.uninstall();
    await processes?.stop();
    client?.close();
  });
  return handle;
}
