/**
 * A fresh devcluster per benchmark (about 5 s to start once the binaries are cached), so that no
 * benchmark inherits another's objects, watch load or etcd history; and the konductor manager installed
 * into one namespace of it, exactly as the tests and the demo do (devcluster/konductor.ts).
 */
import { randomBytes } from 'node:crypto';
import { type DevCluster, startCluster } from '../devcluster/index.ts';
import { type InstallOptions, installKonductor, type KonductorInstall } from '../devcluster/konductor.ts';
import type { ImageHandler } from '../devcluster/kubelet/index.ts';
import { type ProcessKubelet, startProcessKubelet } from '../devcluster/kubelet/index.ts';
import { createNamespace } from './common.ts';

export interface BenchCluster {
  cluster: DevCluster;
  kubelet: ProcessKubelet | undefined;
  konductor: KonductorInstall;
  namespace: string;
  /** PID of the manager process. */
  managerPid(): number;
  managerLog(): string;
  stop(): Promise<void>;
}

export interface BenchClusterOptions {
  name: string;
  /** Run the process kubelet (pods run as local processes). */
  kubelet?: { images?: ImageHandler[] };
  /**
   * Keep the MutatingWebhookConfiguration. Off for benchmarks that create pods already in their injected
   * form (bound, labelled, with the injected container names): the webhook would only add a round trip.
   */
  webhook?: boolean;
  /** How the manager runs (devcluster/konductor.ts InstallOptions.managerProcess). */
  managerProcess?: InstallOptions['managerProcess'];
  /** Restart a dying manager (default: the install's default, true). */
  supervise?: boolean;
  log: (line: string) => void;
}

export async function startBenchCluster(opts: BenchClusterOptions): Promise<BenchCluster> {
  const quiet = (l: string) => {
    if (/error|fail/i.test(l)) opts.log(`[devcluster] ${l}`);
  };
  const cluster = await startCluster({ log: quiet });
  const stops: (() => Promise<void>)[] = [() => cluster.stop()];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const namespace = `bench-${opts.name}-${randomBytes(3).toString('hex')}`;
    await createNamespace(cluster.client, namespace);
    let kubelet: ProcessKubelet | undefined;
    if (opts.kubelet) {
      kubelet = await startProcessKubelet({
        cluster,
        ...(opts.kubelet.images ? { images: opts.kubelet.images } : {}),
        log: quiet,
      });
      const k = kubelet;
      stops.push(() => k.stop());
    }
    const konductor = await installKonductor(cluster, {
      namespace,
      logLevel: 'info',
      log: quiet,
      ...(opts.managerProcess ? { managerProcess: opts.managerProcess } : {}),
      ...(opts.supervise !== undefined ? { supervise: opts.supervise } : {}),
    });
    stops.push(() => konductor.uninstall());
    if (opts.webhook === false) {
      await cluster.client.delete(
        `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${konductor.webhookConfigurationName}`,
      );
    }
    const manager = () => {
      const m = konductor.manager();
      if (!m) throw new Error('the manager is not running');
      return m;
    };
    return {
      cluster,
      kubelet,
      konductor,
      namespace,
      managerPid: () => manager().pid,
      managerLog: () => manager().logPath,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
