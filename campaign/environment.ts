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
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { konductorError } from '../api/errors.ts';
import type { KubeClient } from '../api/kubeClient.ts';
import { etcdRevision } from '../devcluster/etcd.ts';
import { type DevCluster, startCluster } from '../devcluster/index.ts';
import { installKonductor, type KonductorInstall } from '../devcluster/konductor.ts';
import { type ProcessKubelet, startProcessKubelet } from '../devcluster/kubelet/index.ts';
import { buildManager, buildResolver, ensureAgentBundle, MANAGER_BUNDLE } from '../scripts/build.ts';
import { kubeconfigThrough, startTcpProxy, type TcpProxy } from '../test/helpers/tcpProxy.ts';
import { EtcdWatcher, type StoredVersion } from './etcdWatch.ts';
import { ManagerFleet } from './fleet.ts';

export const NODE_KINDS = ['process', 'real'] as const;
export type NodeKind = (typeof NODE_KINDS)[number];

/** The manager's memory limit, as the chart's default (controller.resources.limits.memory: 128Mi). */
export const MANAGER_MEMORY_LIMIT_BYTES = 128 * 1024 * 1024;

export interface CampaignNode {
  kind: NodeKind;
  nodeName: string;
  stop(): Promise<void>;
}

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

/** The node the workload runs on. The real node (`--node real`) is not driven by the campaign yet (docs/reliability.md). */
async function startNode(
  kind: NodeKind,
  cluster: DevCluster,
  log: (l: string) => void,
): Promise<CampaignNode> {
  if (kind === 'real') {
    throw konductorError('KDR_CAMPAIGN_NODE_UNAVAILABLE', kind);
  }
  const kubelet: ProcessKubelet = await startProcessKubelet({ cluster, log: (m) => log(`[kubelet] ${m}`) });
  return { kind, nodeName: kubelet.nodeName, stop: () => kubelet.stop() };
}

export async function startEnvironment(opts: EnvironmentOptions): Promise<CampaignEnv> {
  const { log } = opts;
  const quiet = () => undefined;
  await ensureAgentBundle((l) => log(l));
  // The bundled manager runs dist/kubeconfig-resolver.js to read its kubeconfig: both are built.
  if (opts.managerFromBundle) await Promise.all([buildManager(), buildResolver()]);
  const cluster = await startCluster({
    log: quiet,
    extraApiserverArgs: ['--storage-media-type=application/json', '--watch-cache=false'],
  });
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
    // The node's own troubles (a failed binding, a watch error, what the scheduler's sweep found) go to the log.
    const nodeLog = (m: string) => (/sweep:|failed|error/i.test(m) ? log(`[node] ${m}`) : undefined);
    const node = await startNode(opts.node, cluster, nodeLog);
    stops.push(() => node.stop());

    const apiProxy = await startTcpProxy({ host: '127.0.0.1', port: cluster.apiserverPort });
    stops.push(() => apiProxy.close());
    let agentPort = 0;
    const agentProxy = await startTcpProxy(() => ({ host: '127.0.0.1', port: agentPort }));
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
        // The agents reach the manager through the proxy (TLS passes through: the certificate names 127.0.0.1).
        managerArgs: [`--agent-url=https://127.0.0.1:${agentProxy.port}`],
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
