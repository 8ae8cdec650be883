/**
 * `konductor`: the manager — controller, admission webhook and agent API in one process.
 * Thin: parses flags, wires the parts, serves health and metrics, stops gracefully on SIGTERM.
 */
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
import pino from 'pino';
import {
  DEFAULT_AGENT_IMAGE,
  DEFAULT_START_TIMEOUT,
  DEFAULT_WAIT_MODE,
  WAIT_MODES,
  type WaitMode,
} from '../api/constants.ts';
import { parseBoundedDuration, parseDuration } from '../api/duration.ts';
import { KubeClient } from '../api/kubeClient.ts';
import { connectKubeconfig } from '../api/kubeconfigSource.ts';
import type { Semaphore } from '../api/types.ts';
import { caBundleReader } from '../certs/certDir.ts';
import { servingSans, startSelfManagedCerts } from '../certs/selfManaged.ts';
import { agentApiRoutes } from '../controller/agentApi.ts';
import { AgentAuthenticator } from '../controller/agentAuth.ts';
import { primitiveKey } from '../controller/arbitration/podIndex.ts';
import { KonductorController } from '../controller/controller.ts';
import { createMetrics } from '../controller/metrics.ts';
import { startHttpsServer } from '../webhook/httpsServer.ts';
import { buildServer, mutateRoutes } from '../webhook/server.ts';
import { applyMemoryBudget, UNCONSTRAINED_AGENT_CONNECTIONS, watchHeapPressure } from './memoryBudget.ts';

const HELP = `konductor — Kubernetes synchronization primitives (manager: controller + webhook + agent API)

Usage: konductor [flags]

  --kubeconfig PATH                 kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --context NAME                    kubeconfig context (default: its current-context)
  --namespace NS                    watch one namespace only (default: all)
  --webhook-port N                  HTTPS port of admission, POST /mutate (default 9443)
  --agent-port N                    HTTPS port of the agent API, /v1/wait and /v1/release (default 9444);
                                    its own listener, so agents cannot starve admission
  --bind-address ADDR               address of both HTTPS servers (default 0.0.0.0)
  --max-admission-connections N     open connections on the webhook port at most (default 1024)
  --max-agent-connections N         open connections on the agent port at most, one per waiting pod (default:
                                    a quarter of the memory limit at 64 KiB each, e.g. 512 for 128Mi; 4096
                                    without a limit). Pods beyond it retry with backoff.
  --cert-dir DIR                    directory with tls.crt, tls.key and ca.crt
                                    (default /tmp/k8s-webhook-server/serving-certs)
  --cert-mode MODE                  cert-manager (default: the cert dir is filled by someone else) or
                                    self-managed (the manager's own CA in a Secret, rotated; docs/certificates.md)
  --cert-secret NAME                self-managed: the Secret of CA + serving certificate
                                    (default konductor-webhook-certs, in the service namespace)
  --webhook-config-name NAME        self-managed: MutatingWebhookConfiguration whose caBundle is set (default konductor)
  --cert-validity DURATION          self-managed: serving certificate validity, Go duration (default 8760h; CA: 2x)
  --cert-dns-names LIST             self-managed: extra DNS SANs, comma-separated (Service names are always in)
  --cert-ip-sans LIST               self-managed: IP SANs, comma-separated (--agent-url's host is always in)
  --agent-image IMAGE               image of the injected agent (default ${DEFAULT_AGENT_IMAGE})
  --agent-url URL                   agent API URL as pods reach it (default https://<service>.<ns>.svc:<agent-port>)
  --default-wait-mode MODE          how a pod without konductor.io/wait-mode waits: init-container (default) or
                                    scheduling-gate (unscheduled until granted; README "Wait modes")
  --default-start-timeout DURATION  konductor.io/start-timeout of a scheduling-gate pod that sets none (default ${DEFAULT_START_TIMEOUT})
  --service-name NAME               the manager's Service (default konductor)
  --service-namespace NS            its namespace (default $POD_NAMESPACE or konductor-system)
  --leader-elect                    elect a leader with a coordination.k8s.io Lease
  --leader-election-namespace NS    namespace of that Lease (default: service namespace)
  --log-level LEVEL                 debug, info, warn, error (default info)
  --metrics-bind-address ADDR       Prometheus /metrics (default :8080, 0 to disable)
  --health-probe-bind-address ADDR  /healthz and /readyz (default :8081, 0 to disable)
  --help, --version

Memory: with a container memory limit (KONDUCTOR_MEMORY_LIMIT in bytes, or the cgroup's), the manager restarts
node at start-up with V8's old space at 45% of it (unless --max-old-space-size is given) and caps agent
connections at a quarter of it (docs/benchmarks.md).
`;

function parseAddress(addr: string): { host: string; port: number } | undefined {
  if (addr === '0' || addr === '') return undefined;
  const m = /^(.*):(\d+)$/.exec(addr);
  if (!m) throw new Error(`invalid address "${addr}": expected [host]:port, e.g. :8080`);
  return { host: m[1] || '0.0.0.0', port: Number(m[2]) };
}

function portFlag(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new Error(`invalid --${flag} "${value}": expected a port`);
  return n;
}

function countFlag(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`invalid --${flag} "${value}": expected a count (0: no cap)`);
  return n;
}

function listen(server: Server, addr: { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(addr.port, addr.host, () => resolve());
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      namespace: { type: 'string' },
      'webhook-port': { type: 'string', default: '9443' },
      'agent-port': { type: 'string', default: '9444' },
      'max-admission-connections': { type: 'string', default: '1024' },
      'max-agent-connections': { type: 'string' },
      'bind-address': { type: 'string', default: '0.0.0.0' },
      'cert-dir': { type: 'string', default: '/tmp/k8s-webhook-server/serving-certs' },
      'cert-mode': { type: 'string', default: 'cert-manager' },
      'cert-secret': { type: 'string', default: 'konductor-webhook-certs' },
      'webhook-config-name': { type: 'string', default: 'konductor' },
      'cert-validity': { type: 'string', default: '8760h' },
      'cert-dns-names': { type: 'string', default: '' },
      'cert-ip-sans': { type: 'string', default: '' },
      'agent-image': { type: 'string', default: DEFAULT_AGENT_IMAGE },
      'agent-url': { type: 'string' },
      'default-wait-mode': { type: 'string', default: DEFAULT_WAIT_MODE },
      'default-start-timeout': { type: 'string', default: DEFAULT_START_TIMEOUT },
      'service-name': { type: 'string', default: 'konductor' },
      'service-namespace': { type: 'string', default: process.env.POD_NAMESPACE || 'konductor-system' },
      'leader-elect': { type: 'boolean', default: false },
      'leader-election-namespace': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'metrics-bind-address': { type: 'string', default: ':8080' },
      'health-probe-bind-address': { type: 'string', default: ':8081' },
      help: { type: 'boolean', default: false },
      version: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (values.version) {
    process.stdout.write('konductor 0.1.0\n');
    return;
  }
  // First: with a container memory limit and no heap limit given, this re-executes node with one.
  const budget = applyMemoryBudget();
  const log = pino({ level: values['log-level'], base: { component: 'konductor' } });
  const heap = getHeapStatistics();
  const maxAgentConnections = countFlag(
    values['max-agent-connections'] ?? String(budget?.maxAgentConnections ?? UNCONSTRAINED_AGENT_CONNECTIONS),
    'max-agent-connections',
  );
  log.info(
    {
      memoryLimitMiB: budget ? Math.round(budget.limitBytes / 1048576) : null,
      heapLimitMiB: Math.round(heap.heap_size_limit / 1048576),
      maxAgentConnections,
    },
    'memory budget',
  );
  watchHeapPressure((fields, msg) => log.warn(fields, msg), getHeapStatistics);
  const client = new KubeClient(
    await connectKubeconfig({
      kubeconfig: values.kubeconfig,
      context: values.context,
      preferInCluster: true,
    }),
  );
  const metrics = createMetrics();
  const identity = `${hostname()}_${process.pid}`;
  const serviceNs = values['service-namespace'];

  const controller = new KonductorController({
    client,
    logger: log.child({ part: 'controller' }),
    namespace: values.namespace,
    identity,
    leaderElect: values['leader-elect'],
    leaderElectionNamespace: values['leader-election-namespace'] ?? serviceNs,
    metrics,
  }).start();

  const certDir = values['cert-dir'];
  // --cert-mode: self-managed certificates are in the cert dir before the HTTPS server reads it.
  const certMode = values['cert-mode'];
  if (certMode !== 'cert-manager' && certMode !== 'self-managed') {
    throw new Error(`invalid --cert-mode "${certMode}": expected cert-manager or self-managed`);
  }
  if (certMode === 'self-managed') {
    const list = (v: string) => v.split(',').filter((x) => x.trim() !== '');
    await startSelfManagedCerts({
      client,
      namespace: serviceNs,
      secretName: values['cert-secret'],
      webhookConfigName: values['webhook-config-name'],
      certDir,
      servingValidityMs: parseDuration(values['cert-validity']),
      logger: log.child({ part: 'certs' }),
      ...servingSans({
        serviceName: values['service-name'],
        serviceNamespace: serviceNs,
        extraDnsNames: list(values['cert-dns-names']),
        extraIpAddresses: list(values['cert-ip-sans']),
        ...(values['agent-url'] ? { agentUrl: values['agent-url'] } : {}),
      }),
    });
  }
  const readCaBundle = caBundleReader(certDir);
  const webhookPort = portFlag(values['webhook-port'], 'webhook-port');
  const agentPort = portFlag(values['agent-port'], 'agent-port');
  if (webhookPort === agentPort && webhookPort !== 0) {
    throw new Error('--webhook-port and --agent-port must differ: admission has its own listener');
  }
  const defaultWaitMode = WAIT_MODES.find((m) => m === values['default-wait-mode']);
  if (defaultWaitMode === undefined) {
    throw new Error(
      `invalid --default-wait-mode "${values['default-wait-mode']}": expected ${WAIT_MODES.join(' or ')}`,
    );
  }
  const defaultStartTimeout = values['default-start-timeout'];
  if (!(parseBoundedDuration(defaultStartTimeout) > 0)) {
    throw new Error(`invalid --default-start-timeout "${defaultStartTimeout}": expected a positive duration`);
  }
  const injection = {
    defaultWaitMode: defaultWaitMode as WaitMode,
    defaultStartTimeout,
    agentImage: values['agent-image'],
    agentUrl: values['agent-url'] ?? `https://${values['service-name']}.${serviceNs}.svc:${agentPort}`,
    // The CA may rotate while we run: re-read it at most once a second (not on every admission).
    get caBundle(): string {
      return readCaBundle();
    },
  };
  // Two listeners with the same TLS identity: admission (the API server calls it; failurePolicy Fail makes
  // it the availability of every annotated pod) and the agent API (every waiting pod holds a stream).
  const admissionApp = buildServer({
    loggerInstance: log.child({ part: 'admission' }),
    httpsOptions: {},
    limits: { maxConnections: countFlag(values['max-admission-connections'], 'max-admission-connections') },
  });
  await admissionApp.register(mutateRoutes, {
    injection,
    primitiveExists: (kind, ns, name) => controller.primitiveExists(kind, ns, name),
    semaphorePermits: (ns, name) =>
      (controller.primitive(primitiveKey('Semaphore', ns, name)) as Semaphore | undefined)?.spec?.permits,
    now: Date.now,
    onReviewed: (response, seconds, problems) => metrics.admitted(response, seconds, problems),
  });
  const agentApp = buildServer({
    loggerInstance: log.child({ part: 'agent-api' }),
    httpsOptions: {},
    limits: { maxConnections: maxAgentConnections },
  });
  await agentApp.register(agentApiRoutes, {
    controller,
    authenticator: new AgentAuthenticator(client),
    metrics,
  });
  const host = values['bind-address'];
  const admission = await startHttpsServer({ app: admissionApp, certDir, port: webhookPort, host });
  const agentApi = await startHttpsServer({ app: agentApp, certDir, port: agentPort, host });
  log.info({ admission: admission.url, agentApi: agentApi.url }, 'webhook and agent API listening');

  const servers: Server[] = [];
  const healthAddr = parseAddress(values['health-probe-bind-address']);
  if (healthAddr) {
    const health = createServer((req, res) => {
      const ready = req.url === '/readyz' ? controller.hasSynced : true;
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ready ? 'ok\n' : 'informers not synced\n');
    });
    await listen(health, healthAddr);
    servers.push(health);
  }
  const metricsAddr = parseAddress(values['metrics-bind-address']);
  if (metricsAddr) {
    const m = createServer((req, res) => {
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      metrics.render().then(
        (body) => res.writeHead(200, { 'content-type': metrics.contentType }).end(body),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
    await listen(m, metricsAddr);
    servers.push(m);
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    await controller.stop();
    await Promise.all([admission.close(), agentApi.close()]);
    for (const s of servers) s.close();
    client.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`konductor: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
