/**
 * The pure rotation planner of self-managed certificates (DESIGN §6, docs/certificates.md):
 * `planRotation(state, policy, now) -> { actions, nextCheckAt }` over plain numbers (epoch milliseconds).
 *
 * The rules, in order:
 *
 * 1. CA. Missing, unusable or expired -> a new CA, nothing kept (nothing chains to a dead CA anyway).
 *    Past its renewal time -> a new CA, and the old one becomes the *previous* CA, which stays in the
 *    webhook's caBundle (and in the trust bundle handed to pods) until it expires.
 * 2. Previous CA. Dropped once expired.
 * 3. Serving certificate. Re-issued when missing/unusable/expired, when its SANs differ from the wanted
 *    ones, at its renewal time, or to move it from the previous CA to the current one. It is signed by the
 *    *preferred* CA: the previous one during `switchDelayMs` after a CA rotation (the API server and pods
 *    admitted before the rotation trust only the old CA until the new bundle has propagated), the current
 *    one otherwise.
 *
 * Renewal time of a certificate = notAfter - min(lifetime, validity)/3, i.e. at 2/3 of the configured
 * validity (cert-manager's convention). `validity` caps the lifetime because generate.ts back-dates
 * notBefore by 5 minutes for clock skew, which would otherwise dominate very short test validities.
 */

export interface CertValidity {
  /** Epoch milliseconds. */
  notBefore: number;
  notAfter: number;
}

export type Signer = 'current' | 'previous';

export interface ServingState extends CertValidity {
  /** Which stored CA verifies it; 'none' when neither does. */
  signedBy: Signer | 'none';
  dnsNames: string[];
  ipAddresses: string[];
}

/** What the Secret holds, reduced to what the decisions need. Absent = missing or unusable. */
export interface RotationState {
  ca?: CertValidity;
  /** Present only with its key (it may have to sign during the switch delay). */
  previousCa?: CertValidity;
  serving?: ServingState;
  /** When the current CA was created (epoch ms); absent for a Secret written by something else. */
  caRotatedAt?: number;
}

export interface RotationPolicy {
  servingValidityMs: number;
  caValidityMs: number;
  /** How long after a CA rotation the serving certificate keeps being signed by the previous CA. */
  switchDelayMs: number;
  dnsNames: string[];
  ipAddresses: string[];
}

export type RotationAction =
  | { type: 'create-ca'; keepPrevious: boolean; reason: string }
  | { type: 'drop-previous-ca'; reason: string }
  | { type: 'issue-serving'; signer: Signer; reason: string };

export interface RotationPlan {
  /** Apply in order, then plan again (the next plan of a consistent state is empty). */
  actions: RotationAction[];
  /** When the state needs looking at again (epoch ms); meaningful when `actions` is empty. */
  nextCheckAt: number;
}

/** CA validity = 2 x serving validity (see docs/certificates.md, "What rotates when"). */
export const CA_VALIDITY_FACTOR = 2;

/** The policy for a serving validity and the SANs the serving certificate must carry. */
export function rotationPolicy(
  servingValidityMs: number,
  dnsNames: string[],
  ipAddresses: string[],
): RotationPolicy {
  return {
    servingValidityMs,
    caValidityMs: servingValidityMs * CA_VALIDITY_FACTOR,
    switchDelayMs: Math.ceil(servingValidityMs / 3),
    dnsNames: [...dnsNames],
    ipAddresses: [...ipAddresses],
  };
}

/** notAfter - min(lifetime, validityMs)/3, in whole milliseconds. */
export function renewalTime(cert: CertValidity, validityMs: number): number {
  const lifetime = Math.max(0, cert.notAfter - cert.notBefore);
  return Math.ceil(cert.notAfter - Math.min(lifetime, validityMs) / 3);
}

/** Canonical text of an IP address (IPv6 compressed, lower case), so SAN sets compare reliably. */
export function canonicalIp(ip: string): string {
  const trimmed = ip.trim().replace(/^\[|\]$/g, '');
  if (!trimmed.includes(':')) return trimmed;
  try {
    return new URL(`http://[${trimmed}]/`).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return trimmed.toLowerCase();
  }
}

function sameSet(a: string[], b: string[], canon: (s: string) => string): boolean {
  const sa = new Set(a.map(canon));
  const sb = new Set(b.map(canon));
  return sa.size === sb.size && [...sa].every((x) => sb.has(x));
}

/** True when the certificate's SANs are exactly the wanted ones (DNS case-insensitive, IPs canonical). */
export function sansMatch(serving: ServingState, policy: RotationPolicy): boolean {
  return (
    sameSet(serving.dnsNames, policy.dnsNames, (s) => s.toLowerCase()) &&
    sameSet(serving.ipAddresses, policy.ipAddresses, canonicalIp)
  );
}

export function planRotation(state: RotationState, policy: RotationPolicy, now: number): RotationPlan {
  const actions: RotationAction[] = [];
  let ca = state.ca;
  let previous = state.previousCa;
  let rotatedAt = state.caRotatedAt ?? ca?.notBefore ?? now;
  let servingSigner: Signer | 'none' = state.serving?.signedBy ?? 'none';

  // 1. The CA.
  if (!ca || now >= ca.notAfter) {
    actions.push({ type: 'create-ca', keepPrevious: false, reason: ca ? 'CA expired' : 'no usable CA' });
    ca = { notBefore: now, notAfter: now + policy.caValidityMs };
    previous = undefined;
    rotatedAt = now;
    servingSigner = 'none';
  } else if (now >= renewalTime(ca, policy.caValidityMs)) {
    actions.push({ type: 'create-ca', keepPrevious: true, reason: 'CA due for renewal' });
    previous = ca;
    ca = { notBefore: now, notAfter: now + policy.caValidityMs };
    rotatedAt = now;
    servingSigner = servingSigner === 'current' ? 'previous' : 'none';
  }

  // 2. The previous CA.
  if (previous && now >= previous.notAfter) {
    actions.push({ type: 'drop-previous-ca', reason: 'previous CA expired' });
    previous = undefined;
    if (servingSigner === 'previous') servingSigner = 'none';
  }

  // 3. The serving certificate.
  const switchAt = rotatedAt + policy.switchDelayMs;
  const preferred: Signer = previous && now < switchAt ? 'previous' : 'current';
  const serving = state.serving;
  let reason: string | undefined;
  if (!serving || servingSigner === 'none') reason = 'no usable serving certificate for the stored CAs';
  else if (now >= serving.notAfter) reason = 'serving certificate expired';
  else if (!sansMatch(serving, policy)) reason = 'serving certificate SANs differ from the wanted ones';
  else if (now >= renewalTime(serving, policy.servingValidityMs))
    reason = 'serving certificate due for renewal';
  else if (servingSigner === 'previous' && preferred === 'current')
    reason = 'moving the serving certificate to the current CA';
  if (reason) actions.push({ type: 'issue-serving', signer: preferred, reason });

  // When to look again (for the state as given).
  const times: number[] = [];
  if (state.ca) times.push(renewalTime(state.ca, policy.caValidityMs), state.ca.notAfter);
  if (state.previousCa) times.push(state.previousCa.notAfter);
  if (state.serving) {
    times.push(renewalTime(state.serving, policy.servingValidityMs), state.serving.notAfter);
    if (state.serving.signedBy === 'previous') times.push(switchAt);
  }
  const future = times.filter((t) => t > now);
  const nextCheckAt = future.length > 0 ? Math.min(...future) : now + policy.servingValidityMs / 3;
  return { actions, nextCheckAt };
}
