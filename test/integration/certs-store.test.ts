/**
 * The I/O edges of self-managed certificates against the devcluster's real kube-apiserver: the Secret's
 * create-if-absent between racing writers (a real AlreadyExists), resourceVersion-preconditioned updates (a
 * real 409, the loser adopts the winner's certificates), replicas of `startSelfManagedCerts` racing to create
 * and to rotate, and the caBundle of a real MutatingWebhookConfiguration (rollover, cleanup, conflicts).
 *
 * The webhook configurations made here intercept nothing: their rules name a resource of an API group
 * that does not exist, their selectors need a label nothing has, and they are deleted after each test.
 * Races are made deterministic with the code's test seams (`beforeSecretWrite`, `beforeReplace`): every
 * racer has read before any writes, so the conflicts are the API server's, not luck.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { isConflict, isNotFound, type KubeClient } from '../../api/kubeClient.ts';
import { ensureCaBundle, webhookConfigurationPath } from '../../certs/caBundle.ts';
import { type CertMaterial, inspectMaterial, serialOf } from '../../certs/certMaterial.ts';
import { CertSecretStore, materialFromSecret, type TlsSecret } from '../../certs/secretStore.ts';
import { type CertLogger, servingSans, startSelfManagedCerts } from '../../certs/selfManaged.ts';
import { useAdminClient } from '../helpers/cluster.ts';
import { testNamespace } from '../helpers/namespace.ts';

const ns = testNamespace('certs-store');
const admin = ns.client;
/** One connection per replica, as separate manager pods would have. */
const replicaClients = [useAdminClient(), useAdminClient(), useAdminClient()];
const clientOf = (i: number): KubeClient => replicaClients[i % replicaClients.length] ?? admin;

const V = 60_000;
const KEY_BITS = 1024;
const sans = servingSans({
  serviceName: 'konductor',
  serviceNamespace: ns.name,
  agentUrl: 'https://127.0.0.1:9443',
});
const WEBHOOK_CONFIGS = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';
const NEVER_LABEL = 'konductor.io/certs-store-test-never';

interface WebhookConfig {
  metadata: { name: string; resourceVersion?: string; generation?: number; labels?: Record<string, string> };
  webhooks: { name: string; clientConfig: { caBundle?: string; url?: string } }[];
}

const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
const secretPath = (name: string) => `/api/v1/namespaces/${ns.name}/secrets/${name}`;

const createdConfigs: string[] = [];
afterEach(async () => {
  for (const name of createdConfigs.splice(0)) {
    await admin.delete(webhookConfigurationPath(name)).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
  }
});

/** A unique name for a webhook configuration, deleted after the test (whether or not it gets created). */
function webhookConfigName(): string {
  const name = unique('kt-certs-store');
  createdConfigs.push(name);
  return name;
}

/** A MutatingWebhookConfiguration with two webhooks that never match anything (see the file comment). */
function createWebhookConfig(name: string): Promise<WebhookConfig> {
  const never = { matchExpressions: [{ key: NEVER_LABEL, operator: 'Exists' }] };
  return admin.create<WebhookConfig>(WEBHOOK_CONFIGS, {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: ['pods', 'workloads'].map((w) => ({
      name: `${w}.certs-store.konductor.io`,
      clientConfig: { url: 'https://127.0.0.1:1/never-called' },
      rules: [
        {
          apiGroups: ['certs-store-test.konductor.io'],
          apiVersions: ['v1'],
          operations: ['CREATE'],
          resources: ['nothings'],
          scope: '*',
        },
      ],
      namespaceSelector: never,
      objectSelector: never,
      failurePolicy: 'Ignore',
      sideEffects: 'None',
      admissionReviewVersions: ['v1'],
      timeoutSeconds: 1,
    })),
  });
}

const getConfig = (name: string) => admin.get<WebhookConfig>(webhookConfigurationPath(name));

async function caBundlesOf(name: string): Promise<string[]> {
  const cfg = await getConfig(name);
  return cfg.webhooks.map((w) => Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8'));
}

async function storedSecret(name: string): Promise<{ secret: TlsSecret; material: CertMaterial }> {
  const secret = await admin.get<TlsSecret>(secretPath(name));
  return { secret, material: materialFromSecret(secret) };
}

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'konductor-certs-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A logger that keeps the messages, to see which path a replica took. */
function recordingLogger(): CertLogger & { messages: string[] } {
  const messages: string[] = [];
  return {
    messages,
    info: (_obj, msg) => messages.push(msg ?? ''),
    warn: (_obj, msg) => messages.push(msg ?? ''),
  };
}

/** Resolves every caller once `n` callers have arrived. */
function barrier(n: number): () => Promise<void> {
  let arrived = 0;
  let release!: () => void;
  const all = new Promise<void>((r) => {
    release = r;
  });
  return () => {
    if (++arrived >= n) release();
    return all;
  };
}

interface ReplicaOptions {
  client: KubeClient;
  secretName: string;
  webhookConfigName: string;
  certDir: string;
  clock: { t: number };
  logger?: CertLogger;
  beforeSecretWrite?: (write: 'create' | 'update') => void | Promise<void>;
}

function replica(o: ReplicaOptions) {
  return startSelfManagedCerts({
    client: o.client,
    namespace: ns.name,
    secretName: o.secretName,
    webhookConfigName: o.webhookConfigName,
    certDir: o.certDir,
    ...sans,
    servingValidityMs: V,
    pollIntervalMs: 3_600_000, // syncs are driven by the test
    keyBits: KEY_BITS,
    now: () => o.clock.t,
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.beforeSecretWrite ? { beforeSecretWrite: o.beforeSecretWrite } : {}),
  });
}

describe('certificate Secret store on the real API server', () => {
  it('concurrent create-if-absent: one POST wins, every store gets the winner’s material', async () => {
    const name = unique('certs-create');
    const candidates: CertMaterial[] = [0, 1, 2, 3].map((i) => ({
      caCert: `ca-${i}`,
      caKey: `ca-key-${i}`,
      tlsCert: `tls-${i}`,
      tlsKey: `tls-key-${i}`,
      caRotatedAt: 1_700_000_000_000 + i * 1000,
    }));
    const results = await Promise.all(
      candidates.map((m, i) => new CertSecretStore(clientOf(i), ns.name, name).createIfAbsent(m)),
    );
    const winners = results.filter((r) => r.created);
    expect(winners).toHaveLength(1);
    const winner = candidates[results.findIndex((r) => r.created)];
    const { secret, material } = await storedSecret(name);
    expect(material).toEqual(winner);
    for (const r of results) {
      expect(r.stored.material).toEqual(winner);
      expect(r.stored.resourceVersion).toBe(secret.metadata.resourceVersion);
    }
  });

  it('an update on a stale resourceVersion gets a real 409; the loser re-reads the winner’s', async () => {
    const name = unique('certs-update');
    const a = new CertSecretStore(clientOf(0), ns.name, name);
    const b = new CertSecretStore(clientOf(1), ns.name, name);
    await a.createIfAbsent({ caCert: 'ca-0', caKey: 'ca-key-0', tlsCert: 'tls-0', tlsKey: 'tls-key-0' });
    // Someone else's annotation on the Secret: an update keeps it.
    const raw = await admin.get<TlsSecret>(secretPath(name));
    raw.metadata.annotations = { ...raw.metadata.annotations, 'example.com/owner': 'ops' };
    await admin.replace(secretPath(name), raw);

    const [readA, readB] = await Promise.all([a.read(), b.read()]);
    if (!readA || !readB) throw new Error('the Secret was just created');
    expect(readA.resourceVersion).toBe(readB.resourceVersion);
    const won = await a.update(readA, { ...readA.material, tlsCert: 'tls-a', tlsKey: 'tls-key-a' });
    const lost = await b.update(readB, { ...readB.material, tlsCert: 'tls-b', tlsKey: 'tls-key-b' }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isConflict(lost)).toBe(true);
    const adopted = await b.read();
    expect(adopted?.material.tlsCert).toBe('tls-a');
    expect(adopted?.resourceVersion).toBe(won.resourceVersion);
    expect((await storedSecret(name)).secret.metadata.annotations?.['example.com/owner']).toBe('ops');
  });

  it('racing replicas agree on one CA: the first create wins, the others adopt it', async () => {
    const secretName = unique('certs-race');
    const configName = webhookConfigName();
    await createWebhookConfig(configName);
    const clock = { t: Date.now() };
    const certDirs = await Promise.all([tempDir(), tempDir(), tempDir()]);
    const loggers = certDirs.map(() => recordingLogger());
    // Every replica has read "no Secret" and generated its own CA before any of them POSTs.
    const allGenerated = barrier(certDirs.length);
    const replicas = await Promise.all(
      certDirs.map((certDir, i) =>
        replica({
          client: clientOf(i),
          secretName,
          webhookConfigName: configName,
          certDir,
          clock,
          logger: loggers[i],
          beforeSecretWrite: (w) => (w === 'create' ? allGenerated() : undefined),
        }),
      ),
    );
    try {
      const said = loggers.map((l) => l.messages);
      const count = (msg: string) => said.filter((m) => m.includes(msg)).length;
      expect(count('created the certificate Secret')).toBe(1);
      expect(count('adopted the certificate Secret of another replica')).toBe(2);

      const stored = (await storedSecret(secretName)).material;
      expect(inspectMaterial(stored).serving?.signedBy).toBe('current');
      for (const d of certDirs) {
        expect(await readFile(join(d, 'tls.crt'), 'utf8')).toBe(stored.tlsCert);
        expect(await readFile(join(d, 'tls.key'), 'utf8')).toBe(stored.tlsKey);
        expect(await readFile(join(d, 'ca.crt'), 'utf8')).toBe(stored.caCert);
      }
      // The three replicas set the caBundle concurrently too: one bundle, the winner's CA.
      expect(await caBundlesOf(configName)).toEqual([stored.caCert, stored.caCert]);
    } finally {
      for (const r of replicas) r.close();
    }
  });

  it('a replica that loses a rotation race adopts the winner’s certificates', async () => {
    const secretName = unique('certs-rotate');
    const configName = webhookConfigName();
    await createWebhookConfig(configName);
    const clock = { t: Date.now() };
    const [da, db] = await Promise.all([tempDir(), tempDir()]);
    const logB = recordingLogger();
    let aSerial: string | undefined;
    let raced = false;
    const a = await replica({
      client: clientOf(0),
      secretName,
      webhookConfigName: configName,
      certDir: da,
      clock,
    });
    const b = await replica({
      client: clientOf(1),
      secretName,
      webhookConfigName: configName,
      certDir: db,
      clock,
      logger: logB,
      // B has read the Secret and renewed; before its PUT, A rotates and stores first.
      beforeSecretWrite: async (w) => {
        if (w !== 'update' || raced) return;
        raced = true;
        await a.sync();
        aSerial = serialOf((await storedSecret(secretName)).material.tlsCert);
      },
    });
    try {
      const before = (await storedSecret(secretName)).material;
      clock.t += (2 / 3) * V + 1; // the serving certificate is due
      await b.sync();
      expect(raced).toBe(true);
      expect(logB.messages).toContain('another replica updated the certificate Secret first; adopting it');
      expect(logB.messages).not.toContain('rotated certificates');

      const after = (await storedSecret(secretName)).material;
      expect(aSerial).toBeDefined();
      expect(serialOf(after.tlsCert)).not.toBe(serialOf(before.tlsCert));
      expect(serialOf(after.tlsCert)).toBe(aSerial);
      expect(after.caCert).toBe(before.caCert); // a serving renewal reuses the CA
      expect(await readFile(join(db, 'tls.crt'), 'utf8')).toBe(after.tlsCert);
      expect(await readFile(join(da, 'tls.crt'), 'utf8')).toBe(after.tlsCert);
    } finally {
      a.close();
      b.close();
    }
  });

  it('keeps both CAs in caBundle during a CA rollover and drops the old one when it expires', async () => {
    const secretName = unique('certs-rollover');
    const configName = webhookConfigName();
    const clock = { t: Date.now() };
    const dir = await tempDir();
    const log = recordingLogger();
    // The webhook configuration appears after the manager started (Helm order): reported, then set.
    const r = await replica({
      client: clientOf(0),
      secretName,
      webhookConfigName: configName,
      certDir: dir,
      clock,
      logger: log,
    });
    try {
      expect(log.messages).toContain(
        'MutatingWebhookConfiguration not found; will set its caBundle once it exists',
      );
      await createWebhookConfig(configName);
      await r.sync();
      const m0 = (await storedSecret(secretName)).material;
      expect(await caBundlesOf(configName)).toEqual([m0.caCert, m0.caCert]);
      // Idempotent: a sync with nothing due writes neither the Secret nor the configuration.
      const secretRv = (await storedSecret(secretName)).secret.metadata.resourceVersion;
      const configRv = (await getConfig(configName)).metadata.resourceVersion;
      await r.sync();
      expect((await storedSecret(secretName)).secret.metadata.resourceVersion).toBe(secretRv);
      expect((await getConfig(configName)).metadata.resourceVersion).toBe(configRv);

      clock.t += (4 / 3) * V + 1; // CA due
      await r.sync();
      const m1 = (await storedSecret(secretName)).material;
      expect(m1.caCert).not.toBe(m0.caCert);
      expect(m1.previousCaCert).toBe(m0.caCert);
      expect(await caBundlesOf(configName)).toEqual([`${m1.caCert}${m0.caCert}`, `${m1.caCert}${m0.caCert}`]);
      expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(`${m1.caCert}${m0.caCert}`);

      clock.t = new X509Certificate(m0.caCert as string).validToDate.getTime() + 1;
      await r.sync();
      const m2 = (await storedSecret(secretName)).material;
      expect(m2.previousCaCert).toBeUndefined();
      expect(await caBundlesOf(configName)).toEqual([m2.caCert, m2.caCert]);
      expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(m2.caCert);
      expect(inspectMaterial(m2).serving?.signedBy).toBe('current');
    } finally {
      r.close();
    }
  });
});

describe('caBundle of a real MutatingWebhookConfiguration', () => {
  it('ensureCaBundle reports a missing configuration and retries after a real 409', async () => {
    const name = webhookConfigName();
    expect(await ensureCaBundle(admin, name, 'PEM-1')).toBe('missing');
    await createWebhookConfig(name);
    // Between ensureCaBundle's read and its PUT, someone else (e.g. `helm upgrade`) writes the object.
    let calls = 0;
    const someoneElseWrites = async () => {
      if (++calls > 1) return;
      const cfg = await getConfig(name);
      cfg.metadata.labels = { ...cfg.metadata.labels, 'example.com/touched': 'yes' };
      await admin.replace(webhookConfigurationPath(name), cfg);
    };
    expect(await ensureCaBundle(clientOf(0), name, 'PEM-1', 5, someoneElseWrites)).toBe('updated');
    expect(calls).toBe(2); // the first PUT got the 409, the second one (on a fresh read) went through
    expect(await caBundlesOf(name)).toEqual(['PEM-1', 'PEM-1']);
    expect((await getConfig(name)).metadata.labels?.['example.com/touched']).toBe('yes'); // not clobbered
    expect(await ensureCaBundle(clientOf(0), name, 'PEM-1', 5, someoneElseWrites)).toBe('unchanged');
    expect(calls).toBe(2);
  });

  it('concurrent writers all get their turn: every 409 is retried on a fresh read', async () => {
    const name = webhookConfigName();
    const created = await createWebhookConfig(name);
    const bundles = ['PEM-A', 'PEM-B', 'PEM-C', 'PEM-D'];
    // All writers read the same version before any of them PUTs: exactly one wins the first round.
    const allRead = barrier(bundles.length);
    const attempts = bundles.map(() => 0);
    const results = await Promise.all(
      bundles.map((pem, i) =>
        ensureCaBundle(clientOf(i), name, pem, bundles.length, () => {
          const attempt = (attempts[i] ?? 0) + 1;
          attempts[i] = attempt;
          return attempt === 1 ? allRead() : undefined;
        }),
      ),
    );
    expect(results).toEqual(bundles.map(() => 'updated'));
    const conflicts = attempts.reduce((sum, n) => sum + n - 1, 0);
    expect(conflicts).toBeGreaterThanOrEqual(bundles.length - 1);
    const cfg = await getConfig(name);
    expect(cfg.metadata.generation).toBe((created.metadata.generation ?? 1) + bundles.length); // 4 writes
    const final = await caBundlesOf(name);
    expect(bundles).toContain(final[0]);
    expect(final).toEqual([final[0], final[0]]);
  });
});
