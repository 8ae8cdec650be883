import { describe, expect, it } from 'vitest';
import type { Grant, WaitEvent } from '../../api/protocol.ts';
import type { AgentCallResult, AgentClient, WaitStreamHandlers } from '../../sidecar/agentClient.ts';
import type { AgentConfig } from '../../sidecar/config.ts';
import { runWait } from '../../sidecar/wait.ts';
import {
  type AgentGrantFile,
  applyWaitEvent,
  buildGrantFile,
  classifyRejection,
  describeTimeout,
  formatElapsed,
  INITIAL_WAIT_PROGRESS,
  type WaitProgress,
} from '../../sidecar/waitProgress.ts';

const SEM = { kind: 'Semaphore' as const, name: 'batch-slots', namespace: 'default' };
const BAR = { kind: 'Barrier' as const, name: 'start', namespace: 'default' };
const grant = (p: typeof SEM | typeof BAR, token: number): Grant => ({
  ...p,
  token,
  grantedAt: '2025-01-01T00:00:00Z',
  pod: 'job-a-x1',
  uid: 'uid-1',
});
const standing = (type: 'queued' | 'progress', position: number, message = ''): WaitEvent => ({
  type,
  primitive: SEM,
  position,
  queueLength: 4,
  message,
  inUse: 2,
  capacity: 2,
});

function fold(events: WaitEvent[], elapsed = 3200) {
  let state: WaitProgress = INITIAL_WAIT_PROGRESS;
  const lines: string[] = [];
  let outcome: ReturnType<typeof applyWaitEvent>['outcome'];
  for (const e of events) {
    const step = applyWaitEvent(state, e, elapsed);
    state = step.state;
    lines.push(...step.lines);
    outcome = step.outcome ?? outcome;
  }
  return { state, lines, outcome };
}

describe('applyWaitEvent', () => {
  it('prints a progress line only when it changes, per primitive', () => {
    const { lines, state } = fold([
      standing('queued', 2),
      { type: 'heartbeat' },
      standing('progress', 2),
      standing('progress', 1),
      standing('progress', 1),
    ]);
    expect(lines).toEqual([
      'waiting for semaphore default/batch-slots: position 2 of 4 (2/2 permits in use)',
      'waiting for semaphore default/batch-slots: position 1 of 4 (2/2 permits in use)',
    ]);
    expect(state.current).toEqual(SEM);
  });

  it("prefers the manager's message when it sends one", () => {
    expect(
      fold([standing('queued', 1, 'waiting for semaphore default/batch-slots: next in line')]).lines,
    ).toEqual(['waiting for semaphore default/batch-slots: next in line']);
  });

  it('announces each grant once, including grants only listed in done', () => {
    const s = grant(SEM, 7);
    const b = grant(BAR, 0);
    const { lines, outcome, state } = fold([
      standing('queued', 1),
      { type: 'granted', grant: s },
      { type: 'granted', grant: s },
      { type: 'done', grants: [s, b] },
    ]);
    expect(lines).toEqual([
      'waiting for semaphore default/batch-slots: position 1 of 4 (2/2 permits in use)',
      'granted semaphore default/batch-slots (token 7) after 3.2s',
      'barrier default/start is open after 3.2s',
    ]);
    expect(outcome).toEqual({ type: 'done', grants: [s, b] });
    expect(state.current).toBeUndefined();
  });

  it('maps failures to exit 1, and a manager-side wait-timeout to exit 2', () => {
    expect(fold([{ type: 'failed', reason: 'GateFailed', message: 'gate x failed' }]).outcome).toEqual({
      type: 'failed',
      reason: 'GateFailed',
      message: 'gate x failed',
      exitCode: 1,
    });
    expect(fold([{ type: 'failed', reason: 'WaitTimeout', message: 'gave up' }]).outcome).toMatchObject({
      exitCode: 2,
    });
  });
});

describe('buildGrantFile', () => {
  it('puts the last grant at top level and every grant in grants', () => {
    const s = grant(SEM, 7);
    const b = grant(BAR, 0);
    expect(buildGrantFile([b, s], { name: 'p', namespace: 'default', uid: 'u' })).toEqual({
      primitive: 'Semaphore',
      name: 'batch-slots',
      namespace: 'default',
      token: 7,
      grantedAt: '2025-01-01T00:00:00Z',
      pod: 'job-a-x1',
      uid: 'uid-1',
      grants: [b, s],
    });
  });
  it('writes the pod and an empty list when nothing was granted', () => {
    expect(buildGrantFile([], { name: 'p', namespace: 'ns', uid: 'u' })).toEqual({
      pod: 'p',
      uid: 'u',
      namespace: 'ns',
      grants: [],
    });
  });
});

describe('formatting', () => {
  it('formats elapsed times readably', () => {
    expect([45, 999, 1000, 3200, 30_000, 59_990, 125_000, 5_400_000].map(formatElapsed)).toEqual([
      '45ms',
      '999ms',
      '1s',
      '3.2s',
      '30s',
      '1m',
      '2m5s',
      '1h30m',
    ]);
  });
  it('describes a wait-timeout', () => {
    expect(describeTimeout(SEM, 30_000)).toBe(
      'gave up waiting for semaphore default/batch-slots after 30s (konductor.io/wait-timeout)',
    );
    expect(describeTimeout(undefined, 5000, 'ECONNREFUSED')).toBe(
      'gave up waiting for the konductor manager after 5s (konductor.io/wait-timeout); the manager was unreachable (ECONNREFUSED)',
    );
  });
  it('classifies rejections', () => {
    expect([400, 401, 403, 404, 409, 429, 500, 503].map(classifyRejection)).toEqual([
      'misconfigured',
      'unauthorized',
      'misconfigured',
      'unavailable',
      'misconfigured',
      'unavailable',
      'unavailable',
      'unavailable',
    ]);
  });
});

// runWait against a scripted client: each call to wait() runs the next step.
type Step = (h: WaitStreamHandlers, fireTimeout: () => void) => AgentCallResult<void>;

function harness(steps: Step[], waitTimeoutMs?: number, clock = { began: 50_000, now: 50_000 }) {
  const out: string[] = [];
  const timers: number[] = [];
  const err: string[] = [];
  const sleeps: number[] = [];
  const written: AgentGrantFile[] = [];
  let fire: () => void = () => {};
  let calls = 0;
  const client: AgentClient = {
    async wait(_token, handlers) {
      const step = steps[calls++];
      if (!step) throw new Error('unexpected extra wait() call');
      return step(handlers, () => fire());
    },
    async release() {
      throw new Error('not used');
    },
  };
  const config: AgentConfig = {
    url: 'https://m',
    caBundle: '',
    podName: 'job-a-x1',
    podNamespace: 'default',
    podUid: 'uid-1',
    waitTimeoutMs,
    runDir: '/run',
    tokenFile: '/token',
    grantFile: '/run/grant.json',
  };
  const run = runWait(config, {
    client,
    readToken: () => 'tok',
    writeGrantFile: (c) => written.push(c),
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    now: () => 1000,
    random: () => 0,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    setTimer: (ms, f) => {
      timers.push(ms);
      fire = f;
      return () => {};
    },
    wallClock: () => clock.now,
    waitBeganAt: () => clock.began,
  });
  return { run, out, err, sleeps, written, timers, calls: () => calls };
}

const emit =
  (events: WaitEvent[], end: AgentCallResult<void> = { kind: 'network', reason: 'stream ended' }): Step =>
  (h) => {
    h.onOpen?.();
    for (const e of events) if (h.onEvent(e)) return { kind: 'ok', value: undefined };
    return end;
  };

describe('runWait', () => {
  it('logs an outage once, backs off, and resets the backoff after the manager talks again', async () => {
    const g = grant(SEM, 3);
    const h = harness([
      () => ({ kind: 'network', reason: 'ECONNREFUSED' }),
      () => ({ kind: 'network', reason: 'ECONNREFUSED' }),
      () => ({ kind: 'http', status: 503, code: '', message: 'x' }),
      emit([standing('queued', 1)]),
      emit([
        { type: 'granted', grant: g },
        { type: 'done', grants: [g] },
      ]),
    ]);
    expect(await h.run).toBe(0);
    expect(h.err).toEqual([
      'manager unreachable (ECONNREFUSED), retrying',
      'reconnected to the manager after 0ms',
      'manager unreachable (stream ended), retrying',
      'reconnected to the manager after 0ms',
    ]);
    expect(h.sleeps).toEqual([100, 100, 200, 100]);
    expect(h.written).toHaveLength(1);
    expect(h.written[0]?.token).toBe(3);
  });

  it('gives up after three 401s with exit 3', async () => {
    const unauthorized: Step = () => ({ kind: 'http', status: 401, code: 'KDR_X', message: 'bad token' });
    const h = harness([unauthorized, unauthorized, unauthorized]);
    expect(await h.run).toBe(3);
    expect(h.calls()).toBe(3);
    expect(h.err.at(-1)).toBe('konductor-wait: the manager rejected the request (HTTP 401 KDR_X: bad token)');
  });

  /** Queued, then the wait-timeout fires. */
  const queuedThenTimeout: Step = (handlers, fireTimeout) => {
    handlers.onEvent(standing('queued', 2));
    fireTimeout();
    return { kind: 'aborted' };
  };

  it('exits 2 with the primitive it waited for when the timeout fires', async () => {
    const h = harness([queuedThenTimeout], 30_000);
    expect(await h.run).toBe(2);
    expect(h.err).toEqual([
      'konductor-wait: gave up waiting for semaphore default/batch-slots after 30s (konductor.io/wait-timeout)',
    ]);
    expect(h.written).toHaveLength(0);
  });

  it('counts the wait-timeout from the first start of konductor-wait in the pod, not from a restart', async () => {
    // Restarted 20 s after the wait began (kept in the shared emptyDir): 10 s of a 30 s timeout are left.
    const h = harness([queuedThenTimeout], 30_000, { began: 50_000, now: 70_000 });
    expect(await h.run).toBe(2);
    expect(h.timers).toEqual([10_000]);
  });

  it('exits 2 at once when it restarts after its wait-timeout ran out', async () => {
    const h = harness([], 30_000, {
      began: Date.parse('2030-01-01T00:00:00Z'),
      now: Date.parse('2030-01-01T00:00:31Z'),
    });
    expect(await h.run).toBe(2);
    expect(h.calls()).toBe(0);
    expect(h.err).toEqual([
      'konductor-wait: gave up waiting after 30s (konductor.io/wait-timeout): the wait began at ' +
        '2030-01-01T00:00:00.000Z, before konductor-wait restarted',
    ]);
  });

  it('exits 1 and writes nothing when the manager reports a failure', async () => {
    const h = harness([
      emit([{ type: 'failed', reason: 'PodTerminating', message: 'the pod is being deleted' }]),
    ]);
    expect(await h.run).toBe(1);
    expect(h.err).toEqual(['konductor-wait: the pod is being deleted (PodTerminating)']);
    expect(h.written).toHaveLength(0);
  });
});
