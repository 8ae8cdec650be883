/**
 * Bad input at scale against a running manager: generated AdmissionReviews (malformed, truncated, huge,
 * wrong types, every annotation edge case) on the admission port, and agent API requests (bad tokens,
 * foreign pods, slow bodies, many streams) on the agent port, while well-formed AdmissionReviews are timed.
 *
 * Every answer must be clear: a 4xx with a reason, or the limits docs/security.md documents (429 with
 * Retry-After on admission's byte budget, 503 when TokenReviews queue up); an AdmissionReview answer must be a
 * review for the same uid that allows, or denies with a 4xx code and a message (a denial with code 500 means
 * the handler failed). No 5xx, no reset connection, no crash; memory back to baseline afterwards.
 *
 * The generators are pure (seeded); `runFlood` sends them.
 */
import { readFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { ROOT } from '../scripts/build.ts';
import type { Rng } from './random.ts';

export interface FloodCase {
  category: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Send the body this slowly: `chunks` pieces, one every `everyMs`. */
  slow?: { chunks: number; everyMs: number };
  /** What a clear answer is for this case; returns a problem or undefined. */
  judge: (status: number, body: string) => string | undefined;
  /**
   * The body is larger than the server's documented limit: the server answers 413 before reading it and
   * closes the connection (fastify does after an error), so the client may see the reset while still sending,
   * before the answer. That reset is the refusal, not a failure.
   */
  overLimit?: boolean;
}

export const ADMISSION_FIXTURE = join(ROOT, 'test', 'fixtures', 'admission', 'pod-job.json');

type Review = {
  apiVersion: string;
  kind: string;
  request: {
    uid: string;
    operation: string;
    namespace: string;
    object: {
      metadata: { annotations?: Record<string, unknown>; [k: string]: unknown };
      spec: Record<string, unknown>;
    };
    oldObject?: unknown;
    [k: string]: unknown;
  };
};

export function baseReview(namespace: string): Review {
  const r = JSON.parse(readFileSync(ADMISSION_FIXTURE, 'utf8')) as Review;
  r.request.namespace = namespace;
  (r.request.object.metadata as Record<string, unknown>).namespace = namespace;
  return r;
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const JSON_HEADERS = { 'content-type': 'application/json' };

/** 4xx with a reason (or the documented 429). */
const clear4xx = (status: number, body: string) =>
  (status >= 400 && status < 500 && body.length > 0) || status === 429
    ? undefined
    : `expected a 4xx with a reason, got ${status} ${body.slice(0, 120)}`;

/** An AdmissionReview answer for `uid`: allowed, or denied with a 4xx code and a message (or a 4xx/429). */
const reviewAnswer = (uid: string) => (status: number, body: string) => {
  if (status !== 200) return clear4xx(status, body);
  try {
    const r = JSON.parse(body) as {
      response?: { uid?: string; allowed?: boolean; status?: { code?: number; message?: string } };
    };
    if (r.response?.uid !== uid) return `answer for uid ${r.response?.uid}, not ${uid}`;
    if (r.response.allowed === true) return undefined;
    const code = r.response.status?.code ?? 0;
    if (code >= 400 && code < 500 && r.response.status?.message) return undefined;
    return `denied with code ${code}: ${r.response.status?.message?.slice(0, 160)}`;
  } catch {
    return `200 that is not JSON: ${body.slice(0, 80)}`;
  }
};

/** Annotation values at and past every edge the parser knows. */
export const ANNOTATION_EDGES: readonly Record<string, unknown>[] = [
  { 'konductor.io/semaphore': '' },
  { 'konductor.io/semaphore': ' slots ' },
  { 'konductor.io/semaphore': 'UPPER' },
  { 'konductor.io/semaphore': 'a'.repeat(253) },
  { 'konductor.io/semaphore': 'a'.repeat(254) },
  { 'konductor.io/semaphore': 'x..y' },
  { 'konductor.io/semaphore': '-x' },
  { 'konductor.io/semaphore': 'ünïcode' },
  { 'konductor.io/semaphore': 'x', 'konductor.io/permits': '0' },
  { 'konductor.io/semaphore': 'x', 'konductor.io/permits': '-1' },
  { 'konductor.io/semaphore': 'x', 'konductor.io/permits': '1000' },
  { 'konductor.io/semaphore': 'x', 'konductor.io/permits': '1001' },
  { 'konductor.io/semaphore': 'x', 'konductor.io/permits': '1e3' },
  { 'konductor.io/semaphore': 'x', 'konductor.io/permits': '2.5' },
  { 'konductor.io/semaphore': 'x', 'konductor.io/permits': '0x10' },
  { 'konductor.io/semaphore': 'x', 'konductor.io/permits': '99999999999999999999999' },
  { 'konductor.io/permits': '2' },
  { 'konductor.io/lease': 'x', 'konductor.io/priority': '1000000000' },
  { 'konductor.io/lease': 'x', 'konductor.io/priority': '1000000001' },
  { 'konductor.io/lease': 'x', 'konductor.io/priority': '-1000000001' },
  { 'konductor.io/lease': 'x', 'konductor.io/priority': 'high' },
  { 'konductor.io/lease': 'x', 'konductor.io/priority': '' },
  { 'konductor.io/lease': 'x', 'konductor.io/wait-timeout': '8760h' },
  { 'konductor.io/lease': 'x', 'konductor.io/wait-timeout': '8760h0m1s' },
  { 'konductor.io/lease': 'x', 'konductor.io/wait-timeout': '596h31m24s' },
  { 'konductor.io/lease': 'x', 'konductor.io/wait-timeout': '0s' },
  { 'konductor.io/lease': 'x', 'konductor.io/wait-timeout': '-5s' },
  { 'konductor.io/lease': 'x', 'konductor.io/wait-timeout': '1.5h' },
  { 'konductor.io/lease': 'x', 'konductor.io/wait-timeout': 'P1D' },
  { 'konductor.io/lease': 'x', 'konductor.io/wait-timeout': '9'.repeat(400) + 'h' },
  {
    'konductor.io/barrier': 'b',
    'konductor.io/gate': 'g',
    'konductor.io/lease': 'l',
    'konductor.io/semaphore': 's',
  },
  { 'konductor.io/unknown': 'x' },
  { 'konductor.io/': 'x' },
  { 'konductor.io/semaphore': 'x', 'konductor.io/injected': 'forged' },
  { 'konductor.io/semaphore': 'x', 'konductor.io/admitted-at': 'not-a-time' },
  { 'konductor.io/gate': 'g', 'konductor.io/gate-readers': '*' },
  { 'konductor.io/semaphore': 12 },
  { 'konductor.io/semaphore': null },
  { 'konductor.io/semaphore': ['x'] },
  { 'konductor.io/semaphore': { name: 'x' } },
  { 'konductor.io/semaphore': true },
];

/** Pod-spec edges: containers that borrow the agent's names, odd shapes. */
const SPEC_EDGES: readonly ((spec: Record<string, unknown>) => void)[] = [
  (s) => {
    s.initContainers = [{ name: 'konductor-wait', image: 'busybox' }];
  },
  (s) => {
    s.initContainers = [{ name: 'konductor-hold', image: 'busybox', restartPolicy: 'Always' }];
  },
  (s) => {
    s.containers = [];
  },
  (s) => {
    s.containers = 'main';
  },
  (s) => {
    s.initContainers = { name: 'x' };
  },
  (s) => {
    s.volumes = [{ name: 'konductor-token', emptyDir: {} }];
  },
  (s) => {
    s.containers = Array.from({ length: 200 }, (_, i) => ({ name: `c${i}`, image: 'busybox' }));
  },
];

function uid(rng: Rng): string {
  const hex = () => rng.int(0, 0xffff).toString(16).padStart(4, '0');
  return `${hex()}${hex()}-${hex()}-4${hex().slice(1)}-8${hex().slice(1)}-${hex()}${hex()}${hex()}`;
}

function reviewCase(category: string, review: Review): FloodCase {
  return {
    category,
    method: 'POST',
    path: '/mutate',
    headers: JSON_HEADERS,
    body: json(review),
    judge: reviewAnswer(review.request.uid),
  };
}

/** `n` admission requests of every kind of bad (and some edge-valid) input. */
export function admissionCases(rng: Rng, n: number, namespace: string): FloodCase[] {
  const base = baseReview(namespace);
  const baseText = JSON.stringify(base);
  const fresh = () => {
    const r = structuredClone(base);
    r.request.uid = uid(rng);
    return r;
  };
  const out: FloodCase[] = [];
  for (let i = 0; i < n; i++) {
    const roll = rng.int(0, 99);
    if (roll < 15) {
      const cut = rng.int(1, baseText.length - 1);
      out.push({
        category: 'truncated',
        method: 'POST',
        path: '/mutate',
        headers: JSON_HEADERS,
        body: Buffer.from(baseText.slice(0, cut)),
        judge: clear4xx,
      });
    } else if (roll < 22) {
      const bytes = Buffer.alloc(rng.int(1, 4096));
      for (let j = 0; j < bytes.length; j++) bytes[j] = rng.int(0, 255);
      out.push({
        category: 'garbage',
        method: 'POST',
        path: '/mutate',
        headers: JSON_HEADERS,
        body: bytes,
        judge: clear4xx,
      });
    } else if (roll < 34) {
      const r = fresh() as unknown as Record<string, unknown>;
      const req = r.request as Record<string, unknown>;
      const mutation = rng.int(0, 11);
      const body: unknown =
        mutation === 0 ? [] : mutation === 1 ? 'review' : mutation === 2 ? 42 : mutation === 3 ? null : r;
      if (mutation === 4) r.kind = 5;
      if (mutation === 5) r.apiVersion = 'admission.k8s.io/v1beta1';
      if (mutation === 6) r.request = [];
      if (mutation === 7) req.uid = 123;
      if (mutation === 8) req.operation = {};
      if (mutation === 9) req.kind = 'Pod';
      if (mutation === 10) delete req.uid;
      if (mutation === 11) req.object = 'pod';
      out.push({
        category: 'wrong-types',
        method: 'POST',
        path: '/mutate',
        headers: JSON_HEADERS,
        body: json(body),
        judge: mutation === 11 ? reviewAnswer(String(req.uid)) : clear4xx,
      });
    } else if (roll < 35) {
      // Past the body limit: 413 before it is read (or 429 from the byte budget).
      out.push({
        category: 'huge',
        method: 'POST',
        path: '/mutate',
        headers: JSON_HEADERS,
        body: Buffer.concat([Buffer.from('{"x":"'), Buffer.alloc(3.5 * 1024 * 1024, 'a'), Buffer.from('"}')]),
        judge: clear4xx,
        overLimit: true,
      });
    } else if (roll < 62) {
      const r = fresh();
      r.request.object.metadata.annotations = { ...rng.pick(ANNOTATION_EDGES) };
      out.push(reviewCase('annotation-edges', r));
    } else if (roll < 70) {
      const r = fresh();
      rng.pick(SPEC_EDGES)(r.request.object.spec);
      out.push(reviewCase('spec-edges', r));
    } else if (roll < 76) {
      const r = fresh();
      r.request.operation = 'UPDATE';
      r.request.oldObject = structuredClone(r.request.object);
      r.request.object.metadata.annotations = { ...rng.pick(ANNOTATION_EDGES) };
      out.push(reviewCase('update', r));
    } else if (roll < 80) {
      const r = fresh();
      const many: Record<string, string> = {};
      for (let j = 0; j < 2000; j++) many[`example.com/k${j}`] = 'v'.repeat(rng.int(0, 50));
      r.request.object.metadata.annotations = { ...many, 'konductor.io/semaphore': 'x' };
      out.push(reviewCase('many-annotations', r));
    } else if (roll < 84) {
      let nested = '1';
      for (let j = 0; j < 3000; j++) nested = `[${nested}]`;
      out.push({
        category: 'deep-nesting',
        method: 'POST',
        path: '/mutate',
        headers: JSON_HEADERS,
        body: Buffer.from(
          `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":${nested}}`,
        ),
        judge: clear4xx,
      });
    } else if (roll < 88) {
      out.push({
        category: 'content-type',
        method: 'POST',
        path: '/mutate',
        headers: {
          'content-type': rng.pick(['text/plain', 'application/xml', 'application/x-www-form-urlencoded']),
        },
        body: Buffer.from(baseText),
        judge: clear4xx,
      });
    } else if (roll < 92) {
      const [method, path] = rng.pick([
        ['GET', '/mutate'],
        ['PUT', '/mutate'],
        ['POST', '/v1/wait'],
        ['POST', '/mutate/../v1/release'],
        ['POST', `/${'a'.repeat(rng.int(1, 4000))}`],
      ] as const);
      out.push({
        category: 'wrong-route',
        method,
        path,
        headers: JSON_HEADERS,
        body: Buffer.from('{}'),
        judge: clear4xx,
      });
    } else {
      const r = fresh();
      (r.request as Record<string, unknown>).kind = {
        group: 'batch',
        version: 'v1',
        kind: rng.pick(['Job', 'CronJob', 'Deployment']),
      };
      r.request.object.metadata.annotations = { ...rng.pick(ANNOTATION_EDGES) };
      out.push(reviewCase('other-kinds', r));
    }
  }
  return out;
}

export interface AgentTokens {
  /** The API server's audience, bound to a pod (refused: audience). */
  ordinary: string;
  /** Audience konductor, bound to a pod konductor does not manage. */
  foreign: string;
}

function b64url(v: unknown): string {
  return Buffer.from(JSON.stringify(v)).toString('base64url');
}

/** A JWT that passes the manager's pre-checks (audience, pod claim, unexpired) but is signed by nobody. */
function forgedJwt(rng: Rng, expSeconds: number): string {
  return [
    b64url({ alg: 'RS256', kid: 'forged' }),
    b64url({
      aud: ['konductor'],
      exp: expSeconds,
      iss: 'https://kubernetes.default.svc',
      sub: 'system:serviceaccount:default:default',
      'kubernetes.io': { namespace: 'default', pod: { name: `p${rng.int(0, 1e9)}`, uid: uid(rng) } },
    }),
    Buffer.from(Array.from({ length: 64 }, () => rng.int(0, 255))).toString('base64url'),
  ].join('.');
}

const agentClear = (status: number, body: string) =>
  (status >= 400 && status < 500 && body.length > 0) || status === 503 || status === 429
    ? undefined
    : `expected a 4xx with a reason (or 503), got ${status} ${body.slice(0, 120)}`;

/** `n` agent API requests; the slow and stream ones are separate (see runFlood). */
export function agentCases(rng: Rng, n: number, tokens: AgentTokens, nowSeconds: number): FloodCase[] {
  const out: FloodCase[] = [];
  const release = (
    category: string,
    headers: Record<string, string>,
    body: Buffer = Buffer.from('{}'),
    judge = agentClear,
  ): FloodCase => ({
    category,
    method: 'POST',
    path: rng.chance(0.5) ? '/v1/release' : '/v1/wait',
    headers: { 'content-type': 'application/json', ...headers },
    body,
    judge,
  });
  for (let i = 0; i < n; i++) {
    const roll = rng.int(0, 99);
    if (roll < 15) out.push(release('no-token', {}));
    else if (roll < 30) {
      const token = rng.pick([
        '',
        'x',
        'a.b',
        'a.b.c',
        'Bearer',
        '.'.repeat(3),
        Buffer.alloc(rng.int(1, 3000), 'z').toString(),
      ]);
      out.push(release('garbage-token', { authorization: rng.chance(0.5) ? `Bearer ${token}` : token }));
    } else if (roll < 45)
      out.push(
        release('expired-token', { authorization: `Bearer ${forgedJwt(rng, nowSeconds - rng.int(1, 1e6))}` }),
      );
    else if (roll < 62)
      out.push(release('forged-token', { authorization: `Bearer ${forgedJwt(rng, nowSeconds + 3600)}` }));
    else if (roll < 72) out.push(release('wrong-audience', { authorization: `Bearer ${tokens.ordinary}` }));
    else if (roll < 80) {
      // The token is real and the pod exists, but konductor does not manage it: a release is a hint that
      // finds nothing to release (200, released nothing); a wait is refused (its 5 s cache wait is skipped here).
      out.push({
        category: 'foreign-pod',
        method: 'POST',
        path: '/v1/release',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.foreign}` },
        body: Buffer.from('{}'),
        judge: (status, body) => {
          if (status === 200) {
            const r = JSON.parse(body) as { released?: unknown[] };
            return r.released?.length ? `a foreign pod's release released ${body}` : undefined;
          }
          return agentClear(status, body);
        },
      });
    } else if (roll < 86)
      out.push({
        ...release(
          'huge-body',
          { authorization: `Bearer ${tokens.foreign}` },
          Buffer.alloc(2 * 1024 * 1024, 'a'),
        ),
        overLimit: true,
      });
    else if (roll < 92)
      out.push(
        release('malformed-body', { authorization: `Bearer ${tokens.foreign}` }, Buffer.from('{"reason":')),
      );
    else {
      const [method, path] = rng.pick([
        ['GET', '/v1/wait'],
        ['DELETE', '/v1/release'],
        ['POST', '/mutate'],
        ['POST', '/v2/wait'],
        ['GET', '/'],
      ] as const);
      out.push({ category: 'wrong-route', method, path, headers: {}, judge: agentClear });
    }
  }
  return out;
}

export interface Sent {
  category: string;
  /** HTTP status; 0 when no answer arrived. */
  status: number;
  /** The connection was reset while a body over the limit was being sent (see FloodCase.overLimit). */
  reset?: boolean;
  problem?: string;
  ms: number;
}

/** Sends one case over HTTPS; a reset or timeout is a problem (status 0). */
export function send(
  url: string,
  ca: string,
  agent: Agent | undefined,
  c: FloodCase,
  timeoutMs = 30_000,
): Promise<Sent> {
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const done = (status: number, problem?: string, reset?: boolean) => {
      if (settled) return;
      settled = true;
      resolve({
        category: c.category,
        status,
        ...(reset ? { reset } : {}),
        ...(problem ? { problem } : {}),
        ms: performance.now() - started,
      });
    };
    const req = httpsRequest(
      `${url}${c.path}`,
      {
        method: c.method,
        ca,
        agent,
        headers: { ...c.headers, ...(c.body ? { 'content-length': String(c.body.length) } : {}) },
        timeout: timeoutMs,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          if (body.length < 64 * 1024) body += d;
        });
        res.on('end', () => done(res.statusCode ?? 0, c.judge(res.statusCode ?? 0, body)));
        res.on('error', (err) => done(0, `response: ${err.message}`));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    // A body sent past the limit may be cut off by the server once it answered 413: the answer counts (done
    // ignores the later error); an error before any answer is a reset connection.
    req.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      const refused = c.overLimit && (code === 'EPIPE' || code === 'ECONNRESET');
      setTimeout(() => (refused ? done(0, undefined, true) : done(0, `${c.category}: ${err.message}`)), 50);
    });
    if (c.slow && c.body) {
      let i = 0;
      const size = Math.ceil(c.body.length / c.slow.chunks);
      const tick = () => {
        if (req.destroyed) return;
        const piece = c.body!.subarray(i * size, (i + 1) * size);
        i++;
        if (i >= c.slow!.chunks) req.end(piece);
        else {
          req.write(piece);
          setTimeout(tick, c.slow!.everyMs);
        }
      };
      tick();
    } else {
      req.end(c.body);
    }
  });
}

export const httpsAgent = (maxSockets: number) => new Agent({ keepAlive: true, maxSockets });
