import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type { AdmissionReview } from '../../webhook/admissionReview.ts';
import type { InjectionConfig } from '../../webhook/injectionPatch.ts';
import { buildServer, buildWebhookApp, MUTATE_BODY_LIMIT, mutateRoutes } from '../../webhook/server.ts';

const CONFIG: InjectionConfig = {
  agentImage: 'logiciq/konductor-agent:0.1.0',
  agentUrl: 'https://127.0.0.1:8443',
  caBundle: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
};

function fixtureText(name: string): string {
  return readFileSync(new URL(`../fixtures/admission/${name}.json`, import.meta.url), 'utf8');
}

const apps: FastifyInstance[] = [];
async function app(opts: Partial<Parameters<typeof buildWebhookApp>[0]> = {}): Promise<FastifyInstance> {
  const a = await buildWebhookApp({ injection: CONFIG, logger: false, ...opts });
  apps.push(a);
  return a;
}
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

function post(a: FastifyInstance, payload: string | object, contentType = 'application/json') {
  return a.inject({
    method: 'POST',
    url: '/mutate',
    headers: { 'content-type': contentType },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
}

describe('POST /mutate', () => {
  it('answers an AdmissionReview with a patched response', async () => {
    const a = await app();
    for (const name of ['pod-job', 'pod-sidecars', 'pod-big', 'job', 'cronjob']) {
      const res = await post(a, fixtureText(name));
      expect(res.statusCode, name).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const body = res.json() as AdmissionReview;
      expect(body.apiVersion).toBe('admission.k8s.io/v1');
      expect(body.kind).toBe('AdmissionReview');
      expect(body.response?.uid).toBe((JSON.parse(fixtureText(name)) as AdmissionReview).request?.uid);
      expect(body.response?.allowed).toBe(true);
      expect(body.response?.patchType).toBe('JSONPatch');
    }
  });

  it('denies bad annotations with HTTP 200 and allowed:false', async () => {
    const res = await post(await app(), fixtureText('pod-bad-annotations'));
    expect(res.statusCode).toBe(200);
    const body = res.json() as AdmissionReview;
    expect(body.response?.allowed).toBe(false);
    expect(body.response?.status?.code).toBe(400);
    expect(body.response?.status?.message).toContain('konductor.io/permits');
  });

  it('returns existence warnings', async () => {
    const a = await app({ primitiveExists: async () => false });
    const body = (await post(a, fixtureText('pod-job'))).json() as AdmissionReview;
    expect(body.response?.warnings).toEqual([
      'Semaphore default/batch-slots does not exist yet: the pod will wait until it is created',
    ]);
  });

  it('malformed JSON -> 400 with a reason', async () => {
    const res = await post(await app(), '{"apiVersion": "admission.k8s.io/v1", ');
    expect(res.statusCode).toBe(400);
    const body = res.json() as { error: string; code: string; message: string };
    expect(body.error).toBe('BadRequest');
    expect(body.code).toBe('FST_ERR_CTP_INVALID_JSON_BODY');
    expect(body.message).toBeTypeOf('string');
  });

  it('empty body -> 400', async () => {
    const res = await post(await app(), '');
    expect(res.statusCode).toBe(400);
    expect((res.json() as { error: string }).error).toBe('BadRequest');
  });

  it('prototype poisoning -> 400', async () => {
    const res = await post(await app(), '{"__proto__": {"allowed": true}}');
    expect(res.statusCode).toBe(400);
  });

  it('JSON that is not an AdmissionReview -> 400 naming the problem', async () => {
    const a = await app();
    const cases: [unknown, RegExp][] = [
      [[1, 2], /not a JSON object/],
      ['"a string"', /not a JSON object/],
      [{ apiVersion: 'v1', kind: 'Pod' }, /expected "AdmissionReview"/],
      [
        { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: {} },
        /expected "admission/,
      ],
      [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /has no request/],
      [
        { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: {} } },
        /uid is missing/,
      ],
    ];
    for (const [payload, reason] of cases) {
      const res = await post(a, typeof payload === 'string' ? payload : (payload as object));
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      const body = res.json() as { error: string; code: string; message: string };
      expect(body).toMatchObject({ error: 'BadRequest', code: 'KDR_WEBHOOK_NOT_ADMISSION_REVIEW' });
      expect(body.message).toMatch(reason);
    }
  });

  it('accepts every review the API server can send (an UPDATE of two 1.5 MiB pods); beyond the limit 413', async () => {
    const a = await app();
    const review = JSON.parse(fixtureText('pod-big')) as AdmissionReview & { request: { object: unknown } };
    expect(Buffer.byteLength(JSON.stringify(review))).toBeLessThan(50 * 1024); // a large real pod: 47 KiB
    const pod = review.request.object as { metadata: { annotations: Record<string, string> } };
    // etcd stores objects up to 1.5 MiB: the largest pod, as object and oldObject of an UPDATE review.
    pod.metadata.annotations['example.com/blob'] = 'x'.repeat(1.5 * 1024 * 1024 - 64 * 1024);
    const update = { ...review, request: { ...review.request, operation: 'UPDATE', oldObject: pod } };
    expect(Buffer.byteLength(JSON.stringify(update))).toBeGreaterThan(3 * 1024 * 1024 - 64 * 1024);
    const res = await post(a, update);
    expect(res.statusCode).toBe(200);
    expect((res.json() as AdmissionReview).response?.allowed).toBe(true);

    pod.metadata.annotations['example.com/blob'] = 'x'.repeat(MUTATE_BODY_LIMIT);
    const tooBig = await post(a, review);
    expect(tooBig.statusCode).toBe(413);
    expect((tooBig.json() as { code: string }).code).toBe('FST_ERR_CTP_BODY_TOO_LARGE');
  });

  it('answers 429 before reading a body when the reviews in flight would exceed the byte budget', async () => {
    let finishLookup!: () => void;
    const lookup = new Promise<boolean>((resolve) => {
      finishLookup = () => resolve(true);
    });
    let entered!: () => void;
    const inLookup = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const body = fixtureText('pod-job');
    const a = await app({
      primitiveExists: () => {
        entered();
        return lookup;
      },
      lookupTimeoutMs: 60_000,
      maxInflightBytes: Buffer.byteLength(body) + 10,
    });
    const first = post(a, body);
    await inLookup; // the first review is in flight, held in its primitive lookup
    const busy = await post(a, body);
    expect(busy.statusCode).toBe(429);
    expect(busy.headers['retry-after']).toBe('1');
    expect((busy.json() as { code: string }).code).toBe('KDR_WEBHOOK_BUSY');
    finishLookup();
    expect((await first).statusCode).toBe(200);
    expect((await post(a, body)).statusCode).toBe(200); // the budget is returned
  });

  it('a handler error is an explicit denial, never a hang', async () => {
    const throwing = {
      ...CONFIG,
      get agentImage(): string {
        throw new Error('boom');
      },
    };
    const res = await post(await app({ injection: throwing }), fixtureText('pod-job'));
    expect(res.statusCode).toBe(200);
    const body = res.json() as AdmissionReview;
    expect(body.response?.allowed).toBe(false);
    expect(body.response?.status?.message).toContain('boom');
  });
});

describe('GET /healthz and composition', () => {
  it('serves /healthz', async () => {
    const res = await (await app()).inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('other plugins register on the same instance; healthz can be left to them', async () => {
    const a = buildServer({ logger: false });
    apps.push(a);
    await a.register(mutateRoutes, { injection: CONFIG, healthz: false });
    await a.register(async (agent) => {
      agent.get('/healthz', async () => ({ status: 'agent-ok' }));
      agent.post('/v1/echo', async (req) => req.body);
    });
    expect((await a.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'agent-ok' });
    // The webhook's error handler is encapsulated: the other plugin's errors keep fastify's default shape.
    const bad = await a.inject({
      method: 'POST',
      url: '/v1/echo',
      headers: { 'content-type': 'application/json' },
      payload: '{',
    });
    expect(bad.statusCode).toBe(400);
    expect((bad.json() as { statusCode?: number }).statusCode).toBe(400);
    expect((await post(a, fixtureText('pod-job'))).statusCode).toBe(200);
  });
});
