/**
 * The agent API route (controller/agentApi.ts) through fastify's inject(): authentication answers, the pod
 * that never shows up, the NDJSON wait stream from first standing to verdict (the state machine itself is
 * test/unit/wait-stream.test.ts), a stream pushed out by newer ones, and the release hint. The controller is
 * plain data here (what it reads of Kubernetes is covered against the real API server in test/integration/);
 * the authenticator answers from a table of tokens.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { konductorError } from '../../api/errors.ts';
import {
  AGENT_API,
  decodeWaitEvent,
  type Grant,
  NDJSON_CONTENT_TYPE,
  type WaitEvent,
} from '../../api/protocol.ts';
import { type AgentApiController, type AgentApiOptions, agentApiRoutes } from '../../controller/agentApi.ts';
import type { PodIdentity } from '../../controller/agentAuth.ts';
import type { ReleaseCheck } from '../../controller/agentView.ts';
import type { PodStanding } from '../../controller/arbitration/waitStream.ts';
import { buildServer } from '../../webhook/server.ts';

const IDENTITY: PodIdentity = { namespace: 'ns', pod: 'p', uid: 'u', serviceAccount: 'default' };
const GOOD = 'Bearer good';

const grant = (token: number): Grant => ({
  kind: 'Semaphore',
  name: 's',
  namespace: 'ns',
  token,
  grantedAt: '2026-01-01T00:00:00Z',
  pod: 'p',
  uid: 'u',
});
const waitingAt = (position: number): PodStanding => ({
  pod: { stages: [{}] },
  stages: [
    {
      state: 'waiting',
      standing: {
        primitive: { kind: 'Semaphore', name: 's', namespace: 'ns' },
        position,
        queueLength: 2,
        message: '',
      },
    },
  ],
});
const grantedNow = (token: number): PodStanding => ({
  pod: { stages: [{}] },
  stages: [{ state: 'passed', grant: grant(token) }],
});

/** A controller as plain data: the pod's standing, set by the test, announced to subscribers. */
class ScriptedController implements AgentApiController {
  standingNow: PodStanding | undefined;
  known = true;
  recheckAnswer: ReleaseCheck | Error = { released: [], held: [] };
  readonly listeners = new Set<() => void>();
  readonly podIndex = { get: (uid: string) => (this.known && uid === IDENTITY.uid ? {} : undefined) };

  subscribe(_uid: string, fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
  standing(uid: string): PodStanding | undefined {
    return uid === IDENTITY.uid ? this.standingNow : undefined;
  }
  async recheck(): Promise<ReleaseCheck> {
    if (this.recheckAnswer instanceof Error) throw this.recheckAnswer;
    return this.recheckAnswer;
  }
  /** Sets the standing and tells the subscribers, as a cache event does. */
  change(next: PodStanding | undefined): void {
    this.standingNow = next;
    for (const fn of [...this.listeners]) fn();
  }
}

const authenticator: AgentApiOptions['authenticator'] = {
  async authenticate(authorization) {
    if (authorization === undefined) throw konductorError('KDR_AGENT_NO_TOKEN');
    if (authorization === 'Bearer not-a-pod') throw konductorError('KDR_AGENT_NOT_POD_TOKEN');
    if (authorization === 'Bearer broken') throw new Error('review exploded');
    if (authorization !== GOOD) throw konductorError('KDR_AGENT_UNAUTHENTICATED', 'unknown token');
    return IDENTITY;
  },
};

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function serve(controller: ScriptedController, extra: Partial<AgentApiOptions> = {}) {
  app = buildServer();
  await app.register(agentApiRoutes, { controller, authenticator, podAppearTimeoutMs: 50, ...extra });
  await app.ready();
  return app;
}

const events = (body: string): WaitEvent[] =>
  body
    .split('\n')
    .map(decodeWaitEvent)
    .filter((e): e is WaitEvent => e !== null);

/** Waits until the stream has subscribed (the route evaluates once, then on every change). */
async function subscribed(controller: ScriptedController): Promise<void> {
  while (controller.listeners.size === 0) await new Promise((r) => setImmediate(r));
}

describe('POST /v1/wait and /v1/release through inject()', () => {
  it('answers 401 and 403 with the catalogue code, and a failing authenticator with 500', async () => {
    const server = await serve(new ScriptedController());
    const none = await server.inject({ method: 'POST', url: AGENT_API.wait.path, payload: {} });
    expect(none.statusCode).toBe(401);
    expect(none.json()).toMatchObject({ code: 'KDR_AGENT_NO_TOKEN' });
    const notPod = await server.inject({
      method: 'POST',
      url: AGENT_API.release.path,
      headers: { authorization: 'Bearer not-a-pod' },
      payload: {},
    });
    expect(notPod.statusCode).toBe(403);
    expect(notPod.json()).toMatchObject({ code: 'KDR_AGENT_NOT_POD_TOKEN' });
    const broken = await server.inject({
      method: 'POST',
      url: AGENT_API.wait.path,
      headers: { authorization: 'Bearer broken' },
      payload: {},
    });
    expect(broken.statusCode).toBe(500);
    expect(broken.json()).toMatchObject({
      code: 'KDR_AGENT_AUTH_FAILED',
      message: expect.stringContaining('exploded'),
    });
  });

  it('answers 404 when the pod does not appear in the cache in time', async () => {
    const controller = new ScriptedController();
    controller.known = false;
    const res = await (await serve(controller)).inject({
      method: 'POST',
      url: AGENT_API.wait.path,
      headers: { authorization: GOOD },
      payload: {},
    });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({
      code: 'KDR_AGENT_POD_UNKNOWN',
      message: expect.stringContaining('ns/p'),
    });
  });

  it('streams queued, progress, granted and done as the standing changes, then ends', async () => {
    const controller = new ScriptedController();
    controller.standingNow = waitingAt(2);
    const server = await serve(controller);
    const pending = server.inject({
      method: 'POST',
      url: AGENT_API.wait.path,
      headers: { authorization: GOOD },
      payload: {},
    });
    await subscribed(controller);
    controller.change(waitingAt(2)); // unchanged: nothing sent
    controller.change(waitingAt(1));
    controller.change(grantedNow(5));
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(NDJSON_CONTENT_TYPE);
    expect(events(res.body).map((e) => e.type)).toEqual(['queued', 'progress', 'granted', 'done']);
    expect(events(res.body).at(-1)).toEqual({ type: 'done', grants: [grant(5)] });
    expect(controller.listeners.size).toBe(0);
  });

  it('fails the stream when the pod leaves the cache', async () => {
    const controller = new ScriptedController();
    controller.standingNow = waitingAt(1);
    const server = await serve(controller);
    const pending = server.inject({
      method: 'POST',
      url: AGENT_API.wait.path,
      headers: { authorization: GOOD },
      payload: {},
    });
    await subscribed(controller);
    controller.change(undefined);
    const res = await pending;
    expect(events(res.body).at(-1)).toEqual({
      type: 'failed',
      reason: 'PodTerminating',
      message: 'pod ns/p is gone',
    });
  });

  it('a newer stream of the same pod beyond the cap ends the oldest without a verdict', async () => {
    const controller = new ScriptedController();
    controller.standingNow = waitingAt(1);
    const server = await serve(controller, { maxWaitStreamsPerPod: 1 });
    const request = {
      method: 'POST' as const,
      url: AGENT_API.wait.path,
      headers: { authorization: GOOD },
      payload: {},
    };
    const first = server.inject(request);
    await subscribed(controller);
    const second = server.inject(request);
    const pushedOut = await first;
    expect(events(pushedOut.body).map((e) => e.type)).toEqual(['queued']);
    controller.change(grantedNow(1));
    expect(events((await second).body).map((e) => e.type)).toEqual(['queued', 'granted', 'done']);
  });

  it('release answers what goes and what stays, and 503 when the pod cannot be read', async () => {
    const controller = new ScriptedController();
    const check: ReleaseCheck = {
      released: [{ kind: 'Semaphore', name: 's', namespace: 'ns', token: 5 }],
      held: [],
    };
    controller.recheckAnswer = check;
    const server = await serve(controller);
    const request = {
      method: 'POST' as const,
      url: AGENT_API.release.path,
      headers: { authorization: GOOD },
      payload: { reason: 'Completed' },
    };
    const ok = await server.inject(request);
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual(check);
    controller.recheckAnswer = new Error('connection refused');
    const unavailable = await server.inject(request);
    expect(unavailable.statusCode).toBe(503);
    expect(unavailable.json()).toMatchObject({ code: 'KDR_AGENT_RELEASE_UNAVAILABLE' });
  });
});
