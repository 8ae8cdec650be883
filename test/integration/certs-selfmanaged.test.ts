/**
 * Self-managed certificates end to end on the devcluster (issue 5, DESIGN §6): the manager, started with
 * `--cert-mode=self-managed`, creates its certificate Secret, sets the webhook configuration's caBundle to
 * its CA, and the API server calls the webhook over TLS; with a 20 s certificate (CA 40 s) the serving
 * certificate and the CA rotate while annotated pods keep being admitted (dry-run), and none fails.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isNotFound } from '../../api/kubeClient.ts';
import { webhookConfigurationPath } from '../../certs/caBundle.ts';
import { type CertMaterial, serialOf, trustBundle } from '../../certs/certMaterial.ts';
import { materialFromSecret, type TlsSecret } from '../../certs/secretStore.ts';
import { installKonductor, type KonductorInstall } from '../../devcluster/konductor.ts';
import { ProcessGroup } from '../../devcluster/processes.ts';
import { logTail } from '../../devcluster/processInfo.ts';
import { clusterInfo } from '../helpers/cluster.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('certs-sm');
const client = ns.client;
const SECRET = 'konductor-test-webhook-certs';
const VALIDITY = '20s';

let install: KonductorInstall;
let processes: ProcessGroup | undefined;

interface WebhookConfig {
  webhooks: { name: string; clientConfig: { caBundle?: string } }[];
}
interface PodLike {
  metadata: { annotations?: Record<string, string> };
  spec: {
    initContainers?: { name: string; env?: { name: string; value?: string }[] }[];
  };
}

const secretPath = () => `/api/v1/namespaces/${ns.name}/secrets/${SECRET}`;

async function readSecret(): Promise<{ secret: TlsSecret; material: CertMaterial } | undefined> {
  try {
    const secret = await client.get<TlsSecret>(secretPath());
    return { secret, material: materialFromSecret(secret) };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

async function caBundles(): Promise<string[]> {
  const cfg = await client.get<WebhookConfig>(webhookConfigurationPath(install.webhookConfigurationName));
  return cfg.webhooks.map((w) => Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8'));
}

/** Serial of the certificate the manager serves now (a fresh TLS handshake, verified against `ca`). */
function servedSerial(ca: string): Promise<string> {
  const url = new URL(install.url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port), ca }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

/** Creates an annotated pod with dryRun=All: the API server runs admission, i.e. calls our webhook. */
async function admitAnnotatedPod(): Promise<PodLike> {
  return client.create<PodLike>(
    `/api/v1/namespaces/${ns.name}/pods`,
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `certs-${randomBytes(4).toString('hex')}`,
        annotations: { 'konductor.io/semaphore': 'x' },
      },
      spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'busybox', command: ['true'] }] },
    },
    { dryRun: 'All' },
  );
}

function injected(pod: PodLike): boolean {
  return (pod.spec.initContainers ?? []).some((c) => c.name === 'konductor-wait');
}

function managerLog(): string {
  const proc = install?.manager();
  return proc ? `manager log ${proc.logPath}:\n${logTail(proc.logPath)}` : '';
}

beforeAll(async () => {
  const info = clusterInfo();
  processes = new ProcessGroup({
    id: `konductor-${ns.name}-${randomBytes(2).toString('hex')}`,
    dataDir: info.dataDir,
    keepData: true,
  });
  install = await installKonductor(
    { client, kubeconfigPath: info.kubeconfigPath, dataDir: info.dataDir, processes },
    {
      namespace: ns.name,
      certMode: 'self-managed',
      managerArgs: [`--cert-secret=${SECRET}`, `--cert-validity=${VALIDITY}`],
      log: () => undefined,
    },
  );
  // The ServiceAccount admission plugin rejects pods until the namespace's default ServiceAccount exists.
  await waitFor(() => client.get(`/api/v1/namespaces/${ns.name}/serviceaccounts/default`), {
    message: 'the default ServiceAccount',
  });
});

afterAll(async () => {
  await install?.uninstall();
  await processes?.stop();
});

describe('self-managed certificates', () => {
  it('creates the Secret, sets caBundle to its CA, and the API server calls the webhook over TLS', async () => {
    const stored = await waitFor(readSecret, { message: `Secret ${SECRET}` });
    expect(stored.secret.type).toBe('kubernetes.io/tls');
    for (const key of ['tls.crt', 'tls.key', 'ca.crt', 'ca.key'])
      expect(stored.secret.data?.[key]).toBeTruthy();

    // The caBundle of every webhook is the Secret's trust bundle (re-read together: it may rotate meanwhile).
    await waitFor(
      async () => {
        const s = await readSecret();
        const bundles = await caBundles();
        return s && bundles.length === 2 && bundles.every((b) => b === trustBundle(s.material));
      },
      { message: 'caBundle = the Secret CA', timeoutMs: 20_000 },
    );
    expect(install.caPem).toContain('BEGIN CERTIFICATE');

    // The API server calls the webhook: an annotated pod comes back with the injected containers, and the
    // agent is told to trust the CA of the Secret.
    const pod = await admitAnnotatedPod();
    expect(injected(pod), managerLog()).toBe(true);
    const caEnv = pod.spec.initContainers
      ?.find((c) => c.name === 'konductor-wait')
      ?.env?.find((e) => e.name === 'KONDUCTOR_CA_BUNDLE')?.value;
    const now = await readSecret();
    expect(caEnv).toContain((now?.material.caCert ?? 'missing').trim());

    // What the manager serves is the Secret's serving certificate, verified against its CA.
    await waitFor(
      async () => {
        const s = await readSecret();
        if (!s) return false;
        return (await servedSerial(trustBundle(s.material))) === serialOf(s.material.tlsCert);
      },
      { message: 'the served certificate to be the Secret one', timeoutMs: 20_000 },
    );
  });

  it('rotates the serving certificate and the CA without a failed admission', {
    timeout: 150_000,
  }, async () => {
    const first = await waitFor(readSecret, { message: `Secret ${SECRET}` });
    const firstCa = first.material.caCert;
    const servingSerials = new Set<string>();
    const servedSerials = new Set<string>();
    const caSerials = new Set<string>();
    let sawRollover = false; // a Secret with previous-ca.crt
    let sawRolloverEnd = false; // ... then one without it again
    let sawBothCasInCaBundle = false;
    let admitted = 0;
    const failures: string[] = [];
    let stop = false;
    const deadline = Date.now() + 120_000;

    const done = () =>
      servingSerials.size >= 4 && caSerials.size >= 2 && sawRolloverEnd && servedSerials.size >= 3;

    // Two clients admitting annotated pods back to back, for the whole rotation.
    const admitter = async () => {
      while (!stop) {
        try {
          const pod = await admitAnnotatedPod();
          if (injected(pod)) admitted++;
          else failures.push('admitted without injection');
        } catch (err) {
          failures.push(`${new Date().toISOString()} ${(err as Error).message}`);
          if (failures.length > 20) stop = true; // enough to tell what broke
        }
      }
    };
    // Meanwhile: what the Secret holds, what the webhook configuration trusts, what the manager serves.
    const observer = async () => {
      while (!stop) {
        const s = await readSecret().catch(() => undefined);
        if (s) {
          const serial = serialOf(s.material.tlsCert);
          if (serial) servingSerials.add(serial);
          const ca = serialOf(s.material.caCert);
          if (ca) caSerials.add(ca);
          if (s.material.previousCaCert) sawRollover = true;
          else if (sawRollover) sawRolloverEnd = true;
          const bundles = await caBundles().catch(() => []);
          if (bundles.some((b) => b.split('BEGIN CERTIFICATE').length - 1 === 2)) sawBothCasInCaBundle = true;
          const served = await servedSerial(trustBundle(s.material)).catch(() => undefined);
          if (served) servedSerials.add(served);
        }
        if (done() || Date.now() > deadline) stop = true;
        else await new Promise((r) => setTimeout(r, 250));
      }
    };
    await Promise.all([admitter(), admitter(), observer()]);

    const summary = JSON.stringify({
      admitted,
      failures: failures.slice(0, 5),
      servingSerials: servingSerials.size,
      servedSerials: servedSerials.size,
      caSerials: caSerials.size,
      sawRollover,
      sawRolloverEnd,
      sawBothCasInCaBundle,
    });
    process.stderr.write(`[certs-selfmanaged] ${summary}\n`);
    expect(failures, `${summary}\n${managerLog()}`).toEqual([]);
    expect(admitted).toBeGreaterThan(50);
    // The serving certificate rotated (several times), and the manager served the new ones.
    expect(servingSerials.size, summary).toBeGreaterThanOrEqual(4);
    expect(servedSerials.size, summary).toBeGreaterThanOrEqual(3);
    // The CA rotated, both CAs were trusted during the rollover, and the old one left afterwards.
    expect(caSerials.size, summary).toBeGreaterThanOrEqual(2);
    expect(sawBothCasInCaBundle, summary).toBe(true);
    expect(sawRolloverEnd, summary).toBe(true);
    const last = await readSecret();
    expect(last?.material.caCert).not.toBe(firstCa);
    expect(failures.length).toBe(0);
  });
});
