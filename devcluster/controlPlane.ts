/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager as
 * child processes of this one, each logging to a file in the cluster directory. The flags are in
 * componentFlags.ts, the readiness checks in componentReadiness.ts; see devcluster/README.md for why.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeClient } from '../api/kubeClient.ts';
import type { KubeConnection } from '../api/kubeRequest.ts';
import { ensureK8sBinaries, type K8sBinaries } from './binaries.ts';
import {
  apiserverFlags,
  controllerManagerFlags,
  etcdFlags,
  KUBERNETES_SERVICE_IP,
} from './componentFlags.ts';
import {
  apiserverReadiness,
  controllerManagerReadiness,
  etcdReadiness,
  waitReady,
} from './componentReadiness.ts';
import { kubeconfigYaml } from './kubeconfig.ts';
import { writeClusterPki } from './pki.ts';
import { assertPortFree, getFreePorts, LOOPBACK } from './ports.ts';
import { ProcessGroup, reapStaleClusters } from './processes.ts';
import { logTail } from './processInfo.ts';

export interface StartClusterOptions {
  /** Parent directory of the cluster directory (default: the OS temp dir). */
  baseDir?: string;
  /** kube-apiserver port (default: a free one). Fails with KDR_DEVCLUSTER_PORT_IN_USE if taken. */
  apiserverPort?: number;
  /** etcd client port (default: a free one). */
  etcdPort?: number;
  /** Deadline for each component to become ready (default 60 s). */
  readyTimeoutMs?: number;
  /** Start kube-controller-manager (default true). */
  controllerManager?: boolean;
  /** Keep the cluster directory after stop (default: KONDUCTOR_KEEP_CLUSTER=1). */
  keep?: boolean;
  /** Kill the processes on this process's exit/SIGINT/SIGTERM (default true). */
  handleSignals?: boolean;
  /** Progress and warnings (default: stderr with a [devcluster] prefix). */
  log?: (line: string) => void;
  /** Extra kube-apiserver flags (`--name=value`): one named like a default flag replaces it, others are appended. */
  extraApiserverArgs?: string[];
  /** Extra etcd flags (e.g. `--max-request-bytes=32768` to test objects that outgrow etcd's limit). */
  extraEtcdArgs?: string[];
  /** Extra kube-controller-manager flags (same rule). */
  extraControllerManagerArgs?: string[];
  /**
   * Address kube-apiserver binds and advertises, and clients use (default 127.0.0.1). The real node
   * uses an address pods can reach (devcluster/realnode/); it is added to the serving certificate.
   */
  bindAddress?: string;
  /** Binaries to use (default: ensureK8sBinaries()). */
  binaries?: K8sBinaries;
  /** PID registry directory (default: $TMPDIR/konductor-devcluster-<uid>). */
  registryDir?: string;
}

export interface DevCluster {
  /** Unique id (also the name of the PID registry file). */
  id: string;
  /** Admin kubeconfig (system:masters, certificates embedded). */
  kubeconfigPath: string;
  kubeConfig: KubeConnection;
  /** Admin client; closed by stop(). */
  client: KubeClient;
  /** The cluster directory: pki/, etcd/, logs/, kubeconfig. */
  dataDir: string;
  caCertPath: string;
  /** The cluster CA's key: the process kubelet issues its serving certificate with it. */
  caKeyPath: string;
  /** https://127.0.0.1:<port> */
  apiserverUrl: string;
  apiserverPort: number;
  etcdUrl: string;
  /** Log file per component (etcd, kube-apiserver, kube-controller-manager). */
  logs: Record<string, string>;
  /** PIDs of every process this cluster started. */
  pids: number[];
  binaries: K8sBinaries;
  processes: ProcessGroup;
  /** Kills kube-apiserver (SIGKILL by default: a crash) and starts it again; resolves when it is ready. */
  restartApiserver(signal?: NodeJS.Signals): Promise<void>;
  /** Stops every process by PID and removes the cluster directory (unless kept). Idempotent. */
  stop(): Promise<void>;
}

const defaultLog = (line: string) => process.stderr.write(`[devcluster] ${line}\n`);

/** Starts etcd, kube-apiserver and (by default) kube-controller-manager; resolves when ready. */
export async function startCluster(opts: StartClusterOptions = {}): Promise<DevCluster> {
  const log = opts.log ?? defaultLog;
  const keep = opts.keep ?? process.env.KONDUCTOR_KEEP_CLUSTER === '1';
  const timeoutMs = opts.readyTimeoutMs ?? 60_000;
  const started = Date.now();

  if (opts.apiserverPort) await assertPortFree(opts.apiserverPort, 'kube-apiserver');
  if (opts.etcdPort) await assertPortFree(opts.etcdPort, 'etcd');

  const binaries = opts.binaries ?? (await ensureK8sBinaries({ log }));
  await reapStaleClusters(opts.registryDir, log);

  const baseDir = opts.baseDir ?? tmpdir();
  await mkdir(baseDir, { recursive: true });
  const dataDir = await mkdtemp(join(baseDir, 'konductor-cluster-'));
  const id = `${dataDir.split('/').pop()}-${randomBytes(3).toString('hex')}`;
  const logDir = join(dataDir, 'logs');
  await mkdir(logDir);
  const logs: Record<string, string> = {
    etcd: join(logDir, 'etcd.log'),
    'kube-apiserver': join(logDir, 'kube-apiserver.log'),
    'kube-controller-manager': join(logDir, 'kube-controller-manager.log'),
  };

  const group = new ProcessGroup({
    id,
    dataDir,
    keepData: keep,
    registryDir: opts.registryDir,
    handleSignals: opts.handleSignals,
    onUnexpectedExit: (p) =>
      log(
        `${p.component} (pid ${p.pid}) exited unexpectedly (code ${p.exitInfo?.code}, signal ${p.exitInfo?.signal}); ` +
          `log: ${p.logPath}\n${logTail(p.logPath, 15)}`,
      ),
  });
  let client: KubeClient | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      client?.close();
      await group.stop(['kube-controller-manager', 'kube-apiserver', 'etcd'], 5000);
      if (!keep) await rm(dataDir, { recursive: true, force: true });
      else log(`kept cluster directory ${dataDir}`);
    })();
    return stopped;
  };

  try {
    const [free1, free2, free3] = await getFreePorts(3);
    const etcdPort = opts.etcdPort ?? free1!;
    const etcdPeerPort = free2!;
    const apiserverPort = opts.apiserverPort ?? free3!;
    const bindAddress = opts.bindAddress ?? LOOPBACK;
    const pki = await writeClusterPki(
      join(dataDir, 'pki'),
      KUBERNETES_SERVICE_IP,
      bindAddress === LOOPBACK ? [] : [bindAddress],
    );
    const p = pki.paths;

    // etcd
    const etcdUrl = `http://${LOOPBACK}:${etcdPort}`;
    const etcd = await group.spawn(
      'etcd',
      binaries.etcd,
      etcdFlags(
        { dataDir: join(dataDir, 'etcd'), clientUrl: etcdUrl, peerUrl: `http://${LOOPBACK}:${etcdPeerPort}` },
        opts.extraEtcdArgs,
      ),
      logs.etcd!,
    );
    await waitReady(etcd, etcdReadiness(etcdUrl), timeoutMs);

    // kube-apiserver
    const apiserverUrl = `https://${bindAddress}:${apiserverPort}`;
    const apiserverArgs = apiserverFlags(
      { etcdUrl, bindAddress, port: apiserverPort, pki: p },
      opts.extraApiserverArgs,
    );
    const spawnApiserver = () =>
      group.spawn('kube-apiserver', binaries.kubeApiserver, apiserverArgs, logs['kube-apiserver']!);
    let apiserver = await spawnApiserver();
    const kubeConfig: KubeConnection = {
      server: apiserverUrl,
      ca: pki.ca.certPem,
      cert: pki.admin.certPem,
      key: pki.admin.keyPem,
    };
    client = new KubeClient(kubeConfig);
    const readiness = apiserverReadiness(client);
    await waitReady(apiserver, readiness, timeoutMs);
    /** Kills kube-apiserver (a crash with SIGKILL) and starts it again on the same port and etcd. */
    const restartApiserver = async (signal: NodeJS.Signals = 'SIGKILL') => {
      const old = apiserver;
      old.expectedExit = true;
      old.child.kill(signal);
      await old.exited;
      apiserver = await spawnApiserver();
      await waitReady(apiserver, readiness, timeoutMs);
    };

    const kubeconfigPath = join(dataDir, 'kubeconfig');
    await writeFile(
      kubeconfigPath,
      kubeconfigYaml({
        name: 'konductor-devcluster',
        server: apiserverUrl,
        caPem: pki.ca.certPem,
        user: 'konductor-admin',
        cert: { pem: pki.admin.certPem },
        key: { pem: pki.admin.keyPem },
      }),
      { mode: 0o600 },
    );

    // kube-controller-manager
    if (opts.controllerManager !== false) {
      const kcmKubeconfig = join(p.dir, 'kube-controller-manager.kubeconfig');
      await writeFile(
        kcmKubeconfig,
        kubeconfigYaml({
          name: 'konductor-devcluster',
          server: apiserverUrl,
          caPem: pki.ca.certPem,
          user: 'system:kube-controller-manager',
          cert: { path: p.controllerManagerCert },
          key: { path: p.controllerManagerKey },
        }),
        { mode: 0o600 },
      );
      const kcm = await group.spawn(
        'kube-controller-manager',
        binaries.kubeControllerManager,
        controllerManagerFlags({ kubeconfig: kcmKubeconfig, pki: p }, opts.extraControllerManagerArgs),
        logs['kube-controller-manager']!,
      );
      await waitReady(kcm, controllerManagerReadiness(client), timeoutMs);
    }

    log(
      `control plane up in ${((Date.now() - started) / 1000).toFixed(1)} s at ${apiserverUrl} (${dataDir})`,
    );
    return {
      id,
      kubeconfigPath,
      kubeConfig,
      client,
      dataDir,
      caCertPath: p.caCert,
      caKeyPath: p.caKey,
      apiserverUrl,
      apiserverPort,
      etcdUrl,
      logs,
      pids: group.pids,
      binaries,
      processes: group,
      restartApiserver,
      stop,
    };
  } catch (err) {
    // Keep the logs the error points at; drop the rest (etcd data, keys).
    await group.stop(['kube-controller-manager', 'kube-apiserver', 'etcd'], 2000).catch(() => {});
    client?.close();
    if (!keep) {
      await rm(join(dataDir, 'etcd'), { recursive: true, force: true });
      await rm(join(dataDir, 'pki'), { recursive: true, force: true });
    }
    throw err;
  }
}
