/**
 * Pure certificate generation for the manager's TLS identity when cert-manager is not used (DESIGN §6):
 * a self-signed CA and a serving certificate it signs, as PEM strings.
 *
 * RSA keys come from node's native, asynchronous `crypto.generateKeyPair` (node-forge's pure-JS key
 * generation is slow and blocks the event loop); node-forge only builds and signs the X.509 structures.
 * No I/O besides the key generation; storage in a Secret and rotation scheduling live elsewhere.
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { konductorError } from '../api/errors.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

/** A certificate and its private key, both PEM. The key is PKCS#8 (`BEGIN PRIVATE KEY`). */
export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export type CertificateAuthority = KeyPairPem;

export interface ServingCertificate extends KeyPairPem {
  /** PEM of the CA that signed it (what a client puts in its trust store / caBundle). */
  caPem: string;
}

export interface GenerateCAOptions {
  commonName: string;
  validityDays: number;
  /** RSA modulus length, default 2048. */
  keyBits?: number;
  /** Issue time, default the current time (the certificate is back-dated 5 minutes for clock skew). */
  now?: Date;
}

export interface GenerateServingCertOptions {
  ca: CertificateAuthority;
  /** DNS SANs, e.g. `konductor.konductor-system.svc`; the first is also the subject CN. */
  dnsNames: string[];
  /** IP SANs (IPv4 or IPv6), e.g. `127.0.0.1` for a loopback webhook. */
  ipAddresses?: string[];
  validityDays: number;
  /** Subject CN, default the first DNS name (or the first IP address). */
  commonName?: string;
  keyBits?: number;
  now?: Date;
}

const CLOCK_SKEW_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

/** Generates a self-signed CA certificate (basicConstraints CA:true, keyCertSign/cRLSign). */
export async function generateCA(opts: GenerateCAOptions): Promise<CertificateAuthority> {
  checkValidity(opts.validityDays);
  if (!opts.commonName) throw konductorError('KDR_CERTS_OPTIONS_INVALID', 'CA commonName must not be empty');
  const { publicKeyPem, privateKeyPem } = await rsaKeyPair(opts.keyBits);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = randomSerialHex();
  setValidity(cert, opts.now ?? new Date(), opts.validityDays);
  const subject = [{ name: 'commonName', value: opts.commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: true },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privateKeyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: privateKeyPem };
}

/** Generates a serving certificate (serverAuth) for the given SANs, signed by `ca`. */
export async function generateServingCert(opts: GenerateServingCertOptions): Promise<ServingCertificate> {
  checkValidity(opts.validityDays);
  const dnsNames = opts.dnsNames ?? [];
  const ipAddresses = opts.ipAddresses ?? [];
  if (dnsNames.length === 0 && ipAddresses.length === 0) {
    throw konductorError(
      'KDR_CERTS_OPTIONS_INVALID',
      'a serving certificate needs at least one DNS name or IP',
    );
  }
  for (const ip of ipAddresses) {
    if (isIP(ip) === 0)
      throw konductorError('KDR_CERTS_OPTIONS_INVALID', `${JSON.stringify(ip)} is not an IP`);
  }
  for (const dns of dnsNames) {
    if (!/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(dns)) {
      throw konductorError('KDR_CERTS_OPTIONS_INVALID', `${JSON.stringify(dns)} is not a DNS name`);
    }
  }

  const caCert = parseForgeCert(opts.ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(opts.ca.keyPem);
  const { publicKeyPem, privateKeyPem } = await rsaKeyPair(opts.keyBits);

  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = randomSerialHex();
  setValidity(cert, opts.now ?? new Date(), opts.validityDays);
  const commonName = opts.commonName ?? dnsNames[0] ?? (ipAddresses[0] as string);
  cert.setSubject([{ name: 'commonName', value: commonName }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [
        ...dnsNames.map((value) => ({ type: 2, value })),
        ...ipAddresses.map((ip) => ({ type: 7, ip })),
      ],
    },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caKeyIdentifier(caCert) },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: privateKeyPem, caPem: opts.ca.certPem };
}

async function rsaKeyPair(bits = 2048): Promise<{ publicKeyPem: string; privateKeyPem: string }> {
  const { publicKey, privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicExponent: 0x10001,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicKeyPem: publicKey, privateKeyPem: privateKey };
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

function setValidity(cert: forge.pki.Certificate, now: Date, validityDays: number): void {
  cert.validity.notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  cert.validity.notAfter = new Date(now.getTime() + validityDays * DAY_MS);
}

function checkValidity(days: number): void {
  if (!Number.isFinite(days) || days <= 0) {
    throw konductorError('KDR_CERTS_OPTIONS_INVALID', `validityDays must be > 0, got ${days}`);
  }
}

function caKeyIdentifier(caCert: forge.pki.Certificate): string {
  const ext = caCert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  if (ext?.subjectKeyIdentifier) return forge.util.hexToBytes(ext.subjectKeyIdentifier);
  return caCert.generateSubjectKeyIdentifier().getBytes();
}

function parseForgeCert(pem: string): forge.pki.Certificate {
  try {
    return forge.pki.certificateFromPem(pem);
  } catch (err) {
    throw konductorError('KDR_CERTS_INVALID', (err as Error).message).causedBy(err);
  }
}
