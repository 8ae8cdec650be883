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
import {
  type AdmissionDeps,
  type AdmissionReview,
  admissionReviewProblem,
  reviewAdmission,
} from './admission.ts';

/** Big enough for any pod the API server accepts (etcd's default request limit is 1.5 MiB). */
export const MUTATE_BODY_LIMIT = 10 * 1024 * 1024;

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
}

/** A bare fastify instance, not listening. Register route plugins on it, then listen or inject. */
export function buildServer(opts: BuildServerOptions = {}): FastifyInstance {
  const base = {
    ...(opts.loggerInstance ? { loggerInstance: opts.loggerInstance } : { logger: opts.logger ?? false }),
    logController: new LogController({ disableRequestLogging: !opts.requestLogging }),
    // The API server keeps webhook connections alive; make sure an idle one outlives its reuse window.
    keepAliveTimeout: 75_000,
    return503OnClosing: true,
  };
  const app = opts.httpsOptions ? Fastify({ ...base, https: opts.httpsOptions }) : Fastify(base);
  return app as unknown as FastifyInstance;
}

export interface MutateRoutesOptions extends AdmissionDeps {
  /** Register GET /healthz too (default true); turn off when another plugin owns it. */
  healthz?: boolean;
  /** Called after each AdmissionReview is answered (metrics): the review, its response, seconds taken. */
  onReviewed?: (review: unknown, response: AdmissionReview['response'], seconds: number) => void;
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
    ...(opts.lookupTimeoutMs !== undefined ? { lookupTimeoutMs: opts.lookupTimeoutMs } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  };

  // Encapsulated: applies to the routes of this plugin only (body parsing errors included).
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
    if (status >= 400 && status < 500) {
      request.log.info({ code: err.code, reason: err.message }, 'rejected malformed admission request');
      const body: BadRequestBody = {
        error: status === 400 ? 'BadRequest' : httpReason(status),
        code: err.code ?? 'KDR_WEBHOOK_BAD_REQUEST',
        message: err.message,
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
    return reply
      .code(500)
      .send({ error: 'InternalError', code: 'KDR_WEBHOOK_INTERNAL', message: err.message });
  });

  app.post(MUTATE_PATH, { bodyLimit: MUTATE_BODY_LIMIT }, async (request, reply) => {
    const problem = admissionReviewProblem(request.body);
    if (problem !== null) {
      const body: BadRequestBody = {
        error: 'BadRequest',
        code: 'KDR_WEBHOOK_NOT_ADMISSION_REVIEW',
        message: problem,
      };
      request.log.info({ reason: problem }, 'rejected request that is not an AdmissionReview');
      return reply.code(400).send(body);
    }
    const started = performance.now();
    const review = await reviewAdmission(request.body as AdmissionReview, deps);
    const res = review.response;
    opts.onReviewed?.(request.body, res, (performance.now() - started) / 1000);
    if (res && !res.allowed) {
      request.log.info({ uid: res.uid, reason: res.status?.message }, 'admission denied');
    }
    return reply.code(200).send(review);
  });

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
