import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import jsonpatch, { type Operation } from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import {
  ANNOTATIONS,
  DEFAULT_START_TIMEOUT,
  HOLD_CONTAINER,
  MANAGED_LABEL,
  SCHEDULING_GATE,
  SHARED_MOUNT_PATH,
  SHARED_VOLUME,
  TOKEN_AUDIENCE,
  TOKEN_MOUNT_PATH,
  TOKEN_VOLUME,
  WAIT_CONTAINER,
  WEBHOOK_ANNOTATIONS,
} from '../../api/constants.ts';
import type { Container, Pod } from '../../api/types.ts';
import { reviewAdmission } from '../../webhook/admission.ts';
import type { AdmissionReview } from '../../webhook/admissionReview.ts';
import {
  AGENT_ENV,
  buildInjectionPatch,
  type InjectionConfig,
  isInjected,
} from '../../webhook/injectionPatch.ts';

const CONFIG: InjectionConfig = {
  agentImage: 'logiciq/konductor-agent:0.1.0',
  agentUrl: 'https://konductor.konductor-system.svc:8443',
  caBundle: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
};

function fixturePod(name: string): Pod {
  const review = JSON.parse(
    readFileSync(new URL(`../fixtures/admission/${name}.json`, import.meta.url), 'utf8'),
  ) as AdmissionReview;
  return review.request?.object as Pod;
}

function apply(pod: Pod, patch: Operation[]): Pod {
  // validate=true: every op must be applicable (paths exist, indices in range); the input is not mutated.
  return jsonpatch.applyPatch(pod, patch, true, false).newDocument;
}

/** What the API server would check of the injected parts, plus konductor's own placement contract. */
function expectValidInjectedPod(pod: Pod): void {
  const init = pod.spec.initContainers ?? [];
  const all: Container[] = [...init, ...pod.spec.containers];
  const names = all.map((c) => c.name);
  expect(new Set(names).size, `duplicate container names: ${names}`).toBe(names.length);
  const volumes = pod.spec.volumes ?? [];
  const volumeNames = volumes.map((v) => v.name);
  expect(new Set(volumeNames).size, `duplicate volumes: ${volumeNames}`).toBe(volumeNames.length);
  for (const c of all) {
    for (const m of c.volumeMounts ?? []) expect(volumeNames, `${c.name} mounts ${m.name}`).toContain(m.name);
  }
  const waitAt = init.findIndex((c) => c.name === WAIT_CONTAINER);
  const holdAt = init.findIndex((c) => c.name === HOLD_CONTAINER);
  expect(waitAt).toBeGreaterThanOrEqual(0);
  expect(holdAt).toBe(waitAt + 1);
  // Only native sidecars before konductor-wait.
  for (const c of init.slice(0, waitAt)) expect(c.restartPolicy).toBe('Always');
  const wait = init[waitAt] as Container;
  const hold = init[holdAt] as Container;
  expect(wait.restartPolicy).toBeUndefined();
  expect(hold.restartPolicy).toBe('Always');
  expect(wait.args).toEqual(['wait']);
  expect(hold.args).toEqual(['hold']);
  for (const c of [wait, hold]) {
    expect(c.image).toBe(CONFIG.agentImage);
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e]));
    expect(env[AGENT_ENV.url]?.value).toBe(CONFIG.agentUrl);
    expect(env[AGENT_ENV.caBundle]?.value).toBe(CONFIG.caBundle);
    expect(env[AGENT_ENV.podName]?.valueFrom).toEqual({
      fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' },
    });
    expect(env[AGENT_ENV.podNamespace]?.valueFrom).toEqual({
      fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' },
    });
    expect(env[AGENT_ENV.podUid]?.valueFrom).toEqual({
      fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.uid' },
    });
    expect(c.volumeMounts).toEqual([
      { name: SHARED_VOLUME, mountPath: SHARED_MOUNT_PATH },
      { name: TOKEN_VOLUME, mountPath: TOKEN_MOUNT_PATH, readOnly: true },
    ]);
    // Pod Security "restricted".
    expect(c.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.securityContext?.capabilities?.add).toBeUndefined();
    expect(c.securityContext?.privileged).toBeUndefined();
    expect(c.resources).toEqual({ requests: { cpu: '10m', memory: '48Mi' }, limits: { memory: '128Mi' } });
  }
  const shared = volumes.find((v) => v.name === SHARED_VOLUME);
  expect(shared?.emptyDir).toBeDefined();
  const token = volumes.find((v) => v.name === TOKEN_VOLUME);
  expect(token?.projected?.sources).toEqual([
    { serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: 3600, path: 'token' } },
  ]);
  expect(pod.metadata.labels?.[MANAGED_LABEL]).toBe('true');
  expect(isInjected(pod)).toBe(true);
}

/** The user's containers with the read-only grant mount removed: everything else must be untouched. */
function withoutGrantMount(containers: Container[]): Container[] {
  return containers.map((c) => {
    const mounts = (c.volumeMounts ?? []).filter((m) => !(m.name === SHARED_VOLUME && m.readOnly));
    const { volumeMounts: _dropped, ...rest } = c;
    return mounts.length > 0 ? { ...rest, volumeMounts: mounts } : rest;
  });
}

describe('buildInjectionPatch', () => {
  it('injects a Job pod: containers appended as the first init containers, volumes appended, label added', () => {
    const pod = fixturePod('pod-job');
    const patch = buildInjectionPatch(pod, CONFIG);
    const out = apply(pod, patch);
    expectValidInjectedPod(out);
    expect(out.spec.initContainers?.map((c) => c.name)).toEqual([WAIT_CONTAINER, HOLD_CONTAINER]);
    // Existing volumes and labels are kept, the new ones are appended.
    expect(out.spec.volumes?.map((v) => v.name)).toEqual([
      'kube-api-access-x7k2p',
      SHARED_VOLUME,
      TOKEN_VOLUME,
    ]);
    expect(out.metadata.labels).toMatchObject({ 'job-name': 'nightly-report', [MANAGED_LABEL]: 'true' });
    expect(out.metadata.annotations?.[WEBHOOK_ANNOTATIONS.injected]).toBe('true');
    // The user's containers are untouched but for the read-only grant mount.
    expect(withoutGrantMount(out.spec.containers)).toEqual(pod.spec.containers);
    for (const c of out.spec.containers) {
      expect(c.volumeMounts).toContainEqual({
        name: SHARED_VOLUME,
        mountPath: SHARED_MOUNT_PATH,
        readOnly: true,
      });
    }
    // No wait timeout annotated -> no KONDUCTOR_WAIT_TIMEOUT.
    expect(out.spec.initContainers?.[0]?.env?.some((e) => e.name === AGENT_ENV.waitTimeout)).toBe(false);
    // The label key's '/' is escaped in the JSON pointer.
    expect(patch).toContainEqual({
      op: 'add',
      path: '/metadata/labels/konductor.io~1managed',
      value: 'true',
    });
  });

  it('places wait after the leading native sidecars and before the first regular init container', () => {
    const pod = fixturePod('pod-sidecars');
    const out = apply(pod, buildInjectionPatch(pod, CONFIG));
    expectValidInjectedPod(out);
    expect(out.spec.initContainers?.map((c) => c.name)).toEqual([
      'istio-proxy',
      'log-shipper',
      WAIT_CONTAINER,
      HOLD_CONTAINER,
      'fetch-schema',
      'metrics-agent',
    ]);
    // Labels map created when absent.
    expect(out.metadata.labels).toEqual({ [MANAGED_LABEL]: 'true' });
    expect(out.spec.volumes?.map((v) => v.name)).toEqual([
      'schema',
      'logs',
      'db-credentials',
      SHARED_VOLUME,
      TOKEN_VOLUME,
    ]);
    // konductor.io/wait-timeout: 10m -> 600000 ms, on both containers.
    for (const c of out.spec.initContainers?.slice(2, 4) ?? []) {
      expect(c.env?.find((e) => e.name === AGENT_ENV.waitTimeout)?.value).toBe('600000');
    }
  });

  it('injects a big pod (10 containers, 50 env vars each) without touching its containers', () => {
    const pod = fixturePod('pod-big');
    const out = apply(pod, buildInjectionPatch(pod, CONFIG));
    expectValidInjectedPod(out);
    expect(withoutGrantMount(out.spec.containers)).toEqual(pod.spec.containers);
    expect(out.spec.containers).toHaveLength(10);
    expect(out.spec.containers[9]?.env).toHaveLength(50);
  });

  it('is idempotent: a pod that already has konductor-wait gets an empty patch', () => {
    for (const name of ['pod-job', 'pod-sidecars', 'pod-big']) {
      const pod = fixturePod(name);
      const once = apply(pod, buildInjectionPatch(pod, CONFIG));
      expect(buildInjectionPatch(once, CONFIG)).toEqual([]);
      expect(buildInjectionPatch(once, { ...CONFIG, agentImage: 'other:1' })).toEqual([]);
    }
  });

  it('creates initContainers, volumes, labels and annotations when the pod has none', () => {
    const pod: Pod = {
      metadata: { name: 'bare', namespace: 'default' },
      spec: { containers: [{ name: 'main', image: 'busybox' }] },
    };
    const patch = buildInjectionPatch(pod, CONFIG);
    expect(patch.map((op) => op.path)).toEqual([
      '/metadata/labels',
      '/metadata/annotations',
      '/spec/initContainers',
      '/spec/containers/0/volumeMounts',
      '/spec/volumes',
    ]);
    expectValidInjectedPod(apply(pod, patch));
  });

  it('appends after a list made only of native sidecars', () => {
    const pod: Pod = {
      metadata: { name: 'p', labels: {} },
      spec: {
        initContainers: [{ name: 'proxy', image: 'proxy', restartPolicy: 'Always' }],
        containers: [{ name: 'main', image: 'busybox' }],
      },
    };
    const out = apply(pod, buildInjectionPatch(pod, CONFIG));
    expectValidInjectedPod(out);
    expect(out.spec.initContainers?.map((c) => c.name)).toEqual(['proxy', WAIT_CONTAINER, HOLD_CONTAINER]);
  });

  it('passes imagePullPolicy, resources and version through', () => {
    const pod = fixturePod('pod-job');
    const out = apply(
      pod,
      buildInjectionPatch(pod, {
        ...CONFIG,
        imagePullPolicy: 'IfNotPresent',
        resources: { requests: { cpu: '5m', memory: '16Mi' } },
        version: '0.1.0',
      }),
    );
    const wait = out.spec.initContainers?.[0];
    expect(wait?.imagePullPolicy).toBe('IfNotPresent');
    expect(wait?.resources).toEqual({ requests: { cpu: '5m', memory: '16Mi' } });
    expect(out.metadata.annotations?.[WEBHOOK_ANNOTATIONS.injected]).toBe('0.1.0');
  });

  it('does not share objects between the patch and its inputs', () => {
    const pod = fixturePod('pod-job');
    const config = { ...CONFIG, resources: { requests: { cpu: '1m' } } };
    const patch = buildInjectionPatch(pod, config);
    const initOp = patch.find((op) => op.path === '/spec/initContainers') as { value: Container[] };
    (initOp.value[0]?.resources?.requests as Record<string, string>).cpu = 'mutated';
    expect(config.resources.requests.cpu).toBe('1m');
    expect(initOp.value[1]?.resources?.requests?.cpu).toBe('1m');
  });

  it('escapes JSON-pointer tokens', () => {
    expect(jsonpatch.escapePathComponent('konductor.io/managed')).toBe('konductor.io~1managed');
    expect(jsonpatch.escapePathComponent('a~b/c')).toBe('a~0b~1c');
  });

  it('property: any mix of sidecars, init containers and volumes yields a valid pod, then an empty patch', () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
    const initContainer = fc.record({ name, sidecar: fc.boolean() });
    fc.assert(
      fc.property(
        fc.option(fc.uniqueArray(initContainer, { selector: (c) => c.name, maxLength: 6 }), {
          nil: undefined,
        }),
        fc.option(fc.uniqueArray(name, { maxLength: 4 }), { nil: undefined }),
        fc.option(fc.dictionary(name, fc.string({ maxLength: 5 }), { maxKeys: 3 }), { nil: undefined }),
        (inits, volumes, labels) => {
          const reserved = new Set([WAIT_CONTAINER, HOLD_CONTAINER, SHARED_VOLUME, TOKEN_VOLUME, 'main']);
          const pod: Pod = {
            metadata: { name: 'p', ...(labels ? { labels } : {}) },
            spec: {
              containers: [{ name: 'main', image: 'busybox' }],
              ...(inits
                ? {
                    initContainers: inits
                      .filter((c) => !reserved.has(c.name))
                      .map((c) => ({
                        name: c.name,
                        image: 'x',
                        ...(c.sidecar ? { restartPolicy: 'Always' as const } : {}),
                      })),
                  }
                : {}),
              ...(volumes
                ? { volumes: volumes.filter((v) => !reserved.has(v)).map((v) => ({ name: v, emptyDir: {} })) }
                : {}),
            },
          };
          const out = apply(pod, buildInjectionPatch(pod, CONFIG));
          expectValidInjectedPod(out);
          // Relative order of the user's init containers is preserved.
          const userOrder = (out.spec.initContainers ?? [])
            .map((c) => c.name)
            .filter((n) => n !== WAIT_CONTAINER && n !== HOLD_CONTAINER);
          expect(userOrder).toEqual((pod.spec.initContainers ?? []).map((c) => c.name));
          expect(buildInjectionPatch(out, CONFIG)).toEqual([]);
        },
      ),
    );
  });
});

describe('injection through reviewAdmission (reinvocation)', () => {
  it('a re-invoked review of the patched pod gets no patch', async () => {
    const review = JSON.parse(
      readFileSync(new URL('../fixtures/admission/pod-sidecars.json', import.meta.url), 'utf8'),
    ) as AdmissionReview;
    const first = await reviewAdmission(review, { injection: CONFIG });
    const patch = JSON.parse(
      Buffer.from(first.response?.patch ?? '', 'base64').toString('utf8'),
    ) as Operation[];
    const injected = apply(review.request?.object as Pod, patch);
    const again = await reviewAdmission(
      {
        ...review,
        request: { ...(review.request as NonNullable<AdmissionReview['request']>), object: injected },
      },
      { injection: CONFIG },
    );
    expect(again.response).toEqual({ uid: review.request?.uid, allowed: true });
  });
});

describe('scheduling-gate wait mode', () => {
  const gatePod = (annotations: Record<string, string>, spec: Partial<Pod['spec']> = {}): Pod => ({
    metadata: { name: 'p', annotations: { [ANNOTATIONS.semaphore]: 's', ...annotations } },
    spec: { containers: [{ name: 'main', image: 'busybox' }], ...spec },
  });
  const gatesOf = (pod: Pod) => (pod.spec.schedulingGates ?? []).map((g) => g.name);

  it('adds the scheduling gate and records the start timeout on a pod that asks for the mode', () => {
    const pod = gatePod({ [ANNOTATIONS.waitMode]: 'scheduling-gate' });
    const out = apply(pod, buildInjectionPatch(pod, CONFIG));
    expectValidInjectedPod(out);
    expect(gatesOf(out)).toEqual([SCHEDULING_GATE]);
    expect(out.metadata.annotations?.[ANNOTATIONS.startTimeout]).toBe(DEFAULT_START_TIMEOUT);
    expect(out.metadata.annotations?.[ANNOTATIONS.waitMode]).toBe('scheduling-gate');
  });

  it('follows the default mode and records it on the pod; keeps a start timeout the pod sets', () => {
    const config = { ...CONFIG, defaultWaitMode: 'scheduling-gate' as const, defaultStartTimeout: '90s' };
    const pod = gatePod({});
    const out = apply(pod, buildInjectionPatch(pod, config));
    expect(gatesOf(out)).toEqual([SCHEDULING_GATE]);
    expect(out.metadata.annotations?.[ANNOTATIONS.waitMode]).toBe('scheduling-gate');
    expect(out.metadata.annotations?.[ANNOTATIONS.startTimeout]).toBe('90s');
    const own = gatePod({ [ANNOTATIONS.startTimeout]: '2m' });
    expect(
      apply(own, buildInjectionPatch(own, config)).metadata.annotations?.[ANNOTATIONS.startTimeout],
    ).toBe('2m');
  });

  it('adds nothing in init-container mode (the default), nor to a pod created with spec.nodeName', () => {
    for (const [pod, config] of [
      [gatePod({}), CONFIG],
      [
        gatePod({ [ANNOTATIONS.waitMode]: 'init-container' }),
        { ...CONFIG, defaultWaitMode: 'scheduling-gate' },
      ],
      [gatePod({}, { nodeName: 'n1' }), { ...CONFIG, defaultWaitMode: 'scheduling-gate' }],
      // A wait timeout needs konductor-wait running while the pod waits: the default mode does not gate it.
      [gatePod({ [ANNOTATIONS.waitTimeout]: '5m' }), { ...CONFIG, defaultWaitMode: 'scheduling-gate' }],
    ] as const) {
      const out = apply(pod, buildInjectionPatch(pod, config));
      expect(out.spec.schedulingGates).toBeUndefined();
      expect(out.metadata.annotations?.[ANNOTATIONS.startTimeout]).toBeUndefined();
    }
  });

  it('property: the gate is added once after the pod’s own gates, iff the mode is scheduling-gate; idempotent', () => {
    const gateName = fc.stringMatching(/^[a-z]{1,6}\.io\/[a-z]{1,6}$/);
    fc.assert(
      fc.property(
        fc.option(fc.uniqueArray(gateName, { maxLength: 3 }), { nil: undefined }),
        fc.constantFrom(undefined, 'init-container', 'scheduling-gate'),
        fc.constantFrom(undefined, 'init-container', 'scheduling-gate'),
        fc.boolean(),
        fc.boolean(),
        (own, annotated, defaultMode, bound, noAnnotations) => {
          // No annotation map at all (the patch builder creates it), or a valid request.
          const bare = noAnnotations && annotated === undefined;
          const annotations: Record<string, string> = { [ANNOTATIONS.semaphore]: 's' };
          if (annotated !== undefined) annotations[ANNOTATIONS.waitMode] = annotated;
          const pod: Pod = {
            metadata: { name: 'p', ...(bare ? {} : { annotations }) },
            spec: {
              containers: [{ name: 'main', image: 'busybox' }],
              ...(own ? { schedulingGates: own.map((name) => ({ name })) } : {}),
              ...(bound ? { nodeName: 'n1' } : {}),
            },
          };
          const config = defaultMode ? { ...CONFIG, defaultWaitMode: defaultMode } : CONFIG;
          const out = apply(pod, buildInjectionPatch(pod, config));
          expectValidInjectedPod(out);
          const gated = !bound && (annotated ?? defaultMode ?? 'init-container') === 'scheduling-gate';
          expect(gatesOf(out)).toEqual([...(own ?? []), ...(gated ? [SCHEDULING_GATE] : [])]);
          expect(out.metadata.annotations?.[ANNOTATIONS.waitMode]).toBe(
            gated ? 'scheduling-gate' : annotated,
          );
          expect(out.metadata.annotations?.[ANNOTATIONS.startTimeout]).toBe(
            gated ? DEFAULT_START_TIMEOUT : undefined,
          );
          expect(buildInjectionPatch(out, config)).toEqual([]);
        },
      ),
    );
  });

  it('admission denies scheduling-gate on a pod created with spec.nodeName, saying what to do', async () => {
    const pod = gatePod({ [ANNOTATIONS.waitMode]: 'scheduling-gate' }, { nodeName: 'n1' });
    const out = await reviewAdmission(
      {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: 'u1',
          kind: { group: '', version: 'v1', kind: 'Pod' },
          operation: 'CREATE',
          namespace: 'default',
          object: pod,
        },
      },
      { injection: CONFIG },
    );
    expect(out.response?.allowed).toBe(false);
    expect(out.response?.status?.message).toBe(
      'Pod default/p: konductor.io/wait-mode: "scheduling-gate" needs a pod the scheduler places, but ' +
        'spec.nodeName is set (n1) and the API server refuses scheduling gates on it: remove spec.nodeName, or ' +
        'use konductor.io/wait-mode: "init-container"',
    );
  });
});
