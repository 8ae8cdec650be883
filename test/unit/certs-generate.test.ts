import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import { isKonductorError } from '../../api/errors.ts';
import {
  type CertificateAuthority,
  generateCA,
  generateServingCert,
  type ServingCertificate,
} from '../../certs/generate.ts';

const DNS = ['konductor', 'konductor.konductor-system', 'konductor.konductor-system.svc'];
const DAY = 24 * 60 * 60 * 1000;

let ca: CertificateAuthority;
let serving: ServingCertificate;
let otherCa: CertificateAuthority;
const issuedAt = new Date();

beforeAll(async () => {
  [ca, otherCa] = await Promise.all([
    generateCA({ commonName: 'konductor-ca', validityDays: 3650, now: issuedAt }),
    generateCA({ commonName: 'someone-else', validityDays: 30 }),
  ]);
  serving = await generateServingCert({
    ca,
    dnsNames: DNS,
    ipAddresses: ['127.0.0.1', '::1'],
    validityDays: 365,
    now: issuedAt,
  });
});

function extension(pem: string, name: string): Record<string, unknown> | undefined {
  return forge.pki.certificateFromPem(pem).getExtension(name) as Record<string, unknown> | undefined;
}

function samePublicKey(certPem: string, keyPem: string): boolean {
  const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  const fromCert = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return fromKey.equals(fromCert);
}

describe('generateCA', () => {
  it('is a self-signed CA with the requested subject and lifetime', () => {
    const x = new X509Certificate(ca.certPem);
    expect(x.ca).toBe(true);
    expect(x.subject).toBe('CN=konductor-ca');
    expect(x.issuer).toBe('CN=konductor-ca');
    expect(x.checkIssued(x)).toBe(true);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(samePublicKey(ca.certPem, ca.keyPem)).toBe(true);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(Math.abs(x.validToDate.getTime() - (issuedAt.getTime() + 3650 * DAY))).toBeLessThan(1000);
    expect(x.validFromDate.getTime()).toBeLessThan(issuedAt.getTime()); // back-dated for clock skew
  });

  it('has critical basicConstraints CA:true, keyCertSign and a subject key identifier', () => {
    expect(extension(ca.certPem, 'basicConstraints')).toMatchObject({ cA: true, critical: true });
    expect(extension(ca.certPem, 'keyUsage')).toMatchObject({
      keyCertSign: true,
      cRLSign: true,
      critical: true,
    });
    expect(extension(ca.certPem, 'subjectKeyIdentifier')?.subjectKeyIdentifier).toMatch(/^[0-9a-f]{40}$/);
  });
});

describe('generateServingCert', () => {
  it('carries the DNS and IP SANs and verifies against the CA', () => {
    const x = new X509Certificate(serving.certPem);
    const caX = new X509Certificate(ca.certPem);
    expect(x.subjectAltName).toBe(
      'DNS:konductor, DNS:konductor.konductor-system, DNS:konductor.konductor-system.svc, ' +
        'IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
    expect(x.checkHost('konductor.konductor-system.svc')).toBe('konductor.konductor-system.svc');
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(x.checkHost('evil.example.com')).toBeUndefined();
    expect(x.subject).toBe('CN=konductor');
    expect(x.issuer).toBe(caX.subject);
    expect(x.checkIssued(caX)).toBe(true);
    expect(x.verify(caX.publicKey)).toBe(true);
    expect(x.checkIssued(new X509Certificate(otherCa.certPem))).toBe(false);
    expect(x.ca).toBe(false);
    expect(serving.caPem).toBe(ca.certPem);
    expect(samePublicKey(serving.certPem, serving.keyPem)).toBe(true);
  });

  it('is for serverAuth with digitalSignature/keyEncipherment', () => {
    const x = new X509Certificate(serving.certPem);
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // node names the EKU list keyUsage
    expect(extension(serving.certPem, 'keyUsage')).toMatchObject({
      digitalSignature: true,
      keyEncipherment: true,
      critical: true,
    });
    expect(extension(serving.certPem, 'keyUsage')?.keyCertSign).toBeFalsy();
    expect(extension(serving.certPem, 'basicConstraints')).toMatchObject({ cA: false });
  });

  it('links SubjectKeyIdentifier and AuthorityKeyIdentifier to the CA', () => {
    const caSki = extension(ca.certPem, 'subjectKeyIdentifier')?.subjectKeyIdentifier as string;
    const aki = extension(serving.certPem, 'authorityKeyIdentifier') as { value: string };
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING, ... }
    const seq = forge.asn1.fromDer(aki.value);
    const keyId = (seq.value as forge.asn1.Asn1[])[0];
    expect(keyId?.type).toBe(0);
    expect(forge.util.bytesToHex(keyId?.value as string)).toBe(caSki);
    expect(extension(serving.certPem, 'subjectKeyIdentifier')?.subjectKeyIdentifier).not.toBe(caSki);
  });

  it('uses random positive 16-byte serials', async () => {
    const more = await Promise.all(
      [1, 2, 3].map(() => generateServingCert({ ca, dnsNames: ['a.example'], validityDays: 1 })),
    );
    const serials = [ca, serving, ...more].map((c) => new X509Certificate(c.certPem).serialNumber);
    expect(new Set(serials).size).toBe(serials.length);
    for (const s of serials) {
      expect(s).toMatch(/^[0-9A-F]{32}$/);
      expect(Number.parseInt(s.slice(0, 2), 16)).toBeLessThan(0x80);
    }
  });

  it('rejects useless options with a typed error', async () => {
    const attempts = [
      generateServingCert({ ca, dnsNames: [], validityDays: 1 }),
      generateServingCert({ ca, dnsNames: ['ok'], ipAddresses: ['not-an-ip'], validityDays: 1 }),
      generateServingCert({ ca, dnsNames: ['bad name'], validityDays: 1 }),
      generateServingCert({ ca, dnsNames: ['ok'], validityDays: 0 }),
      generateServingCert({
        ca: { certPem: 'garbage', keyPem: ca.keyPem },
        dnsNames: ['ok'],
        validityDays: 1,
      }),
      generateCA({ commonName: 'x', validityDays: Number.NaN }),
    ];
    for (const p of attempts) {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isKonductorError(err), String(err)).toBe(true);
    }
  });
});

describe('TLS handshake on loopback', () => {
  async function serve(cert: ServingCertificate): Promise<{ port: number; close: () => Promise<void> }> {
    const server = createServer({ cert: cert.certPem, key: cert.keyPem }, (_req, res) => res.end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return {
      port: (server.address() as AddressInfo).port,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  function get(port: number, caPem: string, servername?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/',
          ca: caPem,
          agent: false,
          ...(servername ? { servername } : {}),
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            body += d;
          });
          res.on('end', () => resolve(body));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  it('a client trusting only the CA connects by DNS SAN and by IP SAN, and rejects everything else', async () => {
    const srv = await serve(serving);
    try {
      expect(await get(srv.port, ca.certPem, 'konductor.konductor-system.svc')).toBe('ok');
      expect(await get(srv.port, ca.certPem)).toBe('ok'); // verified against the 127.0.0.1 IP SAN
      await expect(get(srv.port, otherCa.certPem, 'konductor.konductor-system.svc')).rejects.toMatchObject({
        code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      });
      await expect(get(srv.port, ca.certPem, 'wrong.example.com')).rejects.toMatchObject({
        code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      });
    } finally {
      await srv.close();
    }
  });
});
