/**
 * Pure certificate generation for the manager's TLS identity when cert-manager is not used (DESIGN §6):
 * a self-signed CA and a serving certificate it signs, as PEM strings.
 *
 * The certificates are built by certs/certificateBuilder.ts (shared with the devcluster's PKI); this module
 * checks the options and says what a CA and a serving certificate are. No I/O besides the key generation;
 * storage in a Secret and rotation scheduling live elsewhere.
 */
import { isIP } from 'node:net';
import { konductorError } from '../api/errors.ts';
import { type CertificateAndKey, checkValidityDays, issueCertificate } from './certificateBuilder.ts';

/** A certificate and its private key, both PEM. The key is PKCS#8 (`BEGIN PRIVATE KEY`). */
export type KeyPairPem = CertificateAndKey;

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

/** Generates a self-signed CA certificate (basicConstraints CA:true, keyCertSign/cRLSign). */
export async function generateCA(opts: GenerateCAOptions): Promise<CertificateAuthority> {
  checkValidityDays(opts.validityDays);
  if (!opts.commonName) throw konductorError('KDR_CERTS_OPTIONS_INVALID', 'CA commonName must not be empty');
  return issueCertificate({
    commonName: opts.commonName,
    isCA: true,
    validityDays: opts.validityDays,
    ...(opts.keyBits !== undefined ? { keyBits: opts.keyBits } : {}),
    ...(opts.now !== undefined ? { now: opts.now } : {}),
  });
}

/** Generates a serving certificate (serverAuth) for the given SANs, signed by `ca`. */
export async function generateServingCert(opts: GenerateServingCertOptions): Promise<ServingCertificate> {
  checkValidityDays(opts.validityDays);
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
  const issued = await issueCertificate({
    commonName: opts.commonName ?? dnsNames[0] ?? (ipAddresses[0] as string),
    issuer: opts.ca,
    usage: 'server',
    dnsNames,
    ipAddresses,
    validityDays: opts.validityDays,
    ...(opts.keyBits !== undefined ? { keyBits: opts.keyBits } : {}),
    ...(opts.now !== undefined ? { now: opts.now } : {}),
  });
  return { ...issued, caPem: opts.ca.certPem };
}
