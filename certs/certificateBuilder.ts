/**
 * The one X.509 certificate builder of konductor: the manager's self-managed CA and serving certificate
 * (certs/generate.ts) and the devcluster's PKI (devcluster/pki.ts: cluster CA, apiserver serving and client
 * certificates) are all made here.
 *
 * RSA keys come from node's native, asynchronous `crypto.generateKeyPair` (node-forge's pure-JS key generation
 * is slow and blocks the event loop), PKCS#8 private keys (`BEGIN PRIVATE KEY`, which Go's and node's TLS
 * stacks and the Kubernetes components all read); node-forge builds and signs the certificate. Serial numbers
 * are random, validity starts 5 minutes back for clock skew. Pure but for the key generation.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { konductorError } from '../api/errors.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

const CLOCK_SKEW_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

/** A certificate and its private key, both PEM (the key PKCS#8). */
export interface CertificateAndKey {
  certPem: string;
  keyPem: string;
}

export interface CertificateRequest {
  commonName: string;
  /** Subject O= entries (e.g. `system:masters` for a Kubernetes client certificate). */
  organizations?: readonly string[];
  /** The CA that signs it; absent = self-signed. */
  issuer?: CertificateAndKey;
  /** A CA certificate (basicConstraints CA:true, keyCertSign/cRLSign) instead of a leaf. */
  isCA?: boolean;
  /** Extended key usage of a leaf (default server). */
  usage?: 'server' | 'client' | 'both';
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  validityDays: number;
  /** RSA modulus length, default 2048. */
  keyBits?: number;
  /** Issue time, default now. */
  now?: Date;
}

export interface RsaKeyPair {
  publicKeyPem: string;
  privateKeyPem: string;
}

export async function rsaKeyPair(bits = 2048): Promise<RsaKeyPair> {
  const { publicKey, privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicExponent: 0x10001,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicKeyPem: publicKey, privateKeyPem: privateKey };
}

/** Issues a certificate (and its new key) as the request says. */
export async function issueCertificate(req: CertificateRequest): Promise<CertificateAndKey> {
  checkValidityDays(req.validityDays);
  const issuerCert = req.issuer ? parseCaCertificate(req.issuer.certPem) : undefined;
  const { publicKeyPem, privateKeyPem } = await rsaKeyPair(req.keyBits);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = randomSerialHex();
  const now = (req.now ?? new Date()).getTime();
  cert.validity.notBefore = new Date(now - CLOCK_SKEW_MS);
  cert.validity.notAfter = new Date(now + req.validityDays * DAY_MS);
  const subject: forge.pki.CertificateField[] = [{ name: 'commonName', value: req.commonName }];
  for (const o of req.organizations ?? []) subject.push({ name: 'organizationName', value: o });
  cert.setSubject(subject);
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : subject);
  cert.setExtensions(req.isCA ? caExtensions(issuerCert) : leafExtensions(req, issuerCert));
  const signingKey = req.issuer?.keyPem ?? privateKeyPem;
  cert.sign(forge.pki.privateKeyFromPem(signingKey), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: privateKeyPem };
}

export function checkValidityDays(days: number): void {
  if (!Number.isFinite(days) || days <= 0) {
    throw konductorError('KDR_CERTS_OPTIONS_INVALID', `validityDays must be > 0, got ${days}`);
  }
}

function caExtensions(issuer: forge.pki.Certificate | undefined): Record<string, unknown>[] {
  return [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: issuer ? keyIdentifierOf(issuer) : true },
  ];
}

function leafExtensions(req: CertificateRequest, issuer: forge.pki.Certificate | undefined) {
  const usage = req.usage ?? 'server';
  const altNames = [
    ...(req.dnsNames ?? []).map((value) => ({ type: 2, value })),
    ...(req.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
  ];
  return [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    {
      name: 'extKeyUsage',
      ...(usage !== 'client' ? { serverAuth: true } : {}),
      ...(usage !== 'server' ? { clientAuth: true } : {}),
    },
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    { name: 'subjectKeyIdentifier' },
    ...(issuer ? [{ name: 'authorityKeyIdentifier', keyIdentifier: keyIdentifierOf(issuer) }] : []),
  ];
}

/**
 * 16 random bytes as a positive, minimally DER-encoded INTEGER: the top bit is cleared (positive) and the
 * next one set (so the first byte is never 0x00 and no padding byte is needed). 126 bits of randomness.
 */
function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

/** The issuer's subject key identifier (its extension, else computed), for authorityKeyIdentifier. */
function keyIdentifierOf(caCert: forge.pki.Certificate): string {
  const ext = caCert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  if (ext?.subjectKeyIdentifier) return forge.util.hexToBytes(ext.subjectKeyIdentifier);
  return caCert.generateSubjectKeyIdentifier().getBytes();
}

function parseCaCertificate(pem: string): forge.pki.Certificate {
  try {
    return forge.pki.certificateFromPem(pem);
  } catch (err) {
    throw konductorError('KDR_CERTS_INVALID', (err as Error).message).causedBy(err);
  }
}
