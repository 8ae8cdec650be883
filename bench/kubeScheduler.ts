/**
 * The real kube-scheduler (v1.37.2, the devcluster's `k8s` Go tool set, the same binary the real node runs)
 * beside a benchmark's devcluster, in the cluster's process group (stopped with it). With `schedulerName`,
 * its one profile serves only pods that name it, so it can run beside the process kubelet (whose own binder
 * serves `default-scheduler` pods): the pods of a benchmark are then placed by kube-scheduler's queue,
 * filters and binding, and everything else as before.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeClient } from '../api/kubeClient.ts';
import { ensureGoTools } from '../devcluster/binaries.ts';
import type { DevCluster } from '../devcluster/index.ts';

/** The profile the handoff benchmark's scheduling-gate pods name (spec.schedulerName). */
export const BENCH_SCHEDULER = 'konductor-bench-scheduler';

export async function startKubeScheduler(
  cluster: DevCluster,
  opts: { schedulerName?: string; log: (line: string) => void },
): Promise<{ pid: number; logPath: string }> {
  const bin = join(await ensureGoTools('k8s', { log: opts.log }), 'kube-scheduler');
  const config = join(cluster.dataDir, 'kube-scheduler.yaml');
  writeFileSync(
    config,
    [
      'apiVersion: kubescheduler.config.k8s.io/v1',
      'kind: KubeSchedulerConfiguration',
      'clientConnection:',
      `  kubeconfig: ${JSON.stringify(cluster.kubeconfigPath)}`,
      'leaderElection:',
      '  leaderElect: false',
      'profiles:',
      `  - schedulerName: ${opts.schedulerName ?? 'default-scheduler'}`,
      '',
    ].join('\n'),
  );
  const logPath = join(cluster.dataDir, 'kube-scheduler.log');
  const proc = await cluster.processes.spawn(
    'kube-scheduler',
    bin,
    [`--config=${config}`, '--secure-port=0', '--v=1'],
    logPath,
  );
  return { pid: proc.pid, logPath };
}

/**
 * Removes a Node's taints: the TaintNodesByCondition admission plugin gives every new Node the not-ready taint,
 * which node-lifecycle (not running in the devcluster) would remove once the node is Ready. The process
 * kubelet's binder ignores taints; kube-scheduler does not.
 */
export async function untaintNode(client: KubeClient, name: string): Promise<void> {
  await client.patchMerge(`/api/v1/nodes/${encodeURIComponent(name)}`, { spec: { taints: null } });
}
