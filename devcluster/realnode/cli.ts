/**
 * `npm run cluster -- --node real`: the control plane and a real node (kubelet, containerd, CNI,
 * kube-proxy, CoreDNS) on this machine with cert-manager and konductor installed by helm (unless
 * --no-konductor; --self-managed for certManager.enabled=false), up until Ctrl-C. `--cleanup` only
 * removes what a crashed real node left (and fails if one is running).
 */
import { dirname } from 'node:path';
import { sweepRealNode } from './cleanup.ts';
import { startRealCluster } from './cluster.ts';
import {
  installKonductorChart,
  KONDUCTOR_NAMESPACE,
  KONDUCTOR_RELEASE,
  konductorNodeImages,
} from './konductor.ts';
import { stateLayout } from './layout.ts';
import { acquireMachineLock } from './machineLock.ts';

const log = (line: string) => process.stderr.write(`[devcluster] ${line}\n`);

export async function cleanupCommand(): Promise<void> {
  const lock = await acquireMachineLock({ log });
  try {
    const r = await sweepRealNode({ layout: stateLayout(), log });
    log(
      `cleanup: killed ${r.killed.length} processes, unmounted ${r.unmounted.length}, links [${r.links.join(', ')}], ` +
        `${r.chains.length} iptables chains, ${r.cgroups.length} cgroups${r.failed.length ? `; failed: ${r.failed.join('; ')}` : ''}`,
    );
  } finally {
    lock.release();
  }
}

export async function realNodeCommand(opts: {
  port?: number;
  keep?: boolean;
  konductor?: boolean;
  selfManaged?: boolean;
}): Promise<void> {
  const withKonductor = opts.konductor !== false;
  const cluster = await startRealCluster({
    apiserverPort: opts.port,
    keep: opts.keep,
    handleSignals: false, // stopped gracefully below; a crash is swept by the next run
    images: withKonductor ? await konductorNodeImages() : [],
  });
  if (withKonductor) {
    try {
      await installKonductorChart(cluster, { certManager: !opts.selfManaged });
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }
  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) {
      log('second signal: killing now (the next run cleans up)');
      cluster.processes.abandonSync();
      process.exit(130);
    }
    stopping = true;
    log(`${why}: stopping...`);
    await cluster.stop();
    log('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGHUP', () => void shutdown('SIGHUP'));
  process.stdout.write(
    [
      `# konductor devcluster with a real node is up (${cluster.apiserverUrl}, node ${cluster.node.name} ${cluster.node.ip}); Ctrl-C stops it.`,
      `# logs: ${dirname(cluster.logs.etcd ?? '')}`,
      ...(withKonductor
        ? [
            `# konductor: helm release ${KONDUCTOR_RELEASE} in ${KONDUCTOR_NAMESPACE} (${opts.selfManaged ? 'self-managed certificate' : 'cert-manager'}); try: kubectl apply -f examples/semaphore.yaml -f examples/semaphore-job.yaml`,
          ]
        : []),
      `# images in containerd: ${cluster.node.images.map((i) => i.ref).join(', ')}`,
      `# kubectl of the same version: ${cluster.binaries.kubectl}`,
      `export KUBECONFIG=${cluster.kubeconfigPath}`,
      '',
    ].join('\n'),
  );
  setInterval(() => {}, 1 << 30);
}
