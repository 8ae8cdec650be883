/**
 * Installs konductor into a devcluster the way the Helm chart does in a real cluster, minus the
 * Deployment: the CRDs, a serving certificate for 127.0.0.1 signed by a fresh CA, the manager as a
 * local process (from the TypeScript sources, so tests always run the current code), and the
 * MutatingWebhookConfiguration with a `url` client config (as envtest does).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAdmissionPolicies } from '../api/admissionPolicies.ts';
import { backoffCeiling } from '../api/backoff.ts';
import { DEFAULT_AGENT_IMAGE } from '../api/constants.ts';
import { buildWebhookConfiguration, webhookNamespaceSelector } from '../api/webhookConfiguration.ts';
import type { DevCluster } from './controlPlane.ts';
import { ensureManagerIdentity } from './managerIdentity.ts';

/** What installKonductor needs of a cluster (a DevCluster, or a test worker's view of the global one). */
export type ClusterHandle = Pick<DevCluster, 'client' | 'kubeconfigPath' | 'dataDir' | 'processes'>;

import { installCrds } from './crds.ts';
import { createCa, signCertificate } from './pki.ts';
import { getFreePorts } from './ports.ts';
import type { ManagedProcess } from './processes.ts';
import { logTail } from './processInfo.ts';
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const WEBHOOK_CONFIGURATION_NAME = 'konductor-devcluster';
/** The manager's ServiceAccount (in its service namespace: the scope, or `default`). */
export const MANAGER_SERVICE_ACCOUNT = 'konductor';
const ADMISSIONREGISTRATION = '/apis/admissionregistration.k8s.io/v1';
/** Node.js flags of the manager process (keep in sync with Dockerfile.webhook's ENTRYPOINT). */
export const MANAGER_NODE_ARGS = '--max-semi-space-size=2 --max-old-space-size=192';

export interface InstallOptions {
  /**
   * Scope the manager and its webhook to one namespace (--namespace): several managers can then share one
   * control plane without seeing each other's pods (each integration test file runs its own).
   */
  namespace?: string;
  /**
   * Distinguishes several managers of one scope (their cert dirs, logs and process names); they share
   * the webhook configuration, which points at the last one installed.
   */
  instanceSuffix?: string;
  /** Extra manager flags. */
  managerArgs?: string[];
  /** Log level of the manager (default info; KONDUCTOR_LOG_LEVEL overrides). */
  logLevel?: string;
  log?: (line: string) => void;
  /**
   * Certificates (docs/certificates.md). `devcluster` (default): a CA and serving certificate made here,
   * written to the cert dir, caBundle set here. `self-managed`: the manager runs with
   * `--cert-mode=self-managed --webhook-config-name=<this install's>` and makes, stores (Secret), rotates and
   * trusts (caBundle) its own; the webhook configuration is created here without caBundle before it starts.
   */
  certMode?: 'devcluster' | 'self-managed';
  /**
   * IP addresses the devcluster serving certificate names besides 127.0.0.1: an address pods reach the
   * agent API at (the fault campaign on a real node: a proxy on the node IP in front of the agent port).
   */
  servingIpAddresses?: string[];
  /**
   * Restart the manager when it dies, with backoff, as the Deployment it stands for would (default true).
   * stopManager() and uninstall() are deliberate and never restarted.
   */
  supervise?: boolean;
  /**
   * How the manager process runs (benchmarks: the bundle the image runs, the image's node flags, inside a
   * memory cgroup). `entry`: the script (default cmd/konductor.ts); `nodeArgs`: node flags (default
   * MANAGER_NODE_ARGS); `env`: added to its environment; `commandPrefix`: a command that execs the rest.
   */
  managerProcess?: {
    entry?: string;
    nodeArgs?: string[];
    env?: Record<string, string>;
    commandPrefix?: string[];
  };
}

/** Delay before the n-th consecutive restart (0-based): 1 s doubling to 30 s, like a short CrashLoopBackOff. */
export function restartDelayMs(restarts: number): number {
  return backoffCeiling(restarts, { baseMs: 1000, maxMs: 30_000 });
}

/** A manager that ran this long before dying starts its backoff afresh. */
const STABLE_RUN_MS = 60_000;

export interface KonductorInstall {
  /** https://127.0.0.1:<port> — the agent API (/v1/wait, /v1/release), as the injected agent reaches it. */
  url: string;
  /** https://127.0.0.1:<port> — admission (POST /mutate), its own listener (docs/security.md). */
  admissionUrl: string;
  healthUrl: string;
  metricsUrl: string;
  certDir: string;
  /** The CA as of installation (self-managed: the manager's, read from the cert dir once it is ready). */
  caPem: string;
  /** Name of this install's MutatingWebhookConfiguration (and prefix of its admission policies). */
  webhookConfigurationName: string;
  /** The user name the manager authenticates as (its ServiceAccount's). */
  managerUsername: string;
  /** The manager's kubeconfig (its ServiceAccount token). */
  managerKubeconfigPath: string;
  manager(): ManagedProcess | undefined;
  /** Starts the manager (again) and waits for /readyz. */
  startManager(): Promise<void>;
  /** Restarts done by the supervisor so far (unexpected exits). */
  restarts(): number;
  /** Stops the manager with a signal (SIGTERM: graceful; SIGKILL: crash) and waits until it is gone. */
  stopManager(signal?: NodeJS.Signals): Promise<void>;
  /** Removes the webhook configuration and stops the manager. */
  uninstall(): Promise<void>;
}

async function waitReady(url: string, proc: ManagedProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitInfo) {
      throw new Error(
        `konductor manager exited (${JSON.stringify(proc.exitInfo)}) before it was ready; log ${proc.logPath}:\n${logTail(proc.logPath)}`,
      );
    }
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      throw new Error(
        `konductor manager not ready after ${timeoutMs} ms; log ${proc.logPath}:\n${logTail(proc.logPath)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function installKonductor(
  cluster: ClusterHandle,
  opts: InstallOptions = {},
): Promise<KonductorInstall> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`[devcluster] ${l}\n`));
  await installCrds(cluster.client);

  const scope = opts.namespace;
  const instance = `${scope ? `konductor-${scope}` : 'konductor'}${opts.instanceSuffix ? `-${opts.instanceSuffix}` : ''}`;
  const webhookName = scope ? `konductor-devcluster-${scope}` : WEBHOOK_CONFIGURATION_NAME;
  const certDir = join(cluster.dataDir, instance, 'certs');
  await mkdir(certDir, { recursive: true });
  const selfManaged = opts.certMode === 'self-managed';
  let caPem = '';
  if (!selfManaged) {
    const ca = await createCa('konductor-devcluster-webhook-ca');
    const serving = await signCertificate(ca, {
      commonName: 'konductor',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', ...(opts.servingIpAddresses ?? [])],
      usage: 'server',
    });
    await writeFile(join(certDir, 'tls.crt'), serving.certPem);
    await writeFile(join(certDir, 'tls.key'), serving.keyPem, { mode: 0o600 });
    await writeFile(join(certDir, 'ca.crt'), ca.certPem);
    caPem = ca.certPem;
  }

  // The manager's own identity (ServiceAccount + the chart's RBAC), never the admin's certificate.
  const serviceNamespace = scope ?? 'default';
  const identity = await ensureManagerIdentity(cluster.client, {
    name: `${instance}-manager`,
    namespace: serviceNamespace,
    serviceAccount: MANAGER_SERVICE_ACCOUNT,
    kubeconfigPath: join(cluster.dataDir, instance, 'manager.kubeconfig'),
    adminKubeconfigPath: cluster.kubeconfigPath,
    ...(selfManaged
      ? { selfManaged: { webhookConfigName: webhookName, secretName: selfManagedSecret(opts.managerArgs) } }
      : {}),
  });

  const [admissionPort, agentPort, healthPort, metricsPort] = await getFreePorts(4);
  const url = `https://127.0.0.1:${agentPort}`;
  const admissionUrl = `https://127.0.0.1:${admissionPort}`;
  const healthUrl = `http://127.0.0.1:${healthPort}`;
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const entry = opts.managerProcess?.entry ?? join(REPO_ROOT, 'cmd', 'konductor.ts');
  const logPath = join(cluster.dataDir, 'logs', `${instance}-manager.log`);
  await mkdir(dirname(logPath), { recursive: true });
  if (!existsSync(entry)) throw new Error(`manager entry point missing: ${entry}`);
  const args = [
    // The same V8 limits as the image (Dockerfile.webhook): a small young generation and a capped old space
    // keep RSS near the live heap instead of letting garbage pile up (docs/benchmarks.md).
    ...(opts.managerProcess?.nodeArgs ??
      (process.env.KONDUCTOR_MANAGER_NODE_ARGS ?? MANAGER_NODE_ARGS).split(' ').filter(Boolean)),
    entry,
    `--kubeconfig=${identity.kubeconfigPath}`,
    `--webhook-port=${admissionPort}`,
    `--agent-port=${agentPort}`,
    '--bind-address=127.0.0.1',
    `--cert-dir=${certDir}`,
    `--agent-url=${url}`,
    `--health-probe-bind-address=127.0.0.1:${healthPort}`,
    `--metrics-bind-address=127.0.0.1:${metricsPort}`,
    `--log-level=${process.env.KONDUCTOR_LOG_LEVEL ?? opts.logLevel ?? 'info'}`,
    `--service-namespace=${serviceNamespace}`,
    ...(scope ? [`--namespace=${scope}`] : []),
    ...(selfManaged ? ['--cert-mode=self-managed', `--webhook-config-name=${webhookName}`] : []),
    ...(opts.managerArgs ?? []),
  ];
  let current: ManagedProcess | undefined;
  let uninstalled = false;
  let restarts = 0;
  let consecutive = 0;
  const supervise = opts.supervise !== false;

  const spawnManager = async () => {
    const [bin, ...argv] = [...(opts.managerProcess?.commandPrefix ?? []), process.execPath, ...args];
    const proc = await cluster.processes.spawn(`${instance}-manager`, bin as string, argv, logPath, {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_OPTIONS: '',
      ...opts.managerProcess?.env,
    });
    current = proc;
    const startedAt = Date.now();
    if (supervise) void proc.exited.then((info) => onManagerExit(proc, info, startedAt));
    return proc;
  };
  const startManager = async () => {
    await waitReady(`${healthUrl}/readyz`, await spawnManager(), 60_000);
  };
  // The supervisor: an exit nobody asked for (crash, OOM kill, SIGKILL) restarts the manager after a backoff.
  const onManagerExit = (
    proc: ManagedProcess,
    info: { code: number | null; signal: string | null },
    startedAt: number,
  ) => {
    if (proc.expectedExit || uninstalled || cluster.processes.isStopping || current !== proc) return;
    if (Date.now() - startedAt >= STABLE_RUN_MS) consecutive = 0;
    const delay = restartDelayMs(consecutive++);
    log(
      `konductor manager (pid ${proc.pid}) exited unexpectedly (code ${info.code}, signal ${info.signal}); ` +
        `restarting it in ${delay / 1000} s (restart ${restarts + 1}; log ${logPath})`,
    );
    setTimeout(() => {
      if (uninstalled || cluster.processes.isStopping || current !== proc) return;
      restarts++;
      spawnManager().then(
        (next) =>
          waitReady(`${healthUrl}/readyz`, next, 60_000).then(
            () => log(`konductor manager restarted (pid ${next.pid}) and ready`),
            (err: Error) =>
              log(`konductor manager restart ${restarts} not ready: ${err.message.split('\n')[0]}`),
          ),
        (err: Error) => log(`konductor manager restart failed: ${err.message}`),
      );
    }, delay).unref();
  };
  const stopManager = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const proc = current;
    if (!proc || proc.exitInfo) return;
    proc.expectedExit = true;
    proc.child.kill(signal);
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), 10_000);
    await proc.exited;
    clearTimeout(timer);
  };

  const namespaces = {
    excludedNamespaces: ['kube-system', 'kube-node-lease'],
    ...(scope ? { onlyNamespaces: [scope] } : {}),
  };
  const applyWebhookConfig = async (caBundle?: string) => {
    const webhookConfig = buildWebhookConfiguration({
      name: webhookName,
      clientConfig: { url: `${admissionUrl}/mutate`, ...(caBundle ? { caBundle } : {}) },
      ...namespaces,
    });
    await cluster.client.apply(
      `${ADMISSIONREGISTRATION}/mutatingwebhookconfigurations/${webhookName}`,
      webhookConfig,
      'konductor-devcluster',
    );
  };
  // The chart's ValidatingAdmissionPolicies, for the same namespaces as the webhook (docs/security.md).
  const policies = buildAdmissionPolicies({
    namePrefix: webhookName,
    agentImage: agentImageOf(opts.managerArgs),
    managerUsername: identity.username,
    namespaceSelector: webhookNamespaceSelector(namespaces),
    labels: { 'app.kubernetes.io/name': 'konductor' },
  }) as { kind: string; metadata: { name: string } }[];
  const policyPath = (p: { kind: string; metadata: { name: string } }) =>
    `${ADMISSIONREGISTRATION}/${p.kind === 'ValidatingAdmissionPolicy' ? 'validatingadmissionpolicies' : 'validatingadmissionpolicybindings'}/${p.metadata.name}`;
  for (const p of policies) await cluster.client.apply(policyPath(p), p, 'konductor-devcluster');

  // self-managed: the configuration exists (without caBundle) when the manager starts, which sets it.
  if (selfManaged) await applyWebhookConfig();
  await startManager();
  log(`konductor manager ready: admission ${admissionUrl}, agent API ${url} (log ${logPath})`);
  if (selfManaged) caPem = readFileSync(join(certDir, 'ca.crt'), 'utf8');
  else await applyWebhookConfig(Buffer.from(caPem).toString('base64'));

  return {
    url,
    admissionUrl,
    healthUrl,
    metricsUrl,
    certDir,
    caPem,
    webhookConfigurationName: webhookName,
    managerUsername: identity.username,
    managerKubeconfigPath: identity.kubeconfigPath,
    manager: () => current,
    startManager,
    stopManager,
    restarts: () => restarts,
    uninstall: async () => {
      uninstalled = true;
      await cluster.client
        .delete(`${ADMISSIONREGISTRATION}/mutatingwebhookconfigurations/${webhookName}`)
        .catch(() => undefined);
      for (const p of policies) await cluster.client.delete(policyPath(p)).catch(() => undefined);
      await stopManager('SIGTERM');
      await identity.remove();
    },
  };
}

/** The value of a `--flag=value` in extra manager args, if given. */
function flagValue(args: string[] | undefined, flag: string): string | undefined {
  const prefix = `--${flag}=`;
  return args?.findLast((a) => a.startsWith(prefix))?.slice(prefix.length);
}

/** The agent image the manager injects (its --agent-image, or the default). */
function agentImageOf(managerArgs: string[] | undefined): string {
  return flagValue(managerArgs, 'agent-image') ?? DEFAULT_AGENT_IMAGE;
}

/** The Secret of self-managed certificates (the manager's --cert-secret, or its default). */
function selfManagedSecret(managerArgs: string[] | undefined): string {
  return flagValue(managerArgs, 'cert-secret') ?? 'konductor-webhook-certs';
}
