/**
 * The agent API (DESIGN §4), a fastify plugin served on the manager's HTTPS port next to /mutate.
 * The caller is identified only by its projected service-account token (TokenReview, audience konductor):
 * the pod bound to the token is the only pod it can wait for or release.
 *
 *   POST /v1/wait     NDJSON stream: queued/progress -> granted (per primitive) -> done | failed
 *   POST /v1/release  a hint that the calling pod stops: the manager reads the pod from the API server at
 *                     once and re-arbitrates; what the pod holds goes back only when the API says the pod is
 *                     gone or its main containers stopped (anyone who can mint a token for a pod can call it;
 *                     it must not be able to release a running pod's grants).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody, isKonductorError, konductorError } from '../api/errors.ts';
import {
  AGENT_API,
  encodeWaitEvent,
  HEARTBEAT_INTERVAL_MS,
  NDJSON_CONTENT_TYPE,
  type WaitEvent,
} from '../api/protocol.ts';
import type { AgentAuthenticator, PodIdentity } from './agentAuth.ts';
import type { ReleaseCheck } from './agentView.ts';
import { type PodStanding, stepWaitStream, WAIT_STREAM_START } from './arbitration/waitStream.ts';
import type { ControllerMetrics } from './metrics.ts';
import { WaitStreamLimiter } from './waitStreams.ts';

/** What the agent API reads of the controller (KonductorController is one). */
export interface AgentApiController {
  /** Whether the pod is in the cache (yet). */
  podIndex: { get(uid: string): unknown };
  /** Calls `fn` on every change that may affect the pod's standing; returns the unsubscribe function. */
  subscribe(uid: string, fn: () => void): () => void;
  standing(uid: string): PodStanding | undefined;
  recheck(pod: { namespace: string; name: string; uid: string }): Promise<ReleaseCheck>;
}

export interface AgentApiOptions {
  controller: AgentApiController;
  /** Who the caller's token is bound to (AgentAuthenticator, which asks the API server's TokenReview). */
  authenticator: Pick<AgentAuthenticator, 'authenticate'>;
  metrics?: ControllerMetrics;
  /** How long a wait request may wait for the pod to appear in the cache. */
  podAppearTimeoutMs?: number;
  /** Wait streams open per pod at most; a newer one closes the oldest (default MAX_WAIT_STREAMS_PER_POD). */
  maxWaitStreamsPerPod?: number;
}

async function authenticate(
  opts: AgentApiOptions,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<PodIdentity | undefined> {
  try {
    return await opts.authenticator.authenticate(req.headers.authorization);
  } catch (err) {
    const e = isKonductorError(err) ? err : konductorError('KDR_AGENT_AUTH_FAILED', (err as Error).message);
    const status = Math.min(e.statusCode, 500);
    req.log.info({ code: e.code, status }, 'agent request rejected');
    await reply.code(status).send(errorBody(e));
    return undefined;
  }
}

/** Waits until the pod is in the controller's cache (it may lag the kubelet by a watch delivery). */
function podAppears(controller: AgentApiController, uid: string, timeoutMs: number): Promise<boolean> {
  if (controller.podIndex.get(uid)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      unsubscribe();
      resolve(controller.podIndex.get(uid) !== undefined);
    }, timeoutMs);
    const unsubscribe = controller.subscribe(uid, () => {
      if (controller.podIndex.get(uid)) {
        clearTimeout(timer);
        unsubscribe();
        resolve(true);
      }
    });
  });
}

export const agentApiRoutes: FastifyPluginAsync<AgentApiOptions> = async (app, opts) => {
  const { controller } = opts;
  const streams = new WaitStreamLimiter(opts.maxWaitStreamsPerPod);

  app.post(AGENT_API.wait.path, async (req, reply) => {
    const identity = await authenticate(opts, req, reply);
    if (!identity) return reply;
    opts.metrics?.agentWaits.inc();
    if (!(await podAppears(controller, identity.uid, opts.podAppearTimeoutMs ?? 5000))) {
      const e = konductorError('KDR_AGENT_POD_UNKNOWN', identity.namespace, identity.pod);
      return reply.code(e.statusCode).send(errorBody(e));
    }
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': NDJSON_CONTENT_TYPE, 'cache-control': 'no-store' });
    raw.flushHeaders?.();
    let state = WAIT_STREAM_START;
    let closed = false;
    const send = (ev: WaitEvent) => {
      if (!closed) raw.write(encodeWaitEvent(ev));
    };
    const pod = { namespace: identity.namespace, name: identity.pod };
    const evaluate = () => {
      if (closed) return;
      const step = stepWaitStream(state, controller.standing(identity.uid), pod);
      state = step.state;
      for (const ev of step.events) send(ev);
      if (step.end) {
        cleanup();
        raw.end();
      }
    };
    const unsubscribe = controller.subscribe(identity.uid, evaluate);
    const heartbeat = setInterval(() => send({ type: 'heartbeat' }), HEARTBEAT_INTERVAL_MS);
    // Pushed out by newer streams of the same pod: end without a verdict (an agent reconnects).
    const leave = streams.admit(identity.uid, () => {
      cleanup();
      raw.end();
    });
    const cleanup = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      unsubscribe();
      leave();
    };
    raw.on('close', cleanup);
    evaluate();
    return reply;
  });

  app.post(AGENT_API.release.path, async (req, reply) => {
    const identity = await authenticate(opts, req, reply);
    if (!identity) return reply;
    let check: ReleaseCheck;
    try {
      check = await controller.recheck({
        namespace: identity.namespace,
        name: identity.pod,
        uid: identity.uid,
      });
    } catch (err) {
      req.log.warn({ err }, 'release: cannot read the pod');
      const e = konductorError('KDR_AGENT_RELEASE_UNAVAILABLE', identity.namespace, identity.pod);
      return reply.code(e.statusCode).send(errorBody(e));
    }
    req.log.info(
      {
        pod: `${identity.namespace}/${identity.pod}`,
        released: check.released.length,
        held: check.held.length,
      },
      'release hint',
    );
    return reply.send(check);
  });
};
