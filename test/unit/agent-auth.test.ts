/**
 * The agent API's authenticator (controller/agentAuth.ts): the audience must be in the TokenReview's answer,
 * and a flood of bad tokens does not become a flood of TokenReviews (local JWT checks, a negative cache,
 * shared in-flight reviews, bounded concurrency). The TokenReview itself against the real API server is
 * covered by test/integration/agent-auth.test.ts; here a counting reviewer stands in for it.
 */
import { describe, expect, it } from 'vitest';
import {
  AgentAuthenticator,
  identityFromReview,
  type TokenReviewer,
  unverifiedTokenProblem,
} from '../../controller/agentAuth.ts';

const NOW = 1_800_000_000_000;

function jwt(claims: Record<string, unknown>): string {
  const b = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b({ alg: 'RS256' })}.${b(claims)}.c2lnbmF0dXJl`;
}

const podClaims = (extra: Record<string, unknown> = {}) => ({
  aud: ['konductor'],
  exp: NOW / 1000 + 3600,
  'kubernetes.io': { namespace: 'ns', pod: { name: 'p', uid: 'u' }, serviceaccount: { name: 'default' } },
  ...extra,
});

const accepted = {
  authenticated: true,
  audiences: ['konductor'],
  user: {
    username: 'system:serviceaccount:ns:default',
    extra: {
      'authentication.kubernetes.io/pod-name': ['p'],
      'authentication.kubernetes.io/pod-uid': ['u'],
    },
  },
};

function counting(answer: (token: string) => object = () => ({ authenticated: false, error: 'invalid' })) {
  const calls: string[] = [];
  const reviewer: TokenReviewer = async (token) => {
    calls.push(token);
    return answer(token);
  };
  return { calls, reviewer };
}

describe('identityFromReview', () => {
  it('requires the konductor audience in the answer: an empty or missing list is not enough', () => {
    expect(identityFromReview(accepted).pod).toBe('p');
    for (const audiences of [undefined, [], ['https://kubernetes.default.svc']]) {
      expect(() => identityFromReview({ ...accepted, audiences })).toThrow(
        expect.objectContaining({ code: 'KDR_AGENT_WRONG_AUDIENCE', statusCode: 401 }),
      );
    }
  });
});

describe('unverifiedTokenProblem', () => {
  it('refuses what cannot be a konductor pod token, before any TokenReview', () => {
    expect(unverifiedTokenProblem(jwt(podClaims()), NOW)).toBeNull();
    expect(unverifiedTokenProblem('garbage', NOW)).toMatch(/not a JWT/);
    expect(unverifiedTokenProblem('a.!!!.c', NOW)).toMatch(/not a JWT/);
    expect(unverifiedTokenProblem(jwt(podClaims({ aud: ['https://kubernetes.default.svc'] })), NOW)).toMatch(
      /audience/,
    );
    expect(unverifiedTokenProblem(jwt(podClaims({ aud: 'konductor' })), NOW)).toBeNull();
    expect(unverifiedTokenProblem(jwt(podClaims({ exp: NOW / 1000 - 1 })), NOW)).toMatch(/expired/);
    expect(unverifiedTokenProblem(jwt(podClaims({ 'kubernetes.io': { namespace: 'ns' } })), NOW)).toMatch(
      /bound to a pod/,
    );
  });
});

describe('AgentAuthenticator', () => {
  it('does not review tokens that are not konductor pod JWTs at all', async () => {
    const { calls, reviewer } = counting();
    const auth = new AgentAuthenticator(reviewer, { now: () => NOW });
    for (let i = 0; i < 100; i++) {
      await expect(auth.authenticate(`Bearer random-${i}`)).rejects.toMatchObject({ statusCode: 401 });
    }
    await expect(auth.authenticate(undefined)).rejects.toMatchObject({ code: 'KDR_AGENT_NO_TOKEN' });
    expect(calls).toHaveLength(0);
  });

  it('a refused token is reviewed once per negative-cache window, however often it comes', async () => {
    const { calls, reviewer } = counting();
    let now = NOW;
    const auth = new AgentAuthenticator(reviewer, { now: () => now, negativeTtlMs: 5000 });
    const bad = `Bearer ${jwt(podClaims())}`;
    for (let i = 0; i < 200; i++) {
      await expect(auth.authenticate(bad)).rejects.toMatchObject({
        code: 'KDR_AGENT_UNAUTHENTICATED',
        statusCode: 401,
      });
    }
    expect(calls).toHaveLength(1);
    now += 5001;
    await expect(auth.authenticate(bad)).rejects.toMatchObject({ statusCode: 401 });
    expect(calls).toHaveLength(2);
  });

  it('keeps no cache entry past its time: a flood of distinct bad tokens does not pile up in memory', async () => {
    const { reviewer } = counting();
    let now = NOW;
    const auth = new AgentAuthenticator(reviewer, { now: () => now, negativeTtlMs: 5000 });
    for (let i = 0; i < 1000; i++) {
      await expect(auth.authenticate(`Bearer ${jwt(podClaims({ jti: String(i) }))}`)).rejects.toMatchObject({
        statusCode: 401,
      });
    }
    expect(auth.cachedTokens()).toEqual({ accepted: 0, refused: 1000 });
    now += 5001;
    await expect(auth.authenticate(`Bearer ${jwt(podClaims({ jti: 'late' }))}`)).rejects.toMatchObject({
      statusCode: 401,
    });
    expect(auth.cachedTokens()).toEqual({ accepted: 0, refused: 1 });
  });

  it('concurrent requests with one token share one review; an accepted token is cached', async () => {
    const { calls, reviewer } = counting(() => accepted);
    const auth = new AgentAuthenticator(reviewer, { now: () => NOW });
    const good = `Bearer ${jwt(podClaims())}`;
    const all = await Promise.all(Array.from({ length: 50 }, () => auth.authenticate(good)));
    expect(all.every((id) => id.uid === 'u')).toBe(true);
    await auth.authenticate(good);
    expect(calls).toHaveLength(1);
  });

  it('bounds the TokenReviews in flight and answers 503 when too many wait', async () => {
    const release: (() => void)[] = [];
    let started = 0;
    const reviewer: TokenReviewer = () =>
      new Promise((resolve) => {
        started++;
        release.push(() => resolve(accepted));
      });
    const auth = new AgentAuthenticator(reviewer, {
      now: () => NOW,
      maxConcurrentReviews: 2,
      maxQueuedReviews: 3,
    });
    const tokens = Array.from({ length: 5 }, (_, i) => `Bearer ${jwt(podClaims({ jti: String(i) }))}`);
    const pending = tokens.map((t) => auth.authenticate(t));
    await new Promise((r) => setImmediate(r));
    expect(started).toBe(2);
    await expect(auth.authenticate(`Bearer ${jwt(podClaims({ jti: 'x' }))}`)).rejects.toMatchObject({
      code: 'KDR_AGENT_AUTH_BUSY',
      statusCode: 503,
    });
    while (release.length > 0 || started < 5) {
      release.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    expect((await Promise.all(pending)).map((id) => id.pod)).toEqual(['p', 'p', 'p', 'p', 'p']);
    expect(started).toBe(5);
  });

  it('does not cache an API server failure as a refusal', async () => {
    let fail = true;
    const calls: string[] = [];
    const reviewer: TokenReviewer = async (token) => {
      calls.push(token);
      if (fail) throw new Error('connection refused');
      return accepted;
    };
    const auth = new AgentAuthenticator(reviewer, { now: () => NOW });
    const good = `Bearer ${jwt(podClaims())}`;
    await expect(auth.authenticate(good)).rejects.toMatchObject({
      code: 'KDR_AGENT_AUTH_UNAVAILABLE',
      statusCode: 503,
      message: expect.stringContaining('connection refused'),
    });
    fail = false;
    await expect(auth.authenticate(good)).resolves.toMatchObject({ pod: 'p' });
    expect(calls).toHaveLength(2);
  });
});
