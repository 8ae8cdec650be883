/**
 * The one certificate builder (certs/certificateBuilder.ts) as the devcluster's PKI uses it: Kubernetes client
 * certificates (O=system:masters, clientAuth, no SAN), serving certificates with IP SANs, both usages.
 * (certs-generate.test.ts covers the manager's CA and serving certificate.)
 */
import { X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { type CertificateAndKey, issueCertificate } from '../../certs/certificateBuilder.ts';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
let ca: CertificateAndKey;

beforeAll(async () => {
  ca = await issueCertificate({ commonName: 'cluster-ca', isCA: true, validityDays: 10 });
});

describe('issueCertificate', () => {
  it('a client certificate: organizations in the subject, clientAuth only, no SAN, signed by the CA', async () => {
    const c = await issueCertificate({
      commonName: 'konductor-admin',
      organizations: ['system:masters'],
      issuer: ca,
      usage: 'client',
      validityDays: 1,
    });
    const x = new X509Certificate(c.certPem);
    expect(x.subject).toBe('CN=konductor-admin\nO=system:masters');
    expect(x.keyUsage).toEqual([CLIENT_AUTH]);
    expect(x.subjectAltName).toBeUndefined();
    expect(x.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(c.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('a serving certificate for both usages with DNS and IP SANs', async () => {
    const c = await issueCertificate({
      commonName: 'kube-apiserver',
      issuer: ca,
      usage: 'both',
      dnsNames: ['localhost', 'kubernetes.default.svc'],
      ipAddresses: ['127.0.0.1', '10.0.0.1'],
      validityDays: 1,
    });
    const x = new X509Certificate(c.certPem);
    expect(x.keyUsage?.sort()).toEqual([SERVER_AUTH, CLIENT_AUTH].sort());
    expect(x.checkIP('10.0.0.1')).toBe('10.0.0.1');
    expect(x.checkHost('kubernetes.default.svc')).toBe('kubernetes.default.svc');
    expect(x.ca).toBe(false);
  });

  it('refuses an unusable validity and an issuer that is not a certificate', async () => {
    await expect(issueCertificate({ commonName: 'x', validityDays: 0 })).rejects.toMatchObject({
      code: 'KDR_CERTS_OPTIONS_INVALID',
    });
    await expect(
      issueCertificate({ commonName: 'x', issuer: { certPem: 'nope', keyPem: ca.keyPem }, validityDays: 1 }),
    ).rejects.toMatchObject({ code: 'KDR_CERTS_INVALID' });
  });
});
