/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager as
 * child processes of this one, each logging to a file in the cluster directory. See
 * devcluster/README.md for the flags and why.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { type KonductorError, konductorError } from '../api/errors.ts';
import { isNotFound, KubeClient, type KubeConnection } from '../api/kubeClient.ts';
import { ensureK8sBinaries, type K8sBinaries } from './binaries.ts';
import { writeClusterPki } from './pki.ts';
import { assertPortFree, getFreePorts, LOOPBACK } from './ports.ts';
import { logTail, type ManagedProcess, ProcessGroup, reapStaleClusters } from './processes.ts';

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

export const SERVICE_CLUSTER_IP_RANGE = '10.0.0.0/24';
export const KUBERNETES_SERVICE_IP = '10.0.0.1';
/** Admission plugins enabled besides the defaults (the real node adds NodeRestriction). */
export const ADMISSION_PLUGINS = [
  'NamespaceLifecycle',
  'ServiceAccount',
  'MutatingAdmissionWebhook',
  'ValidatingAdmissionWebhook',
  'ValidatingAdmissionPolicy',
];
/**
 * Audiences the apiserver accepts for service-account tokens: its issuer only, as in a real cluster. So an
 * ordinary service-account token (`kubectl create token`) is not a `konductor` token; the injected projected
 * token asks for audience `konductor` itself, and the manager's TokenReview names that audience.
 */
export const API_AUDIENCES = ['https://kubernetes.default.svc'];

const defaultLog = (line: string) => process.stderr.write(`[devcluster] ${line}\n`);

/**
 * `base` with `extra` applied: an extra `--name=value` replaces the base flag of the same name (list
 * flags such as --authorization-mode fail when repeated), any other is appended.
 */
export function mergeFlags(base: readonly string[], extra: readonly string[] = []): string[] {
  const name = (f: string) => f.split('=')[0];
  const out = [...base];
  for (const flag of extra) {
    const i = out.findIndex((f) => name(f) === name(flag));
    if (i >= 0) out[i] = flag;
    else out.push(flag);
  }
  return out;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function componentError(proc: ManagedProcess, what: string): KonductorError {
  const tail = logTail(proc.logPath, 30);
  const portInUse = /address already in use/i.test(tail);
  const exit = proc.exitInfo
    ? ` (exit ${proc.exitInfo.code ?? ''}${proc.exitInfo.signal ? ` signal ${proc.exitInfo.signal}` : ''})`
    : '';
  return konductorError(
    portInUse ? 'KDR_DEVCLUSTER_PORT_IN_USE' : 'KDR_DEVCLUSTER_COMPONENT_FAILED',
    [
      `${proc.component} ${what}${exit}${portInUse ? ': its port is already in use by another process' : ''}.`,
      `Log: ${proc.logPath}`,
      'Last lines:',
      ...tail.split('\n').map((l) => `  ${l}`),
    ].join('\n'),
  );
}

/** Polls `probe` until it returns true; fails fast if `proc` exits, or at the deadline. */
async function waitReady(
  proc: ManagedProcess,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  lastState: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 25;
  for (;;) {
    if (proc.exitInfo) throw componentError(proc, 'exited during start-up');
    if (await probe().catch(() => false)) return;
    if (proc.exitInfo) throw componentError(proc, 'exited during start-up');
    if (Date.now() > deadline) {
      const state = lastState();
      throw componentError(
        proc,
        `did not become ready within ${Math.round(timeoutMs / 1000)} s${state ? ` (last check: ${state})` : ''}`,
      );
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 250);
  }
}

function etcdHealthy(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(`${url}/health`, { timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('true')));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

export function kubeconfigYaml(opts: {
  name: string;
  server: string;
  caPem: string;
  user: string;
  cert: { pem?: string; path?: string };
  key: { pem?: string; path?: string };
}): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const user: Record<string, string> = {};
  if (opts.cert.pem) user['client-certificate-data'] = b64(opts.cert.pem);
  if (opts.cert.path) user['client-certificate'] = opts.cert.path;
  if (opts.key.pem) user['client-key-data'] = b64(opts.key.pem);
  if (opts.key.path) user['client-key'] = opts.key.path;
  return toYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: opts.name, cluster: { server: opts.server, 'certificate-authority-data': b64(opts.caPem) } },
    ],
    users: [{ name: opts.user, user }],
    contexts: [{ name: opts.name, context: { cluster: opts.name, user: opts.user } }],
    'current-context': opts.name,
  });
}

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
    const peerUrl = `http://${LOOPBACK}:${etcdPeerPort}`;
    const etcd = await group.spawn(
      'etcd',
      binaries.etcd,
      [
        '--name=devcluster',
        `--data-dir=${join(dataDir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=devcluster=${peerUrl}`,
        '--unsafe-no-fsync=true',
        '--log-level=warn',
        ...(opts.extraEtcdArgs ?? []),
      ],
      logs.etcd!,
    );
    await waitReady(
      etcd,
      () => etcdHealthy(etcdUrl),
      timeoutMs,
      () => '',
    );

    // kube-apiserver
    const apiserverUrl = `https://${bindAddress}:${apiserverPort}`;
    const spawnApiserver = () =>
      group.spawn('kube-apiserver', binaries.kubeApiserver, apiserverArgs, logs['kube-apiserver']!);
    const apiserverArgs = mergeFlags(
      [
        `--etcd-servers=${etcdUrl}`,
        `--bind-address=${bindAddress}`,
        `--advertise-address=${bindAddress}`,
        `--secure-port=${apiserverPort}`,
        `--cert-dir=${p.dir}`,
        `--tls-cert-file=${p.apiserverCert}`,
        `--tls-private-key-file=${p.apiserverKey}`,
        `--client-ca-file=${p.caCert}`,
        '--authorization-mode=RBAC',
        `--enable-admission-plugins=${ADMISSION_PLUGINS.join(',')}`,
        '--allow-privileged=true',
        `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${p.serviceAccountPub}`,
        `--service-account-signing-key-file=${p.serviceAccountKey}`,
        `--api-audiences=${API_AUDIENCES.join(',')}`,
        `--kubelet-client-certificate=${p.kubeletClientCert}`,
        `--kubelet-client-key=${p.kubeletClientKey}`,
        `--kubelet-certificate-authority=${p.caCert}`,
        '--kubelet-preferred-address-types=InternalIP',
        // A loopback advertise address cannot be an Endpoints address: do not reconcile the
        // `kubernetes` Service endpoints (nothing in the devcluster reaches the apiserver through it).
        '--endpoint-reconciler-type=none',
        '--profiling=false',
      ],
      opts.extraApiserverArgs,
    );
    let apiserver = await spawnApiserver();
    const kubeConfig: KubeConnection = {
      server: apiserverUrl,
      ca: pki.ca.certPem,
      cert: pki.admin.certPem,
      key: pki.admin.keyPem,
    };
    client = new KubeClient(kubeConfig);
    const c = client;
    let lastReadyz = '';
    const apiserverReady = () =>
      waitReady(
        apiserver,
        async () => {
          try {
            const body = await c.request<string>('GET', '/readyz', { timeoutMs: 2000 });
            lastReadyz = String(body);
            return String(body).trim() === 'ok';
          } catch (err) {
            lastReadyz = (err as Error).message
              .split('\n')
              .filter((l) => l.includes('failed'))
              .join('; ');
            return false;
          }
        },
        timeoutMs,
        () => lastReadyz,
      );
    await apiserverReady();
    /** Kills kube-apiserver (a crash with SIGKILL) and starts it again on the same port and etcd. */
    const restartApiserver = async (signal: NodeJS.Signals = 'SIGKILL') => {
      const old = apiserver;
      old.expectedExit = true;
      old.child.kill(signal);
      await old.exited;
      apiserver = await spawnApiserver();
      await apiserverReady();
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
        mergeFlags(
          [
            `--kubeconfig=${kcmKubeconfig}`,
            `--authentication-kubeconfig=${kcmKubeconfig}`,
            `--authorization-kubeconfig=${kcmKubeconfig}`,
            '--secure-port=0',
            '--leader-elect=false',
            '--use-service-account-credentials=false',
            `--service-account-private-key-file=${p.serviceAccountKey}`,
            `--root-ca-file=${p.caCert}`,
            `--cluster-signing-cert-file=${p.caCert}`,
            `--cluster-signing-key-file=${p.caKey}`,
            // Everything on by default except what needs cloud, node CIDRs or a node heartbeat we do
            // not promise: node-lifecycle would taint and evict pods of a quiet process kubelet.
            '--controllers=*,-node-ipam-controller,-node-lifecycle-controller,-persistentvolume-attach-detach-controller',
            '--cluster-name=konductor-devcluster',
            '--controller-start-interval=0s',
          ],
          opts.extraControllerManagerArgs,
        ),
        logs['kube-controller-manager']!,
      );
      // Ready when the serviceaccount controller has created default/default.
      let lastSa = '';
      await waitReady(
        kcm,
        async () => {
          try {
            await c.get('/api/v1/namespaces/default/serviceaccounts/default');
            return true;
          } catch (err) {
            lastSa = isNotFound(err)
              ? 'serviceaccount default/default not created yet'
              : (err as Error).message;
            return false;
          }
        },
        timeoutMs,
        () => lastSa,
      );
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
