import { KINDS, PRIMITIVE_KINDS, type PrimitiveKind } from './kinds.ts';

/** API group and version of konductor's custom resources. */
export const GROUP = 'sync.konductor.io';
export const VERSION = 'v1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** The kinds and their names live in the kind table (./kinds.ts). */
export { KINDS, type PrimitiveKind };
export const CATEGORY = 'konductor';

/** Prefix of every user-facing pod annotation. */
export const ANNOTATION_PREFIX = 'konductor.io/';
/** Each kind's own annotation (`konductor.io/<singular>`), by its singular name. */
type KindAnnotations = {
  [K in PrimitiveKind as (typeof KINDS)[K]['singular']]: (typeof KINDS)[K]['annotation'];
};
const PERMITS_ANNOTATION = 'konductor.io/permits';

/**
 * Every user-facing pod annotation: one per kind (from the kind table; `konductor.io/permits` right after a
 * counted kind's), then the modifiers.
 */
export const ANNOTATIONS = {
  ...(Object.fromEntries(
    PRIMITIVE_KINDS.flatMap((k) => [
      [KINDS[k].singular, KINDS[k].annotation],
      ...(KINDS[k].holds === 'permits' ? [['permits', PERMITS_ANNOTATION]] : []),
    ]),
  ) as KindAnnotations),
  permits: PERMITS_ANNOTATION,
  priority: 'konductor.io/priority',
  waitTimeout: 'konductor.io/wait-timeout',
  waitMode: 'konductor.io/wait-mode',
  startTimeout: 'konductor.io/start-timeout',
} as const;

/**
 * How a pod waits (`konductor.io/wait-mode`, default the manager's `--default-wait-mode`):
 * `init-container` — scheduled at once, it waits in `konductor-wait` (holding its node resources);
 * `scheduling-gate` — it also carries the scheduling gate SCHEDULING_GATE, so it stays unscheduled until the
 * controller granted it everything and removed the gate; `konductor-wait` still confirms the grant.
 */
export const WAIT_MODES = ['init-container', 'scheduling-gate'] as const;
export type WaitMode = (typeof WAIT_MODES)[number];
export const DEFAULT_WAIT_MODE: WaitMode = 'init-container';

/** The scheduling gate (spec.schedulingGates[].name) of a pod in scheduling-gate mode. */
export const SCHEDULING_GATE = 'konductor.io/wait';

/**
 * Default `konductor.io/start-timeout` of a scheduling-gate pod (the manager's `--default-start-timeout`): a
 * pod granted but still not bound to a node this long after its gate could go gives its grants back.
 */
export const DEFAULT_START_TIMEOUT = '5m';

/**
 * Namespace annotation by which a namespace lets Gates of other namespaces read its Jobs and primitives:
 * a comma-separated list of namespace names, or "*" (docs/security.md).
 */
export const GATE_READERS_ANNOTATION = 'konductor.io/gate-readers';

/** Label the webhook puts on every pod it injects; the controller's pod informer filters on it. */
export const MANAGED_LABEL = 'konductor.io/managed';

/** Names of the injected containers and volumes. */
export const WAIT_CONTAINER = 'konductor-wait';
export const HOLD_CONTAINER = 'konductor-hold';
export const SHARED_VOLUME = 'konductor-run';
export const SHARED_MOUNT_PATH = '/var/run/konductor';
export const GRANT_FILE = `${SHARED_MOUNT_PATH}/grant.json`;
export const TOKEN_VOLUME = 'konductor-token';
export const TOKEN_MOUNT_PATH = '/var/run/secrets/konductor';
export const TOKEN_FILE = `${TOKEN_MOUNT_PATH}/token`;
export const CA_FILE = `${TOKEN_MOUNT_PATH}/ca.crt`;

/** Audience of the projected service-account token the agent presents to the manager. */
export const TOKEN_AUDIENCE = 'konductor';
export const TOKEN_EXPIRATION_SECONDS = 3600;

/**
 * Environment variable names the agent reads (sidecar/config.ts); the webhook sets the first six on the
 * injected containers (webhook/injectionPatch.ts).
 */
export const AGENT_ENV = {
  url: 'KONDUCTOR_URL',
  caBundle: 'KONDUCTOR_CA_BUNDLE',
  podName: 'KONDUCTOR_POD_NAME',
  podNamespace: 'KONDUCTOR_POD_NAMESPACE',
  podUid: 'KONDUCTOR_POD_UID',
  /** Milliseconds, only set when the pod carries konductor.io/wait-timeout. */
  waitTimeout: 'KONDUCTOR_WAIT_TIMEOUT',
  /** Not set by the webhook: overrides the shared directory (default SHARED_MOUNT_PATH). */
  runDir: 'KONDUCTOR_RUN_DIR',
  /** Not set by the webhook: overrides the projected token's path (default TOKEN_FILE). */
  tokenFile: 'KONDUCTOR_TOKEN_FILE',
} as const;

/** Default image of the agent (the process kubelet of devcluster/ maps it to the local build). */
export const DEFAULT_AGENT_IMAGE = 'logiciq/konductor-agent:0.1.0';

/**
 * Annotation keys the webhook itself writes on the pods it injects. They live under the same prefix, so
 * the annotation parser accepts (and ignores) them instead of reporting them as unknown keys.
 */
export const WEBHOOK_ANNOTATIONS = {
  /** Set to the konductor version that injected the pod; marks the pod as already injected. */
  injected: 'konductor.io/injected',
  /**
   * When the webhook admitted the pod (RFC 3339, milliseconds). Breaks ties in arrival order between pods
   * scheduled within the same second (the API's timestamps have one-second precision), so FIFO holds.
   */
  admittedAt: 'konductor.io/admitted-at',
} as const;
export const RESERVED_ANNOTATIONS: readonly string[] = Object.values(WEBHOOK_ANNOTATIONS);
