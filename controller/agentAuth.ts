/**
 * Authenticates the agent's projected service-account token (audience `konductor`) with a TokenReview and
 * extracts the pod the token is bound to. Results are cached by token until shortly before the token
 * expires (at most cacheTtlMs), so a waiting pod's reconnects cost no API call.
 */
import { createHash } from 'node:crypto';
import { TOKEN_AUDIENCE } from '../api/constants.ts';
import { KonductorError, konductorError } from '../api/errors.ts';
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
    throw konductorError('KDR_AGENT_UNAUTHENTICATED', status.error ?? 'not authenticated');
  }
  // The review asked for `audience`; an API server that ignores spec.audiences answers with its own (or
  // none): only an explicit "konductor" in the answer proves the token was minted for konductor.
  if (!status.audiences?.includes(audience)) {
    throw konductorError('KDR_AGENT_WRONG_AUDIENCE', audience);
  }
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(status.user?.username ?? '');
  const pod = status.user?.extra?.[POD_NAME_EXTRA]?.[0];
  const uid = status.user?.extra?.[POD_UID_EXTRA]?.[0];
  if (!m || !pod || !uid) {
    throw konductorError('KDR_AGENT_NOT_POD_TOKEN');
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

/** What the JWT claims before any verification: enough to refuse garbage without asking the API server. */
export function unverifiedTokenProblem(
  token: string,
  nowMs: number,
  audience = TOKEN_AUDIENCE,
): string | null {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => p === '')) return 'token is not a JWT';
  let claims: { aud?: unknown; exp?: unknown; 'kubernetes.io'?: { pod?: unknown } };
  try {
    claims = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8'));
  } catch {
    return 'token is not a JWT';
  }
  if (typeof claims !== 'object' || claims === null) return 'token is not a JWT';
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes(audience)) return `token audience is not "${audience}"`;
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= nowMs) return 'token has expired';
  if (!claims['kubernetes.io']?.pod) {
    return 'token is not a service-account token bound to a pod (use the projected token konductor injects)';
  }
  return null;
}

/** Asks the API server about a token (a TokenReview naming the konductor audience). */
export type TokenReviewer = (token: string) => Promise<TokenReviewStatus>;

export function tokenReviewer(client: KubeClient): TokenReviewer {
  return async (token) => {
    const review = await client.create<{ status?: TokenReviewStatus }>(
      '/apis/authentication.k8s.io/v1/tokenreviews',
      {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, audiences: [TOKEN_AUDIENCE] },
      },
    );
    return review.status ?? {};
  };
}

export interface AgentAuthenticatorOptions {
  /** How long an accepted token is trusted without a new review (default 60 s; never past its expiry). */
  cacheTtlMs?: number;
  /**
   * How long a refused token stays refused without a new review (default 5 s): a flood of one bad token
   * is one TokenReview per window, not one per request.
   */
  negativeTtlMs?: number;
  /** TokenReviews in flight at once (default 8); more wait in line. */
  maxConcurrentReviews?: number;
  /** Requests waiting for a review slot (default 256); beyond, 503 (the agent retries with backoff). */
  maxQueuedReviews?: number;
  /** Cache entries of each kind (default 20,000; the oldest go first). */
  maxCacheEntries?: number;
  now?: () => number;
}

/**
 * Authenticates agent requests. A refused token costs the API server at most one TokenReview per
 * `negativeTtlMs`; one that is not even a JWT for audience konductor bound to a pod costs none; identical
 * reviews in flight are shared; and at most `maxConcurrentReviews` run at once.
 */
export class AgentAuthenticator {
  private readonly accepted = new Map<string, { identity: PodIdentity; until: number }>();
  private readonly refused = new Map<string, { error: KonductorError; until: number }>();
  private readonly inFlight = new Map<string, Promise<PodIdentity>>();
  private readonly waiting: (() => void)[] = [];
  private running = 0;
  private readonly review: TokenReviewer;
  private readonly opts: Required<Omit<AgentAuthenticatorOptions, 'now'>> & { now: () => number };

  constructor(client: KubeClient | TokenReviewer, opts: AgentAuthenticatorOptions = {}) {
    this.review = typeof client === 'function' ? client : tokenReviewer(client);
    this.opts = {
      cacheTtlMs: opts.cacheTtlMs ?? 60_000,
      negativeTtlMs: opts.negativeTtlMs ?? 5_000,
      maxConcurrentReviews: opts.maxConcurrentReviews ?? 8,
      maxQueuedReviews: opts.maxQueuedReviews ?? 256,
      maxCacheEntries: opts.maxCacheEntries ?? 20_000,
      now: opts.now ?? Date.now,
    };
  }

  /** Entries in the caches of accepted and refused tokens. */
  cachedTokens(): { accepted: number; refused: number } {
    return { accepted: this.accepted.size, refused: this.refused.size };
  }

  async authenticate(authorization: string | undefined): Promise<PodIdentity> {
    const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
    if (!token) throw konductorError('KDR_AGENT_NO_TOKEN');
    const now = this.opts.now();
    const key = createHash('sha256').update(token).digest('base64url');
    const hit = this.accepted.get(key);
    if (hit && hit.until > now) return hit.identity;
    const miss = this.refused.get(key);
    if (miss && miss.until > now) throw miss.error;
    const local = unverifiedTokenProblem(token, now);
    if (local !== null) throw konductorError('KDR_AGENT_UNAUTHENTICATED', local);
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.reviewOnce(token, key).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private async reviewOnce(token: string, key: string): Promise<PodIdentity> {
    await this.acquire();
    let status: TokenReviewStatus;
    try {
      status = await this.review(token);
    } catch (err) {
      // The API server could not be asked (unreachable, restarting, overloaded): not a refusal (not cached);
      // the agent retries a 503 with backoff.
      throw konductorError('KDR_AGENT_AUTH_UNAVAILABLE', (err as Error).message).causedBy(err);
    } finally {
      this.releaseSlot();
    }
    const now = this.opts.now();
    try {
      const identity = identityFromReview(status);
      const exp = jwtExpiry(token) ?? now + this.opts.cacheTtlMs;
      remember(
        this.accepted,
        key,
        { identity, until: Math.min(now + this.opts.cacheTtlMs, exp - 5_000) },
        this.opts.maxCacheEntries,
        now,
      );
      return identity;
    } catch (err) {
      if (err instanceof KonductorError) {
        remember(
          this.refused,
          key,
          { error: err, until: now + this.opts.negativeTtlMs },
          this.opts.maxCacheEntries,
          now,
        );
      }
      throw err;
    }
  }

  private async acquire(): Promise<void> {
    if (this.running < this.opts.maxConcurrentReviews) {
      this.running++;
      return;
    }
    if (this.waiting.length >= this.opts.maxQueuedReviews) {
      throw konductorError('KDR_AGENT_AUTH_BUSY');
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private releaseSlot(): void {
    const next = this.waiting.shift();
    if (next)
      next(); // the slot passes to the next in line
    else this.running--;
  }
}

/**
 * Sets `key` in an insertion-ordered map bounded to `max` entries (the oldest is dropped), first dropping the
 * oldest entries that have expired: a flood of distinct tokens is forgotten as its entries expire, instead of
 * staying in memory until `max` of them (with their errors) pile up.
 */
function remember<V extends { until: number }>(
  map: Map<string, V>,
  key: string,
  value: V,
  max: number,
  now: number,
): void {
  map.delete(key);
  for (const [k, v] of map) {
    if (v.until > now) break;
    map.delete(k);
  }
  if (map.size >= max) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
  map.set(key, value);
}
