import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { describe, expect, it, vi } from 'vitest';
import { IMMUTABLE_METADATA_MESSAGE } from '../../api/admissionPolicies.ts';
import type { PrimitiveKind } from '../../api/constants.ts';
import type { Container, CronJob, Job, Pod } from '../../api/types.ts';
import { type AdmissionDeps, reviewAdmission } from '../../webhook/admission.ts';
import {
  type AdmissionRequest,
  type AdmissionReview,
  admissionReviewProblem,
} from '../../webhook/admissionReview.ts';
import type { InjectionConfig } from '../../webhook/injectionPatch.ts';
import { changedKonductorMetadata } from '../../webhook/podChecks.ts';

const CONFIG: InjectionConfig = {
  agentImage: 'logiciq/konductor-agent:0.1.0',
  agentUrl: 'https://konductor.konductor-system.svc:8443',
  caBundle: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
};

type Review = AdmissionReview & { request: AdmissionRequest };

function fixture(name: string): Review {
  return JSON.parse(
    readFileSync(new URL(`../fixtures/admission/${name}.json`, import.meta.url), 'utf8'),
  ) as Review;
}

function withRequest(review: Review, changes: Partial<AdmissionRequest>): Review {
  return { ...review, request: { ...review.request, ...changes } };
}

function decodePatch(review: AdmissionReview): Operation[] {
  const patch = review.response?.patch;
  expect(patch).toBeTypeOf('string');
  return JSON.parse(Buffer.from(patch as string, 'base64').toString('utf8')) as Operation[];
}

const existing =
  (...present: string[]) =>
  (kind: PrimitiveKind, namespace: string, name: string): boolean =>
    present.includes(`${kind}:${namespace}/${name}`);

describe('reviewAdmission: pods', () => {
  it('patches an annotated Job pod and echoes the uid', async () => {
    const review = fixture('pod-job');
    const out = await reviewAdmission(review, { injection: CONFIG });
    expect(out.apiVersion).toBe('admission.k8s.io/v1');
    expect(out.kind).toBe('AdmissionReview');
    expect(out.response?.uid).toBe(review.request.uid);
    expect(out.response?.allowed).toBe(true);
    expect(out.response?.patchType).toBe('JSONPatch');
    expect(out.response?.warnings).toBeUndefined();
    const pod = jsonpatch.applyPatch(review.request.object as Pod, decodePatch(out), true, false).newDocument;
    expect(pod.spec.initContainers?.map((c) => c.name)).toEqual(['konductor-wait', 'konductor-hold']);
  });

  it('warns (but allows) when a referenced primitive does not exist; namespace from the request', async () => {
    const review = fixture('pod-job');
    const exists = vi.fn(existing());
    const out = await reviewAdmission(review, { injection: CONFIG, primitiveExists: exists });
    expect(exists).toHaveBeenCalledWith('Semaphore', 'default', 'batch-slots');
    expect(out.response?.allowed).toBe(true);
    expect(out.response?.patch).toBeDefined();
    expect(out.response?.warnings).toEqual([
      'Semaphore default/batch-slots does not exist yet: the pod will wait until it is created',
    ]);
  });

  it('warns only for the missing ones, with async lookups', async () => {
    const review = fixture('pod-big');
    const present = existing('Semaphore:batch/gpu-slots');
    const out = await reviewAdmission(review, {
      injection: CONFIG,
      primitiveExists: async (kind, ns, name) => present(kind, ns, name),
    });
    expect(out.response?.allowed).toBe(true);
    expect(out.response?.warnings).toHaveLength(2);
    expect(out.response?.warnings?.[0]).toContain('Gate batch/dataset-published does not exist');
    expect(out.response?.warnings?.[1]).toContain('Barrier batch/all-workers-ready does not exist');
  });

  it('no warnings when everything exists', async () => {
    const out = await reviewAdmission(fixture('pod-sidecars'), {
      injection: CONFIG,
      primitiveExists: existing('Lease:team-a/schema-migration'),
    });
    expect(out.response?.allowed).toBe(true);
    expect(out.response?.warnings).toBeUndefined();
  });

  it('a failing lookup is a warning, not a denial', async () => {
    const out = await reviewAdmission(fixture('pod-job'), {
      injection: CONFIG,
      primitiveExists: () => {
        throw new Error('apiserver unreachable');
      },
    });
    expect(out.response?.allowed).toBe(true);
    expect(out.response?.patch).toBeDefined();
    expect(out.response?.warnings?.[0]).toContain('apiserver unreachable');
  });

  it('a hanging lookup is bounded by lookupTimeoutMs', async () => {
    const out = await reviewAdmission(fixture('pod-job'), {
      injection: CONFIG,
      primitiveExists: () => new Promise<boolean>(() => {}),
      lookupTimeoutMs: 10,
    });
    expect(out.response?.allowed).toBe(true);
    expect(out.response?.patch).toBeDefined();
    expect(out.response?.warnings?.[0]).toMatch(/could not check within 10 ms/);
  });

  it('denies bad annotations with a message naming each one and its accepted form', async () => {
    const review = fixture('pod-bad-annotations');
    const exists = vi.fn(existing());
    const out = await reviewAdmission(review, { injection: CONFIG, primitiveExists: exists });
    const res = out.response;
    expect(res?.uid).toBe(review.request.uid);
    expect(res?.allowed).toBe(false);
    expect(res?.patch).toBeUndefined();
    expect(res?.status?.code).toBe(400);
    const message = res?.status?.message ?? '';
    expect(message).toMatch(/^Pod default\/typo: invalid konductor annotations: /);
    expect(message).toContain('konductor.io/semaphor ');
    expect(message).toContain('konductor.io/permits: "two" is not a positive integer');
    expect(message).toContain('konductor.io/wait-timeout: "10 minutes" is not a positive duration');
    expect(message).toContain('expected e.g. konductor.io/permits: "2"');
    expect(message).toContain('"10m"');
    expect(exists).not.toHaveBeenCalled();
  });

  it('allows unannotated pods unchanged', async () => {
    const review = fixture('pod-job');
    const pod = structuredClone(review.request.object) as Pod;
    pod.metadata.annotations = { 'example.com/other': 'x' };
    const exists = vi.fn(existing());
    const out = await reviewAdmission(withRequest(review, { object: pod }), {
      injection: CONFIG,
      primitiveExists: exists,
    });
    expect(out.response).toEqual({ uid: review.request.uid, allowed: true });
    expect(exists).not.toHaveBeenCalled();
  });

  it('UPDATE: konductor metadata is immutable; every other update passes', async () => {
    const bad = fixture('pod-bad-annotations');
    const good = fixture('pod-job');
    const admitted = good.request.object as Pod;
    const update = (before: Pod, after: Pod) =>
      reviewAdmission(withRequest(good, { operation: 'UPDATE', oldObject: before, object: after }), {
        injection: CONFIG,
      });
    const edit = (f: (p: Pod) => void): Pod => {
      const p = structuredClone({
        ...admitted,
        metadata: { ...admitted.metadata, labels: { 'konductor.io/managed': 'true' } },
      });
      f(p);
      return p;
    };
    const managed = edit(() => undefined);
    // Unchanged konductor metadata (a finalizer removal, another label, another annotation): allowed.
    for (const after of [
      edit((p) => {
        p.metadata.finalizers = [];
      }),
      edit((p) => {
        p.metadata.labels = { ...p.metadata.labels, team: 'a' };
      }),
      edit((p) => {
        p.metadata.annotations = { ...p.metadata.annotations, 'example.com/note': 'x' };
      }),
    ]) {
      expect((await update(managed, after)).response).toEqual({ uid: good.request.uid, allowed: true });
    }
    // Even unchanged bad annotations (a pod admitted before the webhook existed) do not block updates.
    const unchanged = await reviewAdmission(
      withRequest(bad, { operation: 'UPDATE', oldObject: bad.request.object }),
      { injection: CONFIG },
    );
    expect(unchanged.response).toEqual({ uid: bad.request.uid, allowed: true });
    // Removing the managed label, changing, adding or removing a konductor.io/ annotation: denied, named.
    const cases: [Pod, string][] = [
      [
        edit((p) => {
          p.metadata.labels = {};
        }),
        'konductor.io/managed',
      ],
      [
        edit((p) => {
          p.metadata.annotations = { ...p.metadata.annotations, 'konductor.io/semaphore': 'other' };
        }),
        'konductor.io/semaphore',
      ],
      [
        edit((p) => {
          p.metadata.annotations = { ...p.metadata.annotations, 'konductor.io/priority': '9' };
        }),
        'konductor.io/priority',
      ],
      [
        edit((p) => {
          p.metadata.annotations = { ...p.metadata.annotations, 'konductor.io/injected': 'x' };
        }),
        'konductor.io/injected',
      ],
    ];
    for (const [after, key] of cases) {
      const out = await update(managed, after);
      expect(out.response?.allowed, key).toBe(false);
      expect(out.response?.status?.code).toBe(403);
      expect(out.response?.status?.message).toContain(IMMUTABLE_METADATA_MESSAGE);
      expect(out.response?.status?.message).toContain(`(changed: ${key})`);
    }
    // Removing every konductor annotation is a change too.
    expect(changedKonductorMetadata(managed, { ...managed, metadata: { name: 'x' } })).toEqual([
      'konductor.io/managed',
      ...Object.keys(admitted.metadata.annotations ?? {})
        .filter((k) => k.startsWith('konductor.io/'))
        .sort(),
    ]);
  });

  it('denies a pod whose konductor-wait (or konductor-hold) the webhook did not inject', async () => {
    const review = fixture('pod-job');
    const pod = review.request.object as Pod;
    const fake = (c: Partial<Container>, labels?: Record<string, string>): Pod => ({
      ...pod,
      metadata: { ...pod.metadata, ...(labels ? { labels } : {}) },
      spec: {
        ...pod.spec,
        initContainers: [{ name: 'konductor-wait', image: 'busybox', command: ['true'], ...c }],
      },
    });
    for (const p of [
      fake({}),
      fake({ image: CONFIG.agentImage, args: ['wait'] }), // no managed label
      fake({ image: 'busybox', args: ['wait'] }, { 'konductor.io/managed': 'true' }),
      fake({ name: 'konductor-hold', image: CONFIG.agentImage }),
    ]) {
      const out = await reviewAdmission(withRequest(review, { object: p }), { injection: CONFIG });
      expect(out.response?.allowed).toBe(false);
      expect(out.response?.status?.code).toBe(403);
      expect(out.response?.status?.message).toMatch(/is not the agent konductor injects.*reserved/);
    }
    // What the webhook injected itself (reinvocation): no patch, allowed.
    const first = await reviewAdmission(review, { injection: CONFIG });
    const injected = jsonpatch.applyPatch(structuredClone(pod), decodePatch(first), true, false).newDocument;
    const again = await reviewAdmission(withRequest(review, { object: injected }), { injection: CONFIG });
    expect(again.response).toEqual({ uid: review.request.uid, allowed: true });
  });

  it('warns when konductor.io/permits exceeds the Semaphore’s permits', async () => {
    const review = fixture('pod-job');
    const pod = review.request.object as Pod;
    const asking = (permits: string): Pod => ({
      ...pod,
      metadata: {
        ...pod.metadata,
        annotations: { 'konductor.io/semaphore': 'slots', 'konductor.io/permits': permits },
      },
    });
    const deps = { injection: CONFIG, semaphorePermits: () => 2 };
    const over = await reviewAdmission(withRequest(review, { object: asking('3') }), deps);
    expect(over.response?.allowed).toBe(true);
    expect(over.response?.warnings).toEqual([
      `konductor.io/permits: 3 exceeds the 2 permits of Semaphore ${review.request.namespace}/slots: the pod will wait until the Semaphore has that many (PermitsExceedCapacity)`,
    ]);
    const fits = await reviewAdmission(withRequest(review, { object: asking('2') }), deps);
    expect(fits.response?.warnings).toBeUndefined();
    const unknown = await reviewAdmission(withRequest(review, { object: asking('3') }), {
      injection: CONFIG,
      semaphorePermits: () => undefined,
    });
    expect(unknown.response?.warnings).toBeUndefined();
  });

  it('allows DELETE, CONNECT, subresources and other kinds unchanged', async () => {
    const review = fixture('pod-bad-annotations');
    const uid = review.request.uid;
    for (const changes of [
      { operation: 'DELETE' as const, object: null, oldObject: review.request.object },
      { operation: 'CONNECT' as const },
      { subResource: 'status', operation: 'UPDATE' as const },
      { subResource: 'ephemeralcontainers', operation: 'UPDATE' as const },
      { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } },
    ]) {
      const out = await reviewAdmission(withRequest(review, changes), { injection: CONFIG });
      expect(out.response, JSON.stringify(changes)).toEqual({ uid, allowed: true });
    }
  });

  it('an error while deciding becomes an explicit denial carrying the message', async () => {
    const throwing = {
      ...CONFIG,
      get agentImage(): string {
        throw new Error('config exploded');
      },
    };
    const review = fixture('pod-job');
    const out = await reviewAdmission(review, { injection: throwing });
    expect(out.response).toEqual({
      uid: review.request.uid,
      allowed: false,
      status: {
        status: 'Failure',
        code: 500,
        reason: 'InternalError',
        message: 'konductor webhook failed: config exploded',
      },
    });
  });

  it('a pod whose spec lists are not lists is denied as malformed (400), not a handler failure (500)', async () => {
    type Spec = Record<string, unknown>;
    const first = (s: Spec, list: string) => (s[list] as Spec[])[0] as Spec;
    const shapes: [string, (spec: Spec) => void][] = [
      ['containers', (s) => Object.assign(s, { containers: 'main' })],
      ['containers', (s) => Object.assign(s, { containers: [1] })],
      ['initContainers', (s) => Object.assign(s, { initContainers: { name: 'x' } })],
      ['volumes', (s) => Object.assign(s, { volumes: 'v' })],
      ['containers[0].volumeMounts', (s) => Object.assign(first(s, 'containers'), { volumeMounts: 'x' })],
      ['containers[0].env', (s) => Object.assign(first(s, 'containers'), { env: { A: '1' } })],
      [
        'initContainers[0].volumeMounts',
        (s) => Object.assign(s, { initContainers: [{ name: 'i', volumeMounts: 7 }] }),
      ],
    ];
    for (const [field, mutate] of shapes) {
      const review = structuredClone(fixture('pod-job'));
      mutate((review.request.object as { spec: Record<string, unknown> }).spec);
      const out = await reviewAdmission(review, { injection: CONFIG });
      expect(out.response?.allowed, field).toBe(false);
      expect(out.response?.status?.code, field).toBe(400);
      expect(out.response?.status?.message, field).toContain(`spec.${field}`);
    }
  });

  it('a malformed review is denied, not thrown', async () => {
    const out = await reviewAdmission({ apiVersion: 'admission.k8s.io/v1' } as AdmissionReview, {
      injection: CONFIG,
    });
    expect(out.response?.allowed).toBe(false);
    expect(out.response?.status?.code).toBe(400);
  });
});

describe('reviewAdmission: Jobs and CronJobs', () => {
  it('copies a Job’s annotations into its pod template', async () => {
    const review = fixture('job');
    const out = await reviewAdmission(review, { injection: CONFIG });
    expect(out.response?.uid).toBe(review.request.uid);
    expect(out.response?.allowed).toBe(true);
    const job = jsonpatch.applyPatch(review.request.object as Job, decodePatch(out), true, false).newDocument;
    expect(job.spec.template.metadata?.annotations).toEqual({
      'konductor.io/semaphore': 'batch-slots',
      'konductor.io/priority': '5',
    });
  });

  it('copies a CronJob’s annotations into its job template’s pod template', async () => {
    const review = fixture('cronjob');
    const out = await reviewAdmission(review, { injection: CONFIG });
    expect(out.response?.allowed).toBe(true);
    const cron = jsonpatch.applyPatch(
      review.request.object as CronJob,
      decodePatch(out),
      true,
      false,
    ).newDocument;
    expect(cron.spec.jobTemplate.spec.template.metadata?.annotations).toEqual({
      'konductor.io/priority': '7',
      'konductor.io/lease': 'sync-lock',
      'konductor.io/wait-timeout': '5m',
    });
    // Re-invocation / a later UPDATE with the same content: nothing to do.
    const again = await reviewAdmission(withRequest(review, { operation: 'UPDATE', object: cron }), {
      injection: CONFIG,
    });
    expect(again.response).toEqual({ uid: review.request.uid, allowed: true });
  });

  it('denies a Job with bad annotations', async () => {
    const review = fixture('job');
    const job = structuredClone(review.request.object) as Job;
    job.metadata.annotations = { 'konductor.io/semaphore': 'Batch_Slots' };
    const out = await reviewAdmission(withRequest(review, { object: job }), { injection: CONFIG });
    expect(out.response?.allowed).toBe(false);
    expect(out.response?.status?.code).toBe(400);
    expect(out.response?.status?.message).toMatch(
      /^Job default\/nightly-report: invalid konductor annotation: /,
    );
    expect(out.response?.status?.message).toContain('DNS-1123');
  });

  it('allows a Job UPDATE without patching it (the template is immutable)', async () => {
    const review = fixture('job');
    const out = await reviewAdmission(
      withRequest(review, { operation: 'UPDATE', oldObject: review.request.object }),
      { injection: CONFIG },
    );
    expect(out.response).toEqual({ uid: review.request.uid, allowed: true });
  });

  it('a CronJob UPDATE keeping pre-existing bad annotations is allowed with a warning', async () => {
    const review = fixture('cronjob');
    const cron = structuredClone(review.request.object) as CronJob;
    cron.metadata.annotations = { 'konductor.io/lease': 'Not_A_Name' };
    const out = await reviewAdmission(
      withRequest(review, { operation: 'UPDATE', object: cron, oldObject: cron }),
      { injection: CONFIG },
    );
    expect(out.response?.allowed).toBe(true);
    expect(out.response?.patch).toBeUndefined();
    expect(out.response?.warnings?.[0]).toContain('invalid konductor annotations');
    // Changing them to (still) bad ones is denied.
    const changed = await reviewAdmission(
      withRequest(review, { operation: 'UPDATE', object: cron, oldObject: review.request.object }),
      { injection: CONFIG },
    );
    expect(changed.response?.allowed).toBe(false);
  });
});

describe('admissionReviewProblem', () => {
  it('names what is wrong', () => {
    expect(admissionReviewProblem(null)).toBe('request body is not a JSON object');
    expect(admissionReviewProblem([])).toBe('request body is not a JSON object');
    expect(admissionReviewProblem({ kind: 'Pod' })).toMatch(/expected "AdmissionReview"/);
    expect(
      admissionReviewProblem({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1beta1' }),
    ).toMatch(/expected "admission.k8s.io\/v1"/);
    expect(admissionReviewProblem({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1' })).toBe(
      'AdmissionReview has no request',
    );
    expect(
      admissionReviewProblem({
        kind: 'AdmissionReview',
        apiVersion: 'admission.k8s.io/v1',
        request: { uid: 'u' },
      }),
    ).toBe('request.kind is missing');
    expect(admissionReviewProblem(fixture('pod-job'))).toBeNull();
  });
});

describe('reviewAdmission: properties', () => {
  const annotationValue = fc.oneof(
    fc.constantFrom(
      'batch-slots',
      '2',
      '0',
      '-1',
      '10m',
      'abc',
      '',
      ' x ',
      '1h30m',
      'Bad_Name',
      '99999999999',
    ),
    fc.string({ maxLength: 12 }),
  );
  const annotations = fc.dictionary(
    fc.oneof(
      fc.constantFrom(
        'konductor.io/semaphore',
        'konductor.io/permits',
        'konductor.io/lease',
        'konductor.io/barrier',
        'konductor.io/gate',
        'konductor.io/priority',
        'konductor.io/wait-timeout',
        'konductor.io/injected',
        'konductor.io/unknown',
        'example.com/other',
      ),
      fc.string({ maxLength: 20 }),
    ),
    annotationValue,
    { maxKeys: 5 },
  );
  const container = fc.record(
    { name: fc.string({ maxLength: 8 }), restartPolicy: fc.constantFrom('Always', undefined, 'Never') },
    { requiredKeys: ['name'] },
  );
  const podShaped = fc.record(
    {
      metadata: fc.oneof(
        fc.record(
          {
            name: fc.string({ maxLength: 8 }),
            namespace: fc.string({ maxLength: 8 }),
            annotations: fc.oneof(annotations, fc.anything()),
            labels: fc.oneof(fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }), fc.anything()),
          },
          { requiredKeys: [] },
        ),
        fc.anything(),
      ),
      spec: fc.oneof(
        fc.record(
          {
            containers: fc.array(container, { maxLength: 3 }),
            initContainers: fc.oneof(fc.array(container, { maxLength: 4 }), fc.anything()),
            volumes: fc.oneof(
              fc.array(fc.record({ name: fc.string({ maxLength: 8 }) }), { maxLength: 3 }),
              fc.anything(),
            ),
          },
          { requiredKeys: [] },
        ),
        fc.anything(),
      ),
    },
    { requiredKeys: [] },
  );
  const kind = fc.constantFrom(
    { group: '', version: 'v1', kind: 'Pod' },
    { group: 'batch', version: 'v1', kind: 'Job' },
    { group: 'batch', version: 'v1', kind: 'CronJob' },
  );

  it('never rejects and always echoes the request uid', async () => {
    const deps: AdmissionDeps = {
      injection: CONFIG,
      primitiveExists: (_k, _n, name) => name.length % 2 === 0,
    };
    await fc.assert(
      fc.asyncProperty(
        fc.uuid(),
        kind,
        fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT'),
        fc.oneof(podShaped, fc.anything()),
        fc.oneof(podShaped, fc.constant(null)),
        fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
        async (uid, k, operation, object, oldObject, namespace) => {
          const review = {
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            request: { uid, kind: k, operation, object, oldObject, namespace },
          } as Review;
          const out = await reviewAdmission(review, deps);
          expect(out.response?.uid).toBe(uid);
          expect(typeof out.response?.allowed).toBe('boolean');
          if (!out.response?.allowed) expect(out.response?.status?.message).toBeTypeOf('string');
          // JSON round-trip (what the server sends) keeps it intact.
          expect(JSON.parse(JSON.stringify(out))).toEqual(out);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('an annotated pod with any value in its spec lists is decided, never a handler failure', async () => {
    const fields = [
      'containers',
      'initContainers',
      'volumes',
      'c.volumeMounts',
      'c.env',
      'c.envFrom',
      'c.args',
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...fields), fc.anything(), async (field, value) => {
        const review = structuredClone(fixture('pod-job'));
        const spec = (review.request.object as { spec: Record<string, unknown> }).spec;
        if (field.startsWith('c.'))
          (spec.containers as Record<string, unknown>[])[0]![field.slice(2)] = value;
        else spec[field] = value;
        const out = await reviewAdmission(review, { injection: CONFIG });
        expect(out.response?.status?.code ?? 200).not.toBe(500);
      }),
      { numRuns: 300 },
    );
  });

  it('an allowed pod patch always applies cleanly to a well-formed pod', async () => {
    await fc.assert(
      fc.asyncProperty(
        annotations,
        fc.uniqueArray(container, { selector: (c) => c.name, maxLength: 4 }),
        async (ann, inits) => {
          const pod = {
            metadata: { name: 'p', annotations: ann },
            spec: { containers: [{ name: 'main' }], initContainers: inits },
          };
          const review = {
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            request: {
              uid: 'u',
              kind: { group: '', version: 'v1', kind: 'Pod' },
              operation: 'CREATE',
              object: pod,
            },
          } as Review;
          const out = await reviewAdmission(review, { injection: CONFIG });
          if (out.response?.allowed && out.response.patch) {
            const patched = jsonpatch.applyPatch(pod, decodePatch(out), true, false).newDocument;
            expect(
              patched.spec.initContainers.some((c: { name: string }) => c.name === 'konductor-wait'),
            ).toBe(true);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
