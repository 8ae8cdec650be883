/**
 * `npm run cluster`: starts the devcluster control plane, the process kubelet and konductor (CRDs, the
 * manager, the webhook configuration), prints `export KUBECONFIG=<path>`, and keeps them up until
 * Ctrl-C (SIGINT) or SIGTERM, so you can try your own YAML with kubectl.
 *
 *   npm run cluster -- [--port N] [--keep] [--no-kubelet] [--no-konductor]
 *   npm run cluster -- --node real [--port N] [--keep] [--no-konductor] [--self-managed]
 *                                                          (a real node, konductor by helm: realnode/cli.ts)
 *   npm run cluster -- --node real --cleanup               (remove what a crashed real node left)
 */
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { startCluster } from '../devcluster/index.ts';
import { installKonductor, type KonductorInstall } from '../devcluster/konductor.ts';
import { type ProcessKubelet, startProcessKubelet } from '../devcluster/kubelet/index.ts';
import { cleanupCommand, realNodeCommand } from '../devcluster/realnode/cli.ts';
import { ensureAgentBundle } from './build.ts';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'no-kubelet': { type: 'boolean', default: false },
      'no-konductor': { type: 'boolean', default: false },
      node: { type: 'string', default: 'process' },
      cleanup: { type: 'boolean', default: false },
      'self-managed': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run cluster -- [--node process|real] [--port N] [--keep] [--no-kubelet] [--no-konductor] [--self-managed]\n' +
        '       npm run cluster -- --node real --cleanup\n',
    );
    return;
  }
  if (values.node === 'real') {
    if (values.cleanup) return cleanupCommand();
    return realNodeCommand({
      port: values.port ? Number(values.port) : undefined,
      keep: values.keep,
      konductor: !values['no-konductor'],
      selfManaged: values['self-managed'],
    });
  }
  const cluster = await startCluster({
    apiserverPort: values.port ? Number(values.port) : undefined,
    keep: values.keep || undefined,
    handleSignals: false, // this CLI stops gracefully on signals itself (below)
  });
  // Last resort if this process dies another way: kill the children by PID.
  process.on('exit', () => cluster.processes.abandonSync());

  let kubelet: ProcessKubelet | undefined;
  let konductor: KonductorInstall | undefined;
  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) {
      process.stderr.write('[devcluster] second signal: killing now\n');
      cluster.processes.abandonSync();
      process.exit(130);
    }
    stopping = true;
    process.stderr.write(`[devcluster] ${why}: stopping...\n`);
    try {
      await konductor?.uninstall();
      await kubelet?.stop();
    } finally {
      await cluster.stop();
    }
    process.stderr.write('[devcluster] stopped\n');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGHUP', () => void shutdown('SIGHUP'));

  if (!values['no-kubelet']) {
    try {
      // The process kubelet runs the agent image as dist/konductor-agent.js: build it if missing or stale.
      await ensureAgentBundle((line) => process.stderr.write(`[devcluster] ${line}\n`));
      kubelet = await startProcessKubelet({ cluster }); // the process kubelet (DESIGN §7)
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  if (!values['no-konductor']) {
    try {
      // CRDs, the manager process (supervised: restarted with backoff if it dies), webhook configuration and
      // admission policies.
      konductor = await installKonductor(cluster);
    } catch (err) {
      await kubelet?.stop();
      await cluster.stop();
      throw err;
    }
  }

  process.stdout.write(
    [
      `# konductor devcluster is up (${cluster.apiserverUrl}${kubelet ? `, node ${kubelet.nodeName}` : ''}); Ctrl-C stops it.`,
      `# logs: ${dirname(cluster.logs.etcd ?? '')}`,
      ...(konductor
        ? [
            `# konductor manager: admission ${konductor.admissionUrl}, agent API ${konductor.url}; restarted with backoff if it dies`,
            `#   (as ${konductor.managerUsername}; try: kubectl apply -f examples/semaphore.yaml)`,
          ]
        : []),
      `# kubectl of the same version: ${cluster.binaries.kubectl}`,
      `export KUBECONFIG=${cluster.kubeconfigPath}`,
      '',
    ].join('\n'),
  );
  // Stay up: the child processes and the kubelet keep the event loop alive; this keeps it
  // alive even with --no-kubelet and no pending I/O.
  setInterval(() => {}, 1 << 30);
}

main().catch((err: unknown) => {
  process.stderr.write(`[devcluster] ${(err as Error).message}\n`);
  process.exit(1);
});
