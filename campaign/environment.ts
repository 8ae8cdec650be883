/**
 * The campaign's cluster: a devcluster control plane of its own (faults kill its API server and etcd), a
 * node, konductor installed as the devcluster installs it — with a TCP proxy between the managers and the
 * API server (a fault cuts it) and one between the agents and the manager (the agents' --agent-url; a fault
 * cuts it mid-stream) — the manager fleet, and the etcd watcher every round's checks read.
 *
 * The API server stores every object as JSON (`--storage-media-type`), so the watcher can read pods too, and
 * runs without its watch cache (`--watch-cache=false`, as test/integration/watch-gaps-and-limits.test.ts):
 * a watch that resumes after an outage then goes to etcd, and gets 410 Gone once etcd was compacted past it —
 * the re-list path the campaign must exercise. Neither changes what the manager sees of an object.
 *
 * The node (`--node`): the process kubelet (default) on a control plane on 127.0.0.1, or the real node
 * (devcluster/realnode/: kubelet, containerd, CNI; one per machine, behind its lock) with the control plane on
 * the node IP. Either way the managers are the same supervised host processes (every manager fault works
 * alike); on the real node the pods run the agent image (Dockerfile.sidecar) and the campaign's shell image,
 * and reach the agent proxy on the node IP (docs/reliability.md, "Nodes").
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { KubeClient } from '../api/kubeClient.ts';
import { etcdRevision } from '../devcluster/etcd.ts';
import { ensureKonductorImages } from '../devcluster/images/index.ts';
import { type DevCluster, startCluster, startRealCluster } from '../devcluster/index.ts';
import { installKonductor, type KonductorInstall } from '../devcluster/konductor.ts';
import { type ProcessKubelet, startProcessKubelet } from '../devcluster/kubelet/index.ts';
import { buildManager, buildResolver, ensureAgentBundle, MANAGER_BUNDLE } from '../scripts/build.ts';
import { kubeconfigThrough, startTcpProxy, type TcpProxy } from '../test/helpers/tcpProxy.ts';
import { EtcdWatcher, type StoredVersion } from './etcdWatch.ts';
import { ManagerFleet } from './fleet.ts';
import { ensureCampaignShellImage } from './shellImage.ts';
import { PROCESS_SHELL_IMAGE } from './workload.ts';

export const NODE_KINDS = ['process', 'real'] as const;
export type NodeKind = (typeof NODE_KINDS)[number];

/** The manager's memory limit, as the chart's default (controller.resources.limits.memory: 128Mi). */
export const MANAGER_MEMORY_LIMIT_BYTES = 128 * 1024 * 1024;

export interface CampaignNode {
  kind: NodeKind;
  nodeName: string;
  /** The image of the workload's containers (a shell with `date +%s%N`). */
  shellImage: string;
  /** Where the agents in pods reach the agent proxy (the proxy listens there). */
  agentHost: string;
  /** The manager's flags this node needs (the agent image it injects). */
  managerArgs: string[];
}

/** How long `--node real` waits for another real node on this machine (the e2e tests') to stop. */
const REAL_NODE_LOCK_WAIT_MS = 30 * 60_000;

export interface CampaignEnv {
  cluster: DevCluster;
  client: KubeClient;
  node: CampaignNode;
  install: KonductorInstall;
  fleet: ManagerFleet;
  /** Between the managers and the API server. */
  apiProxy: TcpProxy;
  /** Between the agents and the manager's agent API. */
  agentProxy: TcpProxy;
  watcher: EtcdWatcher;
  /** Receives every watched version (the current round sets it). */
  route: {
    accept: (key: string) => boolean;
    onVersion: (v: StoredVersion) => void;
    onGap: (what: string) => void;
  };
  workDir: string;
  stop(): Promise<void>;
}

export interface EnvironmentOptions {
  node: NodeKind;
  /** Run the manager from the bundle the image runs (dist/konductor.js, built first), else from the sources. */
  managerFromBundle: boolean;
  log: (line: string) => void;
}

/** The control plane and the node the workload runs on; the cluster's stop() stops both. */
async function startClusterAndNode(
  kind: NodeKind,
  extraApiserverArgs: string[],
  log: (l: string) => void,
): Promise<{ cluster: DevCluster; node: CampaignNode }> {
  const quiet = () => undefined;
  if (kind === 'real') {
    // The agent image built from Dockerfile.sidecar, as the e2e tests run it; the manager stays a host process.
    const [{ agent }, shell] = await Promise.all([
      ensureKonductorImages({ log: (l) => log(`[images] ${l}`) }),
      ensureCampaignShellImage({ log: (l) => log(`[images] ${l}`) }),
    ]);
    const cluster = await startRealCluster({
      // First lines only: a manager the faults kill is an "unexpected exit" to the control plane's process
      // group, which would print its log's tail each time (the line names the log file).
      log: (l) => log(`[realnode] ${l.split('\n')[0]}`),
      images: [agent, shell],
      lockWaitMs: REAL_NODE_LOCK_WAIT_MS,
      readyTimeoutMs: 120_000,
      extraApiserverArgs,
    });
    return {
      cluster,
      node: {
        kind,
        nodeName: cluster.node.name,
        shellImage: shell.ref,
        agentHost: cluster.node.ip,
        managerArgs: [`--agent-image=${agent.ref}`],
      },
    };
  }
  const cluster = await startCluster({ log: quiet, extraApiserverArgs });
  try {
    // The node's own troubles (a failed binding, a watch error, what the scheduler's sweep found) go to the log.
    const nodeLog = (m: string) => (/sweep:|failed|error/i.test(m) ? log(`[node] ${m}`) : undefined);
    const kubelet: ProcessKubelet = await startProcessKubelet({ cluster, log: nodeLog });
    const stop = async () => {
      await kubelet.stop();
      await cluster.stop();
    };
    return {
      cluster: { ...cluster, stop },
      node: {
        kind,
        nodeName: kubelet.nodeName,
        shellImage: PROCESS_SHELL_IMAGE,
        agentHost: '127.0.0.1',
        managerArgs: [],
      },
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

export async function startEnvironment(opts: EnvironmentOptions): Promise<CampaignEnv> {
  const { log } = opts;
  await ensureAgentBundle((l) => log(l));
  // The bundled manager runs dist/kubeconfig-resolver.js to read its kubeconfig: both are built.
  if (opts.managerFromBundle) await Promise.all([buildManager(), buildResolver()]);
  const { cluster, node } = await startClusterAndNode(
    opts.node,
    ['--storage-media-type=application/json', '--watch-cache=false'],
    log,
  );
  const stops: (() => Promise<unknown>)[] = [() => cluster.stop()];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch((err: Error) => log(`stop: ${err.message}`));
  };
  try {
    const workDir = join(cluster.dataDir, 'campaign');
    await mkdir(workDir, { recursive: true });
    const route: CampaignEnv['route'] = {
      accept: () => false,
      onVersion: () => undefined,
      onGap: () => undefined,
    };
    const watcher = new EtcdWatcher({
      etcdUrl: cluster.etcdUrl,
      prefix: '/registry/',
      startRevision: (await etcdRevision(cluster.etcdUrl)) + 1,
      accept: (key) => route.accept(key),
      onVersion: (v) => route.onVersion(v),
      onGap: (what) => route.onGap(what),
    }).start();
    stops.push(() => watcher.stop());

    // The API server listens on the control plane's bind address (the node IP on a real node).
    const apiProxy = await startTcpProxy({
      host: new URL(cluster.apiserverUrl).hostname,
      port: cluster.apiserverPort,
    });
    stops.push(() => apiProxy.close());
    let agentPort = 0;
    const agentProxy = await startTcpProxy(() => ({ host: '127.0.0.1', port: agentPort }), node.agentHost);
    stops.push(() => agentProxy.close());
    const proxied = await kubeconfigThrough(
      apiProxy,
      cluster.kubeconfigPath,
      join(workDir, 'kubeconfig-through-proxy'),
    );
    const env = { KONDUCTOR_MEMORY_LIMIT: String(MANAGER_MEMORY_LIMIT_BYTES) };
    const install = await installKonductor(
      {
        client: cluster.client,
        kubeconfigPath: proxied,
        dataDir: cluster.dataDir,
        processes: cluster.processes,
      },
      {
        log: (l) => log(`[devcluster] ${l}`),
        // The agents reach the manager through the proxy (TLS passes through: the certificate names its address).
        managerArgs: [`--agent-url=https://${node.agentHost}:${agentProxy.port}`, ...node.managerArgs],
        servingIpAddresses: node.agentHost === '127.0.0.1' ? [] : [node.agentHost],
        managerProcess: {
          ...(opts.managerFromBundle ? { entry: MANAGER_BUNDLE } : {}),
          // No heap flag: the manager sizes itself from the memory limit, as in the chart.
          nodeArgs: [],
          env,
        },
      },
    );
    agentPort = Number(new URL(install.url).port);
    stops.push(() => install.uninstall());
    const fleet = new ManagerFleet({
      processes: cluster.processes,
      client: cluster.client,
      primary: install,
      env,
      logDir: join(cluster.dataDir, 'logs'),
      log,
    });
    stops.push(() => fleet.shutdown());
    return {
      cluster,
      client: cluster.client,
      node,
      install,
      fleet,
      apiProxy,
      agentProxy,
      watcher,
      route,
      workDir,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
