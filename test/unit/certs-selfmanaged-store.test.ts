/**
 * The pure parts of self-managed certificate storage and the cert dir: the Secret <-> material mapping,
 * the serving SANs, generating and rolling over real (small) certificates, atomic cert dir writes.
 * Everything that talks to the API server (create-if-absent races, 409s, the caBundle) is tested against the
 * real kube-apiserver in test/integration/certs-store.test.ts.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { caBundleReader, writeCertDir } from '../../certs/certDir.ts';
import { type CertMaterial, inspectMaterial, serialOf, trustBundle } from '../../certs/certMaterial.ts';
import { planRotation, rotationPolicy } from '../../certs/rotationPlan.ts';
import { materialFromSecret, secretFromMaterial, type TlsSecret } from '../../certs/secretStore.ts';
import { applyActions, servingSans } from '../../certs/selfManaged.ts';

const V = 60_000;
const sans = servingSans({
  serviceName: 'konductor',
  serviceNamespace: 'ks',
  agentUrl: 'https://127.0.0.1:9443',
});

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'konductor-certs-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

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

describe('caBundleReader', () => {
  it('reads ca.crt again at most once per maxAgeMs, and answers empty while it is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'konductor-ca-reader-'));
    try {
      let clock = 0;
      const read = caBundleReader(dir, 1000, () => clock);
      expect(read()).toBe('');
      await writeFile(join(dir, 'ca.crt'), 'CA-1');
      clock = 1000;
      expect(read()).toBe(''); // not yet: read at 0
      clock = 1001;
      expect(read()).toBe('CA-1');
      await writeFile(join(dir, 'ca.crt'), 'CA-2');
      clock = 1500;
      expect(read()).toBe('CA-1');
      clock = 2002;
      expect(read()).toBe('CA-2');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
