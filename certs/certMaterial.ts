/**
 * The self-managed certificate material (what the Secret stores) and its reduction to the planner's
 * RotationState: parse the PEMs, check each key matches its certificate, find which CA signed the serving
 * certificate, read its SANs. Pure (node:crypto parsing only, no I/O).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { CertValidity, RotationState, ServingState } from './rotationPlan.ts';
import { canonicalIp } from './rotationPlan.ts';

/** PEM strings; any may be missing or garbage in a Secret someone edited. */
export interface CertMaterial {
  caCert?: string;
  caKey?: string;
  previousCaCert?: string;
  previousCaKey?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** Epoch ms of the current CA's creation. */
  caRotatedAt?: number;
}

function parseCert(pem: string | undefined): X509Certificate | undefined {
  if (!pem) return undefined;
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function keyMatches(cert: X509Certificate, keyPem: string | undefined): boolean {
  if (!keyPem) return false;
  try {
    return cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

function validity(cert: X509Certificate): CertValidity {
  return { notBefore: cert.validFromDate.getTime(), notAfter: cert.validToDate.getTime() };
}

/** A CA certificate with its matching key, or undefined. */
function usableCa(certPem: string | undefined, keyPem: string | undefined): X509Certificate | undefined {
  const cert = parseCert(certPem);
  return cert?.ca && keyMatches(cert, keyPem) ? cert : undefined;
}

function signedBy(cert: X509Certificate, ca: X509Certificate | undefined): boolean {
  if (!ca) return false;
  try {
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

/** DNS names and IP addresses of a certificate's subjectAltName. */
export function subjectAltNames(cert: X509Certificate): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const entry of (cert.subjectAltName ?? '').split(/,\s*/)) {
    const m = /^(DNS|IP Address):(.*)$/.exec(entry.trim());
    if (!m) continue;
    if (m[1] === 'DNS') dnsNames.push(m[2] as string);
    else ipAddresses.push(canonicalIp(m[2] as string));
  }
  return { dnsNames, ipAddresses };
}

export function inspectMaterial(m: CertMaterial): RotationState {
  const ca = usableCa(m.caCert, m.caKey);
  const previous = usableCa(m.previousCaCert, m.previousCaKey);
  const state: RotationState = {};
  if (ca) state.ca = validity(ca);
  if (previous) state.previousCa = validity(previous);
  if (m.caRotatedAt !== undefined && Number.isFinite(m.caRotatedAt)) state.caRotatedAt = m.caRotatedAt;
  const tls = parseCert(m.tlsCert);
  if (tls && !tls.ca && keyMatches(tls, m.tlsKey)) {
    const serving: ServingState = {
      ...validity(tls),
      signedBy: signedBy(tls, ca) ? 'current' : signedBy(tls, previous) ? 'previous' : 'none',
      ...subjectAltNames(tls),
    };
    state.serving = serving;
  }
  return state;
}

/**
 * The CAs clients must trust, as one PEM: the current CA, then the previous one during a rollover. This
 * is the webhook configuration's caBundle and the cert dir's ca.crt (handed to injected pods).
 */
export function trustBundle(m: CertMaterial): string {
  const pems = [m.caCert, m.previousCaCert]
    .filter((p): p is string => !!p && parseCert(p) !== undefined)
    .map((p) => (p.endsWith('\n') ? p : `${p}\n`));
  return pems.join('');
}

/** Hex serial number of a PEM certificate (upper case, as node prints it), or undefined. */
export function serialOf(pem: string | undefined): string | undefined {
  return parseCert(pem)?.serialNumber;
}
