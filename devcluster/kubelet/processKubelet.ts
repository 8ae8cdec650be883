/**
 * The process kubelet: a TEST HARNESS standing in for a real kubelet in the devcluster (DESIGN §7).
 * It registers a Node, binds pending pods to it (acting as the scheduler), runs the pods bound to it
 * as local processes (podRunner.ts) and writes their status back as the kubelet does, and serves
 * container logs to the API server (logServer.ts). See docs/devcluster-kubelet.md for its limits.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { konductorError } from '../../api/errors.ts';
import { Informer } from '../../api/informer.ts';
import type { KubeClient } from '../../api/kubeClient.ts';
import { resourcePath } from '../../api/kubeRequest.ts';
import { findProcessTools } from './containerProcess.ts';
import type { LogLookup } from './containerSlot.ts';
import { hostBaseEnv } from './env.ts';
import { agentImageHandler, type ImageHandler, shellImageHandler } from './imageTable.ts';
import { type LogServer, startLogServer } from './logServer.ts';
import { hostCapacity, NodeHeartbeat, registerNode } from './node.ts';
import { PodRunner } from './podRunner.ts';
import type { KPod } from './podTypes.ts';
import { PodBinder } from './scheduler.ts';
import { StatusWriter } from './statusWriter.ts';

export const DEFAULT_NODE_NAME = 'konductor-dev-node';

/** What the kubelet needs of a devcluster (devcluster/controlPlane.ts DevCluster satisfies it). */
export interface ClusterConnection {
  client: KubeClient;
  caCertPath: string;
  caKeyPath?: string;
  apiserverUrl?: string;
}

export interface ProcessKubeletOptions {
  /** The control plane; its fields are defaults for client, caCertPath, caKeyPath and apiserverUrl. */
  cluster?: ClusterConnection;
  /** Client of the control plane (admin credentials). Not closed by stop(). */
  client?: KubeClient;
  /** Cluster CA certificate: verifies the API server's client certificate on the log server. */
  caCertPath?: string;
  /** Cluster CA key: signs the log server's serving certificate (else a throwaway CA does). */
  caKeyPath?: string;
  /** https://127.0.0.1:PORT of the API server: sets KUBERNETES_SERVICE_HOST/PORT in containers. */
  apiserverUrl?: string;
  nodeName?: string;
  /** Working directory (pod volumes and logs); a fresh temp dir by default, removed by stop(). */
  rootDir?: string;
  /** Extra image handlers, consulted before the built-in ones. */
  images?: ImageHandler[];
  /** The agent entry point; default <repo>/dist/konductor-agent.js. */
  agentScript?: string;
  /** Restart back-off of failed containers (CrashLoopBackOff), initial and maximum. */
  backoffMs?: { initialMs: number; maxMs: number };
  leaseDurationSeconds?: number;
  /** Grace period given to running containers by stop(). */
  stopGracePeriodMs?: number;
  /** Diagnostics; default: written to stderr prefixed with [process-kubelet]. */
  log?: (msg: string) => void;
}

export interface ProcessKubelet {
  nodeName: string;
  /** Port of the HTTPS log server (the node's kubelet endpoint). */
  kubeletPort: number;
  rootDir: string;
  /** PIDs of every container process running now. */
  pids(): number[];
  /** Stops watching, kills every process it started (SIGTERM, then SIGKILL) and returns when they are gone. */
  stop(): Promise<void>;
}

/** Repository root, from this module's location (devcluster/kubelet/ or dist/...). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

export async function startProcessKubelet(options: ProcessKubeletOptions): Promise<ProcessKubelet> {
  const c = options.cluster;
  const client = options.client ?? c?.client;
  const caCertPath = options.caCertPath ?? c?.caCertPath;
  if (!client || !caCertPath) {
    throw konductorError('KDR_KUBELET_OPTIONS');
  }
  const opts = {
    ...options,
    caCertPath,
    caKeyPath: options.caKeyPath ?? c?.caKeyPath,
    apiserverUrl: options.apiserverUrl ?? c?.apiserverUrl,
  };
  const tools = findProcessTools();
  const log = opts.log ?? ((m: string) => process.stderr.write(`[process-kubelet] ${m}\n`));
  const nodeName = opts.nodeName ?? DEFAULT_NODE_NAME;
  const ownRoot = !opts.rootDir;
  const rootDir = opts.rootDir ?? mkdtempSync(join(tmpdir(), 'konductor-process-kubelet-'));
  await mkdir(join(rootDir, 'pods'), { recursive: true });
  let clusterCaPem: string;
  try {
    clusterCaPem = readFileSync(opts.caCertPath, 'utf8');
  } catch (err) {
    throw konductorError('KDR_KUBELET_CA', opts.caCertPath, (err as Error).message);
  }
  const capacity = hostCapacity();
  const images: ImageHandler[] = [
    ...(opts.images ?? []),
    agentImageHandler({
      nodePath: process.execPath,
      agentScript: opts.agentScript ?? join(repoRoot(), 'dist', 'konductor-agent.js'),
      exists: existsSync,
    }),
    shellImageHandler(),
  ];
  const serviceEnv: Record<string, string> = {};
  if (opts.apiserverUrl) {
    const u = new URL(opts.apiserverUrl);
    const port = u.port || '443';
    Object.assign(serviceEnv, {
      KUBERNETES_SERVICE_HOST: u.hostname.replace(/^\[|\]$/g, ''),
      KUBERNETES_SERVICE_PORT: port,
      KUBERNETES_SERVICE_PORT_HTTPS: port,
    });
  }
  const baseEnv = hostBaseEnv(process.env);
  const runners = new Map<string, PodRunner>(); // by pod uid
  const byName = new Map<string, PodRunner>(); // ns/name -> latest runner
  const statusWriter = new StatusWriter(client, log);

  const findLog = (ns: string, pod: string, container: string, previous: boolean): LogLookup => {
    const r = byName.get(`${ns}/${pod}`);
    if (!r) return { ok: false, status: 404, message: `pod ${ns}/${pod} is not running on node ${nodeName}` };
    return r.findLog(container, previous);
  };
  const logServer: LogServer = await startLogServer({
    clientCaPem: clusterCaPem,
    caCertPath: opts.caCertPath,
    caKeyPath: opts.caKeyPath,
    nodeName,
    findLog,
    log,
  });

  const nodeOpts = {
    nodeName,
    kubeletPort: logServer.port,
    capacity,
    leaseDurationSeconds: opts.leaseDurationSeconds ?? 40,
  };
  const heartbeat = new NodeHeartbeat(client, nodeOpts, log);
  try {
    await registerNode(client, nodeOpts);
    await heartbeat.start();
  } catch (err) {
    await logServer.close();
    throw konductorError('KDR_KUBELET_REGISTER', nodeName, (err as Error).message);
  }

  const newRunner = (pod: KPod): PodRunner =>
    new PodRunner(pod, {
      client,
      nodeName,
      hostIP: '127.0.0.1',
      podIP: '127.0.0.1',
      podDir: join(rootDir, 'pods', pod.metadata.uid ?? 'unknown'),
      images,
      tools,
      baseEnv,
      serviceEnv,
      nodeCapacity: capacity,
      clusterCaPem,
      backoff: opts.backoffMs ?? { initialMs: 200, maxMs: 5000 },
      onChange: (r) => statusWriter.changed(r),
      flushStatus: (r) => statusWriter.flush(r),
      log,
    });

  const deleteTerminalPod = (pod: KPod) =>
    client
      .delete(
        resourcePath({
          version: 'v1',
          plural: 'pods',
          namespace: pod.metadata.namespace,
          name: pod.metadata.name,
        }),
        {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          gracePeriodSeconds: 0,
          preconditions: { uid: pod.metadata.uid },
        },
      )
      .catch(() => undefined);

  const onPod = (pod: KPod) => {
    const uid = pod.metadata.uid ?? '';
    const existing = runners.get(uid);
    if (existing) {
      existing.update(pod);
      return;
    }
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') {
      // Finished before this kubelet started: nothing to run; finish a pending deletion.
      if (pod.metadata.deletionTimestamp) void deleteTerminalPod(pod);
      return;
    }
    const r = newRunner(pod);
    runners.set(uid, r);
    byName.set(`${pod.metadata.namespace}/${pod.metadata.name}`, r);
    if (pod.metadata.deletionTimestamp) {
      void r.terminate({ deleteFromApi: true });
      return;
    }
    r.start();
  };
  const forget = (pod: KPod) => {
    const uid = pod.metadata.uid ?? '';
    const r = runners.get(uid);
    if (!r) return;
    runners.delete(uid);
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    if (byName.get(key) === r) byName.delete(key);
    void r
      .terminate({ deleteFromApi: false, graceMs: 0 })
      .then(() => rmSync(join(rootDir, 'pods', uid), { recursive: true, force: true }));
  };

  const podInformer = new Informer<KPod>(client, {
    path: '/api/v1/pods',
    fieldSelector: `spec.nodeName=${nodeName}`,
    onEvent: (ev) => {
      try {
        if (ev.type === 'deleted') forget(ev.object);
        else onPod(ev.object);
      } catch (err) {
        log(
          `pod ${ev.object.metadata?.namespace}/${ev.object.metadata?.name}: ${(err as Error).stack ?? err}`,
        );
      }
    },
    onError: (err, attempt) => {
      if (attempt === 1) log(`pod watch error (resuming): ${(err as Error).message}`);
    },
  });
  const binder = new PodBinder(client, nodeName, log);
  podInformer.start();
  await Promise.all([podInformer.synced, binder.start()]);

  let stopping: Promise<void> | undefined;
  return {
    nodeName,
    kubeletPort: logServer.port,
    rootDir,
    pids: () => [...runners.values()].flatMap((r) => r.pids()),
    stop: () => {
      stopping ??= (async () => {
        binder.stop();
        podInformer.stop();
        heartbeat.stop();
        await Promise.all(
          [...runners.values()].map((r) =>
            r.terminate({ deleteFromApi: false, graceMs: opts.stopGracePeriodMs ?? 2000 }),
          ),
        );
        await logServer.close();
        if (ownRoot) rmSync(rootDir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}
