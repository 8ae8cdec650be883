/**
 * The pure injection patch builder (DESIGN §4, §5): `(pod, config) -> JSON patch` that adds
 *
 * - the init container `konductor-wait` (blocks the pod's start until the manager grants it),
 * - right after it the native sidecar `konductor-hold` (restartPolicy: Always; holds the grant while the
 *   pod runs and releases it on SIGTERM),
 * - the shared emptyDir `konductor-run` and the projected service-account token volume `konductor-token`
 *   (audience `konductor`) both containers mount,
 * - the label `konductor.io/managed: "true"` the controller's pod informer filters on,
 * - the annotation `konductor.io/injected` (the konductor version that injected the pod),
 * - in scheduling-gate wait mode (the pod's `konductor.io/wait-mode`, else the manager's default): the
 *   scheduling gate `konductor.io/wait` (the pod is not scheduled until the controller removes it), and the
 *   mode and the start timeout the pod runs under as its own annotations, so the pod says how it waits
 *   whatever the manager's defaults become.
 *
 * Placement: `konductor-wait` goes before the first regular (non-sidecar) init container, i.e. after any
 * native sidecars already leading `initContainers` (they start first, as they would without konductor,
 * so e.g. a service-mesh proxy is up before anything else), and `konductor-hold` right after it, so the
 * user's regular init containers and main containers only run once the grant is in.
 *
 * Idempotent by container name: a pod that already has `konductor-wait` gets an empty patch, so the
 * webhook can be re-invoked (`reinvocationPolicy: IfNeeded`) safely.
 */
import jsonpatch, { type Operation } from 'fast-json-patch';
import { type KonductorRequest, parseAnnotations } from '../api/annotations.ts';
import {
  AGENT_ENV,
  ANNOTATIONS,
  DEFAULT_START_TIMEOUT,
  DEFAULT_WAIT_MODE,
  HOLD_CONTAINER,
  MANAGED_LABEL,
  SCHEDULING_GATE,
  SHARED_MOUNT_PATH,
  SHARED_VOLUME,
  TOKEN_AUDIENCE,
  TOKEN_EXPIRATION_SECONDS,
  TOKEN_MOUNT_PATH,
  TOKEN_VOLUME,
  WAIT_CONTAINER,
  type WaitMode,
  WEBHOOK_ANNOTATIONS,
} from '../api/constants.ts';
import type { Container, EnvVar, Pod, ResourceRequirements, SecurityContext, Volume } from '../api/types.ts';

export interface InjectionConfig {
  /** Image of the agent (`konductor-agent`). */
  agentImage: string;
  /** https:// base URL of the manager's agent API, as reachable from pods. */
  agentUrl: string;
  /** PEM bundle of the CA(s) the agent trusts for agentUrl. */
  caBundle: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Resources of each injected container; default requests cpu 10m / memory 48Mi, limits memory 128Mi. */
  resources?: ResourceRequirements;
  /** Value of the `konductor.io/injected` annotation, default "true". */
  version?: string;
  /** Value of the `konductor.io/admitted-at` annotation (the admission time); omitted when absent. */
  admittedAt?: string;
  /** Wait mode of a pod without `konductor.io/wait-mode` (default init-container). */
  defaultWaitMode?: WaitMode;
  /** `konductor.io/start-timeout` of a scheduling-gate pod without one (default DEFAULT_START_TIMEOUT). */
  defaultStartTimeout?: string;
}

/**
 * How the pod waits: its annotation, else the default. A pod created with spec.nodeName already set is never
 * scheduled (the API server refuses scheduling gates on it), and a pod with konductor.io/wait-timeout needs
 * konductor-wait running while it waits (it counts the timeout): both wait in their init container.
 */
export function effectiveWaitMode(
  pod: Pick<Pod, 'spec'>,
  request: KonductorRequest | null | undefined,
  config: Pick<InjectionConfig, 'defaultWaitMode'>,
): WaitMode {
  if (typeof pod.spec?.nodeName === 'string' && pod.spec.nodeName !== '') return 'init-container';
  if (request?.waitMode !== undefined) return request.waitMode;
  if (request?.waitTimeoutMs !== undefined) return 'init-container';
  return config.defaultWaitMode ?? DEFAULT_WAIT_MODE;
}

/** Environment variable names the agent reads; re-exported for existing importers (api/constants.ts). */
export { AGENT_ENV };

/** Pod Security "restricted"-compliant context of both injected containers. */
export const AGENT_SECURITY_CONTEXT: Readonly<SecurityContext> = Object.freeze({
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
});

/**
 * The agent peaks at ~56 MiB RSS, most of it the Node.js binary's shared pages (docs/benchmarks.md): the
 * request reserves what it uses, the limit leaves headroom so an agent is never OOM-killed (which would
 * keep its pod from starting).
 */
export const DEFAULT_AGENT_RESOURCES: Readonly<ResourceRequirements> = Object.freeze({
  requests: { cpu: '10m', memory: '48Mi' },
  limits: { memory: '128Mi' },
});

/** True when the pod already carries the injected wait container. */
export function isInjected(pod: Pick<Pod, 'spec'>): boolean {
  return (pod.spec?.initContainers ?? []).some((c) => c?.name === WAIT_CONTAINER);
}

/**
 * Builds the injection patch. `request` is the pod's parsed konductor request (for the wait timeout); when
 * omitted it is parsed from the pod's annotations (invalid annotations then simply set no timeout: the
 * admission handler denies them before it gets here).
 */
export function buildInjectionPatch(
  pod: Pod,
  config: InjectionConfig,
  request?: KonductorRequest | null,
): Operation[] {
  if (isInjected(pod)) return [];
  const spec = pod.spec ?? ({} as Pod['spec']);
  const metadata = pod.metadata ?? {};
  const ops: Operation[] = [];

  if (request === undefined) {
    const parsed = parseAnnotations(metadata.annotations);
    request = parsed.ok ? parsed.request : null;
  }

  // metadata: managed label and injected annotation.
  if (pod.metadata === undefined || pod.metadata === null) {
    ops.push({
      op: 'add',
      path: '/metadata',
      value: {
        labels: { [MANAGED_LABEL]: 'true' },
        annotations: { [WEBHOOK_ANNOTATIONS.injected]: config.version ?? 'true' },
      },
    });
  } else {
    ops.push(...setMapEntry('/metadata/labels', metadata.labels, MANAGED_LABEL, 'true'));
    ops.push(
      ...setMapEntry(
        '/metadata/annotations',
        metadata.annotations,
        WEBHOOK_ANNOTATIONS.injected,
        config.version ?? 'true',
      ),
    );
  }

  const annotate = (key: string, value: string) => ops.push(annotationOp(pod, ops, key, value));
  if (config.admittedAt !== undefined) annotate(WEBHOOK_ANNOTATIONS.admittedAt, config.admittedAt);

  // scheduling-gate mode: the gate, and the mode and start timeout recorded on the pod.
  if (effectiveWaitMode(pod, request, config) === 'scheduling-gate') {
    const annotations = metadata.annotations ?? {};
    if (annotations[ANNOTATIONS.waitMode] === undefined) annotate(ANNOTATIONS.waitMode, 'scheduling-gate');
    if (annotations[ANNOTATIONS.startTimeout] === undefined)
      annotate(ANNOTATIONS.startTimeout, config.defaultStartTimeout ?? DEFAULT_START_TIMEOUT);
    const gates = Array.isArray(spec.schedulingGates) ? spec.schedulingGates : undefined;
    if (!gates) ops.push({ op: 'add', path: '/spec/schedulingGates', value: [{ name: SCHEDULING_GATE }] });
    else if (!gates.some((g) => g?.name === SCHEDULING_GATE))
      ops.push({ op: 'add', path: '/spec/schedulingGates/-', value: { name: SCHEDULING_GATE } });
  }

  // init containers: wait, then hold, before the first regular init container.
  const env = agentEnv(config, request?.waitTimeoutMs);
  const wait = agentContainer(WAIT_CONTAINER, ['wait'], env, config);
  const hold: Container = {
    ...agentContainer(HOLD_CONTAINER, ['hold'], env, config),
    restartPolicy: 'Always',
  };
  const initContainers = Array.isArray(spec.initContainers) ? spec.initContainers : undefined;
  const hasHold = (initContainers ?? []).some((c) => c?.name === HOLD_CONTAINER);
  if (!initContainers) {
    ops.push({ op: 'add', path: '/spec/initContainers', value: [wait, hold] });
  } else {
    let at = initContainers.findIndex((c) => c?.restartPolicy !== 'Always');
    if (at < 0) at = initContainers.length;
    ops.push({ op: 'add', path: `/spec/initContainers/${at}`, value: wait });
    if (!hasHold) ops.push({ op: 'add', path: `/spec/initContainers/${at + 1}`, value: hold });
  }

  // main containers: the grant (fencing token) read-only at the same path, so workloads can pass the
  // token on to downstream systems; a container that already mounts something there is left alone.
  (Array.isArray(spec.containers) ? spec.containers : []).forEach((c, i) => {
    const mounts = Array.isArray(c?.volumeMounts) ? c.volumeMounts : undefined;
    if (mounts?.some((m) => m?.mountPath === SHARED_MOUNT_PATH || m?.name === SHARED_VOLUME)) return;
    const mount = { name: SHARED_VOLUME, mountPath: SHARED_MOUNT_PATH, readOnly: true };
    ops.push(
      mounts
        ? { op: 'add', path: `/spec/containers/${i}/volumeMounts/-`, value: mount }
        : { op: 'add', path: `/spec/containers/${i}/volumeMounts`, value: [mount] },
    );
  });

  // volumes: shared emptyDir and projected token (kept if a volume of that name already exists).
  const newVolumes = [sharedVolume(), tokenVolume()];
  const volumes = Array.isArray(spec.volumes) ? spec.volumes : undefined;
  if (!volumes) {
    ops.push({ op: 'add', path: '/spec/volumes', value: newVolumes });
  } else {
    const names = new Set(volumes.map((v) => v?.name));
    for (const v of newVolumes) {
      if (!names.has(v.name)) ops.push({ op: 'add', path: '/spec/volumes/-', value: v });
    }
  }
  return ops;
}

/** Adds one annotation, creating the map when neither the pod nor an earlier op has it. */
function annotationOp(pod: Pod, earlier: readonly Operation[], key: string, value: string): Operation {
  const annotations = pod.metadata?.annotations;
  const hasMap =
    (annotations !== undefined && annotations !== null) ||
    earlier.some((op) => op.path === '/metadata/annotations' || op.path === '/metadata');
  return hasMap
    ? { op: 'add', path: `/metadata/annotations/${jsonpatch.escapePathComponent(key)}`, value }
    : { op: 'add', path: '/metadata/annotations', value: { [key]: value } };
}

function setMapEntry(
  mapPath: string,
  map: Record<string, string> | undefined,
  key: string,
  value: string,
): Operation[] {
  if (map === undefined || map === null || typeof map !== 'object') {
    return [{ op: 'add', path: mapPath, value: { [key]: value } }];
  }
  if (map[key] === value) return [];
  return [{ op: 'add', path: `${mapPath}/${jsonpatch.escapePathComponent(key)}`, value }];
}

function agentEnv(config: InjectionConfig, waitTimeoutMs: number | undefined): EnvVar[] {
  const env: EnvVar[] = [
    { name: AGENT_ENV.url, value: config.agentUrl },
    { name: AGENT_ENV.caBundle, value: config.caBundle },
    fieldRef(AGENT_ENV.podName, 'metadata.name'),
    fieldRef(AGENT_ENV.podNamespace, 'metadata.namespace'),
    fieldRef(AGENT_ENV.podUid, 'metadata.uid'),
  ];
  if (waitTimeoutMs !== undefined) {
    env.push({ name: AGENT_ENV.waitTimeout, value: String(Math.ceil(waitTimeoutMs)) });
  }
  return env;
}

function fieldRef(name: string, fieldPath: string): EnvVar {
  return { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } };
}

/** A deep copy of plain JSON data; several times cheaper than structuredClone on the admission hot path. */
function copyJson<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function agentContainer(name: string, args: string[], env: EnvVar[], config: InjectionConfig): Container {
  const c: Container = {
    name,
    image: config.agentImage,
    args,
    env: copyJson(env),
    volumeMounts: [
      { name: SHARED_VOLUME, mountPath: SHARED_MOUNT_PATH },
      { name: TOKEN_VOLUME, mountPath: TOKEN_MOUNT_PATH, readOnly: true },
    ],
    resources: copyJson(config.resources ?? DEFAULT_AGENT_RESOURCES),
    securityContext: copyJson(AGENT_SECURITY_CONTEXT),
  };
  if (config.imagePullPolicy) c.imagePullPolicy = config.imagePullPolicy;
  return c;
}

function sharedVolume(): Volume {
  return { name: SHARED_VOLUME, emptyDir: { sizeLimit: '1Mi' } };
}

function tokenVolume(): Volume {
  return {
    name: TOKEN_VOLUME,
    projected: {
      sources: [
        {
          serviceAccountToken: {
            audience: TOKEN_AUDIENCE,
            expirationSeconds: TOKEN_EXPIRATION_SECONDS,
            path: 'token',
          },
        },
      ],
    },
  };
}
