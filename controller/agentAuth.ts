/**
 * Authenticates the agent's projected service-account token (audience `konductor`) with a TokenReview and
 * extracts the pod the token is bound to. Results are cached by token until shortly before the token
 * expires (at most cacheTtlMs), so a waiting pod's reconnects cost no API call.
 */
import { createHash } from 'node:crypto';
import { TOKEN_AUDIENCE } from '../api/constants.ts';
import { KonductorError } from '../api/errors.ts';
import type { KubeClient } from '../api/kubeClient.ts';

export interface PodIdentity {
  namespace: string;
  serviceAccount: string;
  pod: string;
  uid: string;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; extra?: Record<string, string[]> };
}

export const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';
export const POD_UID_EXTRA = 'authentication.kubernetes.io/pod-uid';

/** Pure: the pod identity in a TokenReview status, or a typed error (401 unauthenticated, 403 not a pod token). */
export function identityFromReview(status: TokenReviewStatus, audience = TOKEN_AUDIENCE): PodIdentity {
  if (!status.authenticated) {
    throw new KonductorError(
      'KDR_AGENT_UNAUTHENTICATED',
      `token rejected: ${status.error ?? 'not authenticated'}`,
      401,
    );
  }
  if (status.audiences && !status.audiences.includes(audience)) {
    throw new KonductorError('KDR_AGENT_WRONG_AUDIENCE', `token audience is not "${audience}"`, 401);
  }
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(status.user?.username ?? '');
  const pod = status.user?.extra?.[POD_NAME_EXTRA]?.[0];
  const uid = status.user?.extra?.[POD_UID_EXTRA]?.[0];
  if (!m || !pod || !uid) {
    throw new KonductorError(
      'KDR_AGENT_NOT_POD_TOKEN',
      'token is not a service-account token bound to a pod (use the projected token konductor injects)',
      403,
    );
  }
  return { namespace: m[1]!, serviceAccount: m[2]!, pod, uid };
}

/** Expiry (ms) claimed by a JWT, without verifying it (only used to bound the cache). */
export function jwtExpiry(token: string): number | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { exp?: number };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export class AgentAuthenticator {
  private readonly cache = new Map<string, { identity: PodIdentity; until: number }>();
  private readonly client: KubeClient;
  private readonly cacheTtlMs: number;

  constructor(client: KubeClient, cacheTtlMs = 60_000) {
    this.client = client;
    this.cacheTtlMs = cacheTtlMs;
  }

  async authenticate(authorization: string | undefined): Promise<PodIdentity> {
    const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
    if (!token) throw new KonductorError('KDR_AGENT_NO_TOKEN', 'missing bearer token', 401);
    const key = createHash('sha256').update(token).digest('base64url');
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.identity;
    const review = await this.client.create<{ status: TokenReviewStatus }>(
      '/apis/authentication.k8s.io/v1/tokenreviews',
      {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, audiences: [TOKEN_AUDIENCE] },
      },
    );
    const identity = identityFromReview(review.status ?? {});
    const exp = jwtExpiry(token) ?? now + this.cacheTtlMs;
    if (this.cache.size > 20_000) this.cache.clear();
    this.cache.set(key, { identity, until: Math.min(now + this.cacheTtlMs, exp - 5_000) });
    return identity;
  }
}
