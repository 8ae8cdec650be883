/**
 * The manager's fastify instance and the admission routes (DESIGN §5).
 *
 * Composable: `buildServer()` makes a bare fastify instance (HTTPS when `httpsOptions` is given; never
 * listening), `mutateRoutes` is a fastify plugin with `POST /mutate` and `GET /healthz`, and other parts
 * (the agent API) register their own plugins on the same instance. `buildWebhookApp()` is the two together.
 *
 * Bad input never crashes and never hangs: a malformed body or something that is not an
 * `admission.k8s.io/v1` AdmissionReview gets HTTP 400 with a JSON reason; an error while deciding a
 * well-formed review becomes an explicit denial (HTTP 200, `allowed: false`) carrying the message.
 */
import type { SecureContextOptions } from 'node:tls';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import type { AnnotationProblem } from '../api/annotations.ts';
import { errorBody, konductorError } from '../api/errors.ts';
import { type AdmissionDeps, decideAdmission } from './admission.ts';
import { type AdmissionReview, admissionReviewProblem } from './admissionReview.ts';

/**
 * Big enough for every AdmissionReview the API server can send: it stores objects of at most 1.5 MiB (etcd's
 * default request limit) and takes request bodies of at most 3 MiB, so a CREATE review carries at most one
 * ~1.5 MiB pod and an UPDATE (sent only when a pod's konductor metadata changes) two. A large real pod —
 * test/fixtures/admission/pod-big.json, 10 containers with 500 env variables — is a 47 KiB review.
 */
export const MUTATE_BODY_LIMIT = 3 * 1024 * 1024 + 64 * 1024;

/**
 * AdmissionReview bytes read and decided at once (declared Content-Length, or the body limit when the
 * length is not declared). Beyond, a request gets 429 before its body is read: many large or slow bodies
 * cannot take the manager's memory. 8 MiB is ~170 reviews of pod-big.json's size at once.
 */
export const MUTATE_INFLIGHT_BYTES = 8 * 1024 * 1024;

export const MUTATE_PATH = '/mutate';
export const HEALTHZ_PATH = '/healthz';

export interface BuildServerOptions {
  /** fastify's logger option (true, false, or pino options). Ignored when loggerInstance is set. */
  logger?: FastifyServerOptions['logger'];
  /** An existing pino (or pino-compatible) logger. */
  loggerInstance?: FastifyBaseLogger;
  /** TLS options (cert, key, ...) to serve HTTPS; absent = plain HTTP (tests with app.inject()). */
  httpsOptions?: SecureContextOptions & { requestCert?: boolean; rejectUnauthorized?: boolean };
  /** Log one line per request (default false: the webhook's hot path stays quiet). */
  requestLogging?: boolean;
  /** Timeouts and the connection cap (defaults: SERVER_LIMITS). */
  limits?: Partial<ServerLimits>;
}

/** What one client may take of an HTTPS listener (docs/security.md). */
export interface ServerLimits {
  /** A request's headers must arrive within this (slowloris). */
  headersTimeoutMs: number;
  /** The whole request (headers and body) must arrive within this; a streamed response is not limited. */
  requestTimeoutMs: number;
  /** The TLS handshake must complete within this. */
  handshakeTimeoutMs: number;
  /** Open connections at most; more are closed at once (0: no cap). */
  maxConnections: number;
}

export const SERVER_LIMITS: Readonly<ServerLimits> = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  maxConnections: 0,
});

/** A bare fastify instance, not listening. Register route plugins on it, then listen or inject. */
export function buildServer(opts: BuildServerOptions = {}): FastifyInstance {
  const limits = { ...SERVER_LIMITS, ...opts.limits };
  const base = {
    ...(opts.loggerInstance ? { loggerInstance: opts.loggerInstance } : { logger: opts.logger ?? false }),
    logController: new LogController({ disableRequestLogging: !opts.requestLogging }),
    // The API server keeps webhook connections alive; make sure an idle one outlives its reuse window.
    keepAliveTimeout: 75_000,
    requestTimeout: limits.requestTimeoutMs,
    return503OnClosing: true,
  };
  const app = opts.httpsOptions
    ? Fastify({
        ...base,
        // node:https takes the http.Server options too: headers deadline, and how often the deadlines are
        // checked (default every 30 s, which would let a slow client hold on 3x longer than the limit).
        https: {
          ...opts.httpsOptions,
          headersTimeout: limits.headersTimeoutMs,
          requestTimeout: limits.requestTimeoutMs,
          connectionsCheckingInterval: Math.min(1000, limits.requestTimeoutMs),
          handshakeTimeout: limits.handshakeTimeoutMs,
        } as SecureContextOptions,
      })
    : Fastify(base);
  if (limits.maxConnections > 0) app.server.maxConnections = limits.maxConnections;
  return app as unknown as FastifyInstance;
}

export interface MutateRoutesOptions extends AdmissionDeps {
  /** Register GET /healthz too (default true); turn off when another plugin owns it. */
  healthz?: boolean;
  /** AdmissionReview bytes in flight at most (default MUTATE_INFLIGHT_BYTES). */
  maxInflightBytes?: number;
  /**
   * Called after each AdmissionReview is answered (metrics): its response, seconds taken, and the annotation
   * problems a denial names (as the decision found them: nothing is parsed twice).
   */
  onReviewed?: (
    response: AdmissionReview['response'],
    seconds: number,
    problems: readonly AnnotationProblem[],
  ) => void;
}

interface BadRequestBody {
  error: string;
  code: string;
  message: string;
}

/** fastify plugin: POST /mutate (AdmissionReview in, AdmissionReview out) and GET /healthz. */
export const mutateRoutes: FastifyPluginAsync<MutateRoutesOptions> = async (app, opts) => {
  const deps: AdmissionDeps = {
    injection: opts.injection,
    ...(opts.primitiveExists ? { primitiveExists: opts.primitiveExists } : {}),
    ...(opts.semaphorePermits ? { semaphorePermits: opts.semaphorePermits } : {}),
    ...(opts.lookupTimeoutMs !== undefined ? { lookupTimeoutMs: opts.lookupTimeoutMs } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  };

  // Encapsulated: applies to the routes of this plugin only (body parsing errors included).
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
    if (status >= 400 && status < 500) {
      request.log.info({ code: err.code, reason: err.message }, 'rejected malformed admission request');
      // fastify's own code (FST_ERR_...) when it raised the error, else ours
      const body: BadRequestBody = {
        error: status === 400 ? 'BadRequest' : httpReason(status),
        ...(err.code
          ? { code: err.code, message: err.message }
          : errorBody(konductorError('KDR_WEBHOOK_BAD_REQUEST', err.message))),
      };
      return reply.code(status).send(body);
    }
    request.log.error({ err }, 'admission handler failed');
    const uid = uidOf(request.body);
    if (uid !== null) {
      // A well-formed review: answer it, as an explicit denial.
      const review: AdmissionReview = {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        response: {
          uid,
          allowed: false,
          status: {
            status: 'Failure',
            code: 500,
            reason: 'InternalError',
            message: `konductor webhook failed: ${err.message}`,
          },
        },
      };
      return reply.code(200).send(review);
    }
    const internal = konductorError('KDR_WEBHOOK_INTERNAL', err.message);
    return reply.code(internal.statusCode).send({ error: 'InternalError', ...errorBody(internal) });
  });

  // Memory: the bytes of the reviews being read and decided are budgeted; over budget, 429 before reading.
  const budget = { max: opts.maxInflightBytes ?? MUTATE_INFLIGHT_BYTES, used: 0 };
  const charged = new WeakMap<FastifyRequest, number>();
  const onRequest = async (request: FastifyRequest, reply: FastifyReply) => {
    const declared = Number(request.headers['content-length']);
    const bytes = Number.isFinite(declared) && declared >= 0 ? declared : MUTATE_BODY_LIMIT;
    if (budget.used > 0 && budget.used + bytes > budget.max) {
      request.log.warn({ inFlightBytes: budget.used, bytes }, 'admission busy: request refused');
      const busy = konductorError('KDR_WEBHOOK_BUSY', budget.used);
      return reply
        .code(busy.statusCode)
        .header('retry-after', '1')
        .send({ error: 'TooManyRequests', ...errorBody(busy) });
    }
    budget.used += bytes;
    charged.set(request, bytes);
  };
  const onResponse = async (request: FastifyRequest) => {
    const bytes = charged.get(request);
    if (bytes !== undefined) {
      budget.used -= bytes;
      charged.delete(request);
    }
  };

  app.post(
    MUTATE_PATH,
    { bodyLimit: MUTATE_BODY_LIMIT, onRequest, onResponse, onRequestAbort: onResponse },
    async (request, reply) => {
      const problem = admissionReviewProblem(request.body);
      if (problem !== null) {
        const body: BadRequestBody = {
          error: 'BadRequest',
          ...errorBody(konductorError('KDR_WEBHOOK_NOT_ADMISSION_REVIEW', problem)),
        };
        request.log.info({ reason: problem }, 'rejected request that is not an AdmissionReview');
        return reply.code(400).send(body);
      }
      const started = performance.now();
      const { review, problems } = await decideAdmission(request.body as AdmissionReview, deps);
      const res = review.response;
      opts.onReviewed?.(res, (performance.now() - started) / 1000, problems);
      if (res && !res.allowed) {
        request.log.info({ uid: res.uid, reason: res.status?.message }, 'admission denied');
      }
      return reply.code(200).send(review);
    },
  );

  if (opts.healthz !== false) {
    app.get(HEALTHZ_PATH, async () => ({ status: 'ok' }));
  }
};

export interface BuildWebhookAppOptions extends BuildServerOptions, MutateRoutesOptions {}

/** buildServer + mutateRoutes; not listening (tests use app.inject()). */
export async function buildWebhookApp(opts: BuildWebhookAppOptions): Promise<FastifyInstance> {
  const { logger, loggerInstance, httpsOptions, requestLogging, ...routes } = opts;
  const app = buildServer({
    ...(logger !== undefined ? { logger } : {}),
    ...(loggerInstance ? { loggerInstance } : {}),
    ...(httpsOptions ? { httpsOptions } : {}),
    ...(requestLogging !== undefined ? { requestLogging } : {}),
  });
  await app.register(mutateRoutes, routes);
  return app;
}

function uidOf(body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return null;
  const req = (body as { request?: unknown }).request;
  if (typeof req !== 'object' || req === null) return null;
  const uid = (req as { uid?: unknown }).uid;
  return typeof uid === 'string' && uid !== '' ? uid : null;
}

function httpReason(status: number): string {
  switch (status) {
    case 404:
      return 'NotFound';
    case 405:
      return 'MethodNotAllowed';
    case 413:
      return 'RequestEntityTooLarge';
    case 415:
      return 'UnsupportedMediaType';
    default:
      return 'BadRequest';
  }
}
