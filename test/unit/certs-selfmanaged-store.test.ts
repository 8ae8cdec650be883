/**
 * The I/O edges of self-managed certificates against an in-memory API server (resourceVersion
 * preconditions, AlreadyExists, 409s): the Secret round trip, create-if-absent between racing replicas,
 * adopting another replica's rotation, the caBundle patch, the cert dir, with real (small) keys.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { KubeApiError, type KubeClient } from '../../api/kubeClient.ts';
import { ensureCaBundle, webhookConfigurationPath } from '../../certs/caBundle.ts';
import { writeCertDir } from '../../certs/certDir.ts';
import { type CertMaterial, inspectMaterial, serialOf, trustBundle } from '../../certs/certMaterial.ts';
import { planRotation, rotationPolicy } from '../../certs/rotationPlan.ts';
import { materialFromSecret, secretFromMaterial, type TlsSecret } from '../../certs/secretStore.ts';
import { applyActions, servingSans, startSelfManagedCerts } from '../../certs/selfManaged.ts';

interface Obj {
  metadata: { name: string; resourceVersion?: string };
  [k: string]: unknown;
}

/** Just enough of an API server: objects by path, resourceVersion preconditions, hooks to inject races. */
class FakeApi {
  readonly objects = new Map<string, Obj>();
  private rv = 1;
  writes = 0;
  /** Runs before a PUT is applied (e.g. to let "another replica" write first). */
  beforeReplace: ((path: string) => void | Promise<void>) | undefined;

  get<T>(path: string): Promise<T> {
    const o = this.objects.get(path);
    if (!o) return Promise.reject(new KubeApiError(404, 'NotFound', `${path} not found`));
    return Promise.resolve(structuredClone(o) as T);
  }
  create<T>(collection: string, body: Obj): Promise<T> {
    const path = `${collection}/${body.metadata.name}`;
    if (this.objects.has(path)) return Promise.reject(new KubeApiError(409, 'AlreadyExists', 'exists'));
    const o = structuredClone(body);
    o.metadata.resourceVersion = String(++this.rv);
    this.objects.set(path, o);
    this.writes++;
    return Promise.resolve(structuredClone(o) as T);
  }
  async replace<T>(path: string, body: Obj): Promise<T> {
    const hook = this.beforeReplace;
    this.beforeReplace = undefined;
    await hook?.(path);
    const cur = this.objects.get(path);
    if (!cur) throw new KubeApiError(404, 'NotFound', `${path} not found`);
    if (body.metadata.resourceVersion !== cur.metadata.resourceVersion)
      throw new KubeApiError(409, 'Conflict', 'the object has been modified');
    const o = structuredClone(body);
    o.metadata.resourceVersion = String(++this.rv);
    this.objects.set(path, o);
    this.writes++;
    return structuredClone(o) as T;
  }
  asClient(): KubeClient {
    return this as unknown as KubeClient;
  }
}

const SECRET_PATH = '/api/v1/namespaces/ks/secrets/konductor-webhook-certs';
const WEBHOOK = 'konductor';
const V = 60_000;
const sans = servingSans({
  serviceName: 'konductor',
  serviceNamespace: 'ks',
  agentUrl: 'https://127.0.0.1:9443',
});

function webhookConfig() {
  return {
    metadata: { name: WEBHOOK },
    webhooks: [
      { name: 'pods.konductor.io', clientConfig: { url: 'https://127.0.0.1/mutate' } },
      { name: 'workloads.konductor.io', clientConfig: { url: 'https://127.0.0.1/mutate' } },
    ],
  };
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

function caBundleOf(api: FakeApi): string[] {
  const cfg = api.objects.get(webhookConfigurationPath(WEBHOOK)) as unknown as ReturnType<
    typeof webhookConfig
  >;
  return cfg.webhooks.map((w) =>
    Buffer.from((w.clientConfig as { caBundle?: string }).caBundle ?? '', 'base64').toString(),
  );
}

function replica(api: FakeApi, certDir: string, clock: { t: number }) {
  return startSelfManagedCerts({
    client: api.asClient(),
    namespace: 'ks',
    secretName: 'konductor-webhook-certs',
    webhookConfigName: WEBHOOK,
    certDir,
    ...sans,
    servingValidityMs: V,
    pollIntervalMs: 3_600_000, // syncs are driven by the test
    keyBits: 1024,
    now: () => clock.t,
  });
}

describe('self-managed certificate storage', () => {
  it('round-trips material through the Secret', () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            caCert: fc.string({ minLength: 1 }),
            caKey: fc.string({ minLength: 1 }),
            previousCaCert: fc.string({ minLength: 1 }),
            previousCaKey: fc.string({ minLength: 1 }),
            tlsCert: fc.string({ minLength: 1 }),
            tlsKey: fc.string({ minLength: 1 }),
            caRotatedAt: fc.integer({ min: 0, max: 4_000_000_000_000 }),
          },
          { requiredKeys: [] },
        ),
        (m: CertMaterial) => {
          const secret = secretFromMaterial('s', 'ns', m);
          expect(secret.type).toBe('kubernetes.io/tls');
          expect(materialFromSecret(JSON.parse(JSON.stringify(secret)) as TlsSecret)).toEqual(m);
        },
      ),
    );
  });

  it('derives the serving SANs from the Service, the agent URL and the extra flags', () => {
    expect(
      servingSans({
        serviceName: 'konductor',
        serviceNamespace: 'ks',
        extraDnsNames: ['Webhook.Example.com', '10.0.0.1'],
        extraIpAddresses: ['::1'],
        agentUrl: 'https://[::1]:9443',
      }),
    ).toEqual({
      dnsNames: [
        'konductor.ks.svc',
        'konductor.ks.svc.cluster.local',
        'konductor.ks',
        'konductor',
        'webhook.example.com',
      ],
      ipAddresses: ['10.0.0.1', '::1'],
    });
  });

  it('generates, inspects and rolls over real certificates', async () => {
    const policy = rotationPolicy(V, sans.dnsNames, sans.ipAddresses);
    const t0 = Date.now();
    const first = await applyActions({}, planRotation({}, policy, t0).actions, policy, t0, 1024);
    const s0 = inspectMaterial(first);
    expect(s0.serving?.signedBy).toBe('current');
    expect(s0.serving?.ipAddresses).toEqual(['127.0.0.1']);
    expect(planRotation(s0, policy, t0).actions).toEqual([]);
    // node-forge encodes the CN as a PrintableString; Go (the API server) rejects other characters in it.
    const caCn = /CN=(.*)/.exec(new X509Certificate(first.caCert as string).subject)?.[1] ?? '';
    expect(caCn).toMatch(/^konductor-ca-[0-9]+$/);
    expect(caCn).toMatch(/^[A-Za-z0-9 '()+,./:=?-]+$/);
    const leaf = new X509Certificate(first.tlsCert as string);
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(leaf.checkHost('konductor.ks.svc')).toBe('konductor.ks.svc');

    // Past the CA's renewal time: a new CA, the old one kept; the serving certificate still the old one's.
    const t1 = t0 + (4 / 3) * V + 1;
    const p1 = planRotation(s0, policy, t1);
    const rolled = await applyActions(first, p1.actions, policy, t1, 1024);
    const s1 = inspectMaterial(rolled);
    expect(rolled.previousCaCert).toBe(first.caCert);
    expect(trustBundle(rolled)).toBe(`${rolled.caCert}${first.caCert}`);
    expect(s1.serving?.signedBy).toBe('previous');
    // After the switch delay the serving certificate moves to the new CA.
    const t2 = t1 + V / 3;
    const moved = await applyActions(rolled, planRotation(s1, policy, t2).actions, policy, t2, 1024);
    expect(inspectMaterial(moved).serving?.signedBy).toBe('current');
    expect(serialOf(moved.tlsCert)).not.toBe(serialOf(first.tlsCert));
    // A key that does not match its certificate makes the certificate unusable.
    expect(inspectMaterial({ ...moved, tlsKey: first.tlsKey }).serving).toBeUndefined();
    expect(inspectMaterial({ ...moved, caKey: first.caKey }).ca).toBeUndefined();
  });

  it('racing replicas agree on one CA: the first create wins, the others adopt it', async () => {
    const api = new FakeApi();
    api.objects.set(webhookConfigurationPath(WEBHOOK), webhookConfig());
    const clock = { t: Date.now() };
    const [d1, d2, d3] = await Promise.all([tempDir(), tempDir(), tempDir()]);
    const replicas = await Promise.all([
      replica(api, d1, clock),
      replica(api, d2, clock),
      replica(api, d3, clock),
    ]);
    try {
      const secret = api.objects.get(SECRET_PATH) as unknown as TlsSecret;
      const stored = materialFromSecret(secret);
      for (const d of [d1, d2, d3]) {
        expect(await readFile(join(d, 'tls.crt'), 'utf8')).toBe(stored.tlsCert);
        expect(await readFile(join(d, 'tls.key'), 'utf8')).toBe(stored.tlsKey);
        expect(await readFile(join(d, 'ca.crt'), 'utf8')).toBe(stored.caCert);
      }
      expect(caBundleOf(api)).toEqual([stored.caCert, stored.caCert]);
    } finally {
      for (const r of replicas) r.close();
    }
  });

  it('a replica that loses a rotation race adopts the winner’s certificates', async () => {
    const api = new FakeApi();
    api.objects.set(webhookConfigurationPath(WEBHOOK), webhookConfig());
    const clock = { t: Date.now() };
    const [da, db] = await Promise.all([tempDir(), tempDir()]);
    const a = await replica(api, da, clock);
    const b = await replica(api, db, clock);
    try {
      const before = materialFromSecret(api.objects.get(SECRET_PATH) as unknown as TlsSecret);
      clock.t += (2 / 3) * V + 1; // the serving certificate is due
      // B's PUT finds A's rotation already stored.
      let aSerial: string | undefined;
      api.beforeReplace = async () => {
        await a.sync();
        aSerial = serialOf(materialFromSecret(api.objects.get(SECRET_PATH) as unknown as TlsSecret).tlsCert);
      };
      await b.sync();
      expect(aSerial).toBeDefined();
      const after = materialFromSecret(api.objects.get(SECRET_PATH) as unknown as TlsSecret);
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
    const api = new FakeApi();
    const clock = { t: Date.now() };
    const dir = await tempDir();
    // The webhook configuration appears after the manager started (Helm order): reported, then set.
    const r = await replica(api, dir, clock);
    try {
      api.objects.set(webhookConfigurationPath(WEBHOOK), webhookConfig());
      await r.sync();
      const m0 = materialFromSecret(api.objects.get(SECRET_PATH) as unknown as TlsSecret);
      expect(caBundleOf(api)).toEqual([m0.caCert, m0.caCert]);
      const writes = api.writes;
      await r.sync();
      expect(api.writes).toBe(writes); // idempotent

      clock.t += (4 / 3) * V + 1; // CA due
      await r.sync();
      const m1 = materialFromSecret(api.objects.get(SECRET_PATH) as unknown as TlsSecret);
      expect(m1.caCert).not.toBe(m0.caCert);
      expect(m1.previousCaCert).toBe(m0.caCert);
      expect(caBundleOf(api)[0]).toBe(`${m1.caCert}${m0.caCert}`);
      expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(`${m1.caCert}${m0.caCert}`);

      clock.t = new X509Certificate(m0.caCert as string).validToDate.getTime() + 1;
      await r.sync();
      const m2 = materialFromSecret(api.objects.get(SECRET_PATH) as unknown as TlsSecret);
      expect(m2.previousCaCert).toBeUndefined();
      expect(caBundleOf(api)[0]).toBe(m2.caCert);
      expect(inspectMaterial(m2).serving?.signedBy).toBe('current');
    } finally {
      r.close();
    }
  });

  it('ensureCaBundle retries on conflict and reports a missing configuration', async () => {
    const api = new FakeApi();
    expect(await ensureCaBundle(api.asClient(), WEBHOOK, 'PEM')).toBe('missing');
    api.objects.set(webhookConfigurationPath(WEBHOOK), webhookConfig());
    api.beforeReplace = (path) => {
      const o = api.objects.get(path) as Obj;
      o.metadata.resourceVersion = 'changed-by-someone-else';
    };
    expect(await ensureCaBundle(api.asClient(), WEBHOOK, 'PEM')).toBe('updated');
    expect(caBundleOf(api)).toEqual(['PEM', 'PEM']);
    expect(await ensureCaBundle(api.asClient(), WEBHOOK, 'PEM')).toBe('unchanged');
  });

  it('writes the cert dir atomically and only what changed', async () => {
    const dir = await tempDir();
    expect(await writeCertDir(dir, { tlsCert: 'C1', tlsKey: 'K1', caBundle: 'CA' })).toBe(true);
    expect(await writeCertDir(dir, { tlsCert: 'C1', tlsKey: 'K1', caBundle: 'CA' })).toBe(false);
    expect(await writeCertDir(dir, { tlsCert: 'C2', tlsKey: 'K2', caBundle: 'CA' })).toBe(true);
    expect(await readFile(join(dir, 'tls.crt'), 'utf8')).toBe('C2');
    expect(await readFile(join(dir, 'tls.key'), 'utf8')).toBe('K2');
    const { readdir, stat } = await import('node:fs/promises');
    expect((await readdir(dir)).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    expect((await stat(join(dir, 'tls.key'))).mode & 0o777).toBe(0o600);
  });
});
