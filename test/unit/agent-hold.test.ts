import { describe, expect, it } from 'vitest';
import type { ReleaseResponse } from '../../api/protocol.ts';
import type { AgentCallResult, AgentClient } from '../../sidecar/agentClient.ts';
import {
  describeHeld,
  describeRelease,
  type HoldIO,
  RELEASE_POLICY,
  releaseWithRetries,
} from '../../sidecar/hold.ts';

function harness(results: AgentCallResult<ReleaseResponse>[], costMs = 0) {
  let clock = 0;
  const out: string[] = [];
  const err: string[] = [];
  const timeouts: number[] = [];
  const client: AgentClient = {
    async wait() {
      throw new Error('not used');
    },
    async release(_token, body, timeoutMs) {
      expect(body).toEqual({ reason: 'Terminating' });
      timeouts.push(timeoutMs);
      clock += Math.min(costMs, timeoutMs);
      const r = results.shift();
      if (!r) throw new Error('unexpected extra release() call');
      return r;
    },
  };
  const io: HoldIO = {
    client,
    readToken: () => 'tok',
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
    },
    untilStopSignal: () => new Promise(() => {}),
    keepAlive: () => () => {},
  };
  return { io, out, err, timeouts, remaining: () => results.length, clock: () => clock };
}

const S = { kind: 'Semaphore' as const, name: 'batch-slots', namespace: 'default', token: 7 };

describe('releaseWithRetries', () => {
  it('releases on the first answer and says what it released', async () => {
    const h = harness([{ kind: 'ok', value: { released: [S] } }]);
    expect(await releaseWithRetries(h.io, RELEASE_POLICY)).toBe(true);
    expect(h.out).toEqual(['released semaphore default/batch-slots (token 7)']);
  });

  it('retries network failures and 5xx, at most three times, within the total budget', async () => {
    const h = harness(
      [
        { kind: 'network', reason: 'ECONNREFUSED' },
        { kind: 'http', status: 503, code: '', message: 'restarting' },
        { kind: 'network', reason: 'ECONNRESET' },
      ],
      600,
    );
    expect(await releaseWithRetries(h.io, RELEASE_POLICY)).toBe(false);
    expect(h.remaining()).toBe(0);
    expect(h.clock()).toBeLessThanOrEqual(RELEASE_POLICY.totalMs);
    expect(h.err).toEqual([
      "release failed (ECONNRESET); the controller releases the pod's grants when the pod completes",
    ]);
  });

  it('shrinks the last attempt to what is left of the budget', async () => {
    const h = harness(
      [
        { kind: 'network', reason: 'ETIMEDOUT' },
        { kind: 'network', reason: 'ETIMEDOUT' },
        { kind: 'ok', value: { released: [] } },
      ],
      600,
    );
    expect(await releaseWithRetries(h.io, RELEASE_POLICY)).toBe(true);
    expect(h.timeouts).toEqual([600, 600, 500]);
    expect(h.out).toEqual(['released nothing: the pod held no grants (already released)']);
  });

  it('does not retry a client error', async () => {
    const h = harness([
      { kind: 'http', status: 403, code: 'KDR_FORBIDDEN', message: 'no' },
      { kind: 'ok', value: { released: [] } },
    ]);
    expect(await releaseWithRetries(h.io, RELEASE_POLICY)).toBe(false);
    expect(h.remaining()).toBe(1);
    expect(h.err[0]).toContain('HTTP 403 KDR_FORBIDDEN: no');
  });
});

describe('describing grants', () => {
  it('lists held and released primitives', () => {
    const bar = { kind: 'Barrier' as const, name: 'start', namespace: 'default', token: 0 };
    expect(describeRelease({ released: [S, bar] })).toBe(
      'released semaphore default/batch-slots (token 7), barrier default/start',
    );
    expect(describeRelease({ released: [], held: [S] })).toBe(
      "semaphore default/batch-slots (token 7) goes back once the pod's status shows its containers stopped",
    );
    expect(describeRelease({ released: [], held: [] })).toBe(
      'released nothing: the pod held no grants (already released)',
    );
    expect(
      describeHeld({
        pod: 'p',
        uid: 'u',
        namespace: 'default',
        grants: [{ ...S, grantedAt: '', pod: 'p', uid: 'u' }],
      }),
    ).toBe('semaphore default/batch-slots (token 7)');
    expect(describeHeld(undefined)).toBeUndefined();
  });
});
