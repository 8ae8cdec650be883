/**
 * The error catalogue, in the manner of fastify's lib/errors.js: every error konductor raises on purpose, by
 * its stable code (KDR_<AREA>_<WHAT>), with its HTTP status and its message template, in this one module.
 * docs/errors.md lists each with what the user should do (test/unit/errors.test.ts keeps the two in step,
 * and checks that no other module spells a code).
 *
 * Raise one with `konductorError(code, ...templateArguments)`; an error that wraps another adds
 * `.causedBy(err)`. A message template takes the facts of the case (names, paths, the underlying error's
 * words) and says what happened and, where it helps, what to do.
 */

/** One catalogue entry: the HTTP status (where an error reaches HTTP) and the message template. */
interface ErrorSpec<A extends unknown[]> {
  statusCode: number;
  message: (...args: A) => string;
}

const spec = <A extends unknown[]>(statusCode: number, message: (...args: A) => string): ErrorSpec<A> => ({
  statusCode,
  message,
});

export const ERRORS = {
  // ---- api/: kubeconfig, Kubernetes API, CRDs, durations -------------------------------------------
  KDR_KUBECONFIG_MISSING: spec(500, (files?: readonly string[]) =>
    files === undefined
      ? 'no kubeconfig: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a cluster'
      : `kubeconfig not found: ${files.join(', ')}`,
  ),
  KDR_KUBECONFIG_UNREADABLE: spec(
    500,
    (path: string, reason: string) => `cannot read kubeconfig ${path}: ${reason}`,
  ),
  KDR_KUBECONFIG_CONTEXT: spec(
    500,
    (context: string | undefined, where: string, known: readonly string[]) =>
      `${context ? `context "${context}" is not in` : 'no current-context in'} ${where} (contexts: ${known.join(', ') || 'none'})`,
  ),
  KDR_KUBECONFIG_INVALID: spec(
    500,
    (context: string, where: string) =>
      `context "${context}" in ${where} names a cluster that is not defined`,
  ),
  KDR_KUBECONFIG_CREDENTIALS: spec(
    401,
    (context: string, reason: string) => `cannot get credentials for context "${context}": ${reason}`,
  ),
  KDR_KUBECONFIG_RESOLVER: spec(500, (problem: string) => problem),
  /** An answer of the Kubernetes API server (its status; 0 when none came): KubeApiError. */
  KDR_KUBE_API: spec(502, (request: string, detail: string) => `${request}: ${detail}`),
  KDR_CRD_INVALID: spec(500, (file: string) => `${file} is not a YAML object`),
  KDR_DURATION_INVALID: spec(400, (problem: string) => problem),
  KDR_DURATION_TOO_LONG: spec(
    400,
    (value: string, bound: string) => `duration ${value} is too long: it ${bound}`,
  ),

  // ---- controller/: the agent API ---------------------------------------------------------------------
  KDR_AGENT_NO_TOKEN: spec(401, () => 'missing bearer token'),
  KDR_AGENT_UNAUTHENTICATED: spec(401, (why: string) => `token rejected: ${why}`),
  KDR_AGENT_WRONG_AUDIENCE: spec(401, (audience: string) => `token audience is not "${audience}"`),
  KDR_AGENT_NOT_POD_TOKEN: spec(
    403,
    () => 'token is not a service-account token bound to a pod (use the projected token konductor injects)',
  ),
  KDR_AGENT_AUTH_BUSY: spec(503, () => 'too many token reviews in progress; retry later'),
  KDR_AGENT_AUTH_UNAVAILABLE: spec(
    503,
    (reason: string) => `cannot verify the token now (TokenReview failed: ${reason}); retry`,
  ),
  KDR_AGENT_AUTH_FAILED: spec(500, (reason: string) => `cannot authenticate the request: ${reason}`),
  KDR_AGENT_POD_UNKNOWN: spec(
    404,
    (namespace: string, pod: string) =>
      `pod ${namespace}/${pod} is not a konductor-managed pod with a konductor request`,
  ),
  KDR_AGENT_RELEASE_UNAVAILABLE: spec(
    503,
    (namespace: string, pod: string) =>
      `cannot read pod ${namespace}/${pod} from the API server; its grants go back when its status shows it stopped`,
  ),

  // ---- webhook/ -----------------------------------------------------------------------------------------
  KDR_WEBHOOK_BAD_REQUEST: spec(400, (reason: string) => reason),
  KDR_WEBHOOK_NOT_ADMISSION_REVIEW: spec(400, (problem: string) => problem),
  KDR_WEBHOOK_BUSY: spec(
    429,
    (inFlightBytes: number) => `admission reviews of ${inFlightBytes} bytes are in progress; retry`,
  ),
  KDR_WEBHOOK_INTERNAL: spec(500, (reason: string) => reason),

  // ---- sidecar/: the agent -------------------------------------------------------------------------------
  KDR_AGENT_CONFIG_INVALID: spec(400, (problem: string) => problem),
  KDR_AGENT_TOKEN_UNREADABLE: spec(500, (path: string, errno?: string) =>
    errno === undefined
      ? `the service-account token file ${path} is empty`
      : `cannot read the service-account token ${path} (${errno}); the webhook mounts it as a projected volume`,
  ),

  // ---- certs/ ---------------------------------------------------------------------------------------------
  KDR_CERTS_OPTIONS_INVALID: spec(500, (problem: string) => problem),
  KDR_CERTS_INVALID: spec(500, (reason: string) => `cannot parse CA certificate: ${reason}`),
  KDR_CERTS_SECRET_FAILED: spec(
    500,
    (action: string, secret: string, reason: string) => `cannot ${action} Secret ${secret}: ${reason}`,
  ),
  KDR_CERTS_SELF_MANAGED_FAILED: spec(500, (problem: string) => problem),
  KDR_CERTS_CABUNDLE_FAILED: spec(500, (problem: string) => problem),
  KDR_CERTS_TLS_READ_FAILED: spec(500, (path: string, reason?: string) =>
    reason === undefined ? `${path} is empty` : `cannot read ${path}: ${reason}`,
  ),

  // ---- plugin/: kubectl konductor ----------------------------------------------------------------------
  KDR_PLUGIN_USAGE: spec(400, (problem: string) => `${problem} (kubectl konductor --help)`),
  KDR_PLUGIN_BAD_REFERENCE: spec(
    400,
    (kinds: string, arg: string) =>
      `expected KIND/NAME, e.g. semaphore/batch-slots (kinds: ${kinds}); got ${JSON.stringify(arg)}`,
  ),
  KDR_PLUGIN_NOT_FOUND: spec(404, (what: string) => `${what} not found`),
  KDR_PLUGIN_NO_CRDS: spec(
    404,
    (group: string) =>
      `konductor's custom resources (${group}) are not installed in this cluster: install the chart first`,
  ),

  // ---- devcluster/: the local control plane and the process kubelet -------------------------------------
  KDR_DEVCLUSTER_PORT_IN_USE: spec(500, (detail: string) => detail),
  KDR_DEVCLUSTER_COMPONENT_FAILED: spec(500, (detail: string) => detail),
  KDR_DEVCLUSTER_BUILD_FAILED: spec(500, (detail: string) => detail),
  KDR_DEVCLUSTER_UNKNOWN_TOOLSET: spec(500, (id: string) => `unknown Go tool set "${id}"`),
  KDR_DEVCLUSTER_GO_MISSING: spec(500, (detail: string) => detail),
  KDR_DEVCLUSTER_BIN_DIR_MISSING: spec(
    500,
    (variable: string, dir: string) => `${variable}=${dir} does not exist`,
  ),
  KDR_KUBELET_OPTIONS: spec(
    500,
    () => 'startProcessKubelet needs `cluster` (a devcluster) or both `client` and `caCertPath`',
  ),
  KDR_KUBELET_CA: spec(
    500,
    (path: string, reason: string) => `process kubelet: cannot read the cluster CA ${path}: ${reason}`,
  ),
  KDR_KUBELET_REGISTER: spec(
    500,
    (node: string, reason: string) => `process kubelet: cannot register node ${node}: ${reason}`,
  ),
  KDR_KUBELET_NO_UNSHARE: spec(
    500,
    (missing: string) =>
      `the process kubelet needs ${missing} on PATH to run containers in a private mount namespace; ` +
      'install util-linux (and run as root, or with CAP_SYS_ADMIN)',
  ),
  KDR_KUBELET_VOLUME: spec(
    500,
    (volume: string, pod: string, reason: string) =>
      `MountVolume.SetUp failed for volume "${volume}" of pod ${pod}: ${reason}`,
  ),

  // ---- cert-manager for the devcluster (devcluster/certmanager/): the message names what failed ----
  KDR_CERTMANAGER_TOOLSET: spec(500, (detail: string) => detail),
  KDR_CERTMANAGER_MODULE: spec(500, (detail: string) => detail),
  KDR_CERTMANAGER_CHART: spec(500, (detail: string) => detail),
  KDR_CERTMANAGER_NOT_READY: spec(500, (detail: string) => detail),
  KDR_CERTMANAGER_INSTALL_FAILED: spec(500, (detail: string) => detail),

  // ---- the images built from the Dockerfiles (devcluster/images/): the message names what failed ----
  KDR_IMAGES_TOOL_FAILED: spec(500, (detail: string) => detail),
  KDR_IMAGES_NODE_MISSING: spec(500, (detail: string) => detail),
  KDR_IMAGES_BUILD_FAILED: spec(500, (detail: string) => detail),
  KDR_IMAGES_NEEDS_ROOT: spec(500, (detail: string) => detail),
  KDR_IMAGES_APT_FAILED: spec(500, (detail: string) => detail),
  KDR_IMAGES_DEB_UNKNOWN: spec(500, (detail: string) => detail),
  KDR_IMAGES_TOOLS_MISSING: spec(500, (detail: string) => detail),
  KDR_IMAGES_COPY_SOURCE: spec(500, (detail: string) => detail),
  KDR_IMAGES_DOCKERFILE_INVALID: spec(500, (detail: string) => detail),
  KDR_IMAGES_DOCKERFILE_UNSUPPORTED: spec(500, (detail: string) => detail),
  KDR_IMAGES_BASE_MISSING: spec(500, (detail: string) => detail),
  KDR_IMAGES_USER_UNKNOWN: spec(500, (detail: string) => detail),
  KDR_IMAGES_RUN_FAILED: spec(500, (detail: string) => detail),
  KDR_IMAGES_IMPORT_FAILED: spec(500, (detail: string) => detail),
  KDR_IMAGES_BAD_NAME: spec(500, (detail: string) => detail),
  KDR_IMAGES_NO_LAYERS: spec(500, (detail: string) => detail),
  KDR_IMAGES_BLOB_SIZE: spec(500, (detail: string) => detail),
  KDR_IMAGES_ARCHIVE_INVALID: spec(500, (detail: string) => detail),
  KDR_IMAGES_PATH_ESCAPES: spec(500, (detail: string) => detail),
  KDR_IMAGES_PATH_LOOP: spec(500, (detail: string) => detail),
  KDR_IMAGES_NOT_A_DIRECTORY: spec(500, (detail: string) => detail),
  KDR_IMAGES_UNSUPPORTED_FILE: spec(500, (detail: string) => detail),
  KDR_IMAGES_TAR_ENTRY: spec(500, (detail: string) => detail),
  KDR_IMAGES_TAR_CHANGED: spec(500, (detail: string) => detail),
  KDR_IMAGES_TAR_CORRUPT: spec(500, (detail: string) => detail),

  // ---- the real node (devcluster/realnode/): the message names what failed ----
  KDR_REALNODE_PACKAGES_MISSING: spec(500, (detail: string) => detail),
  KDR_REALNODE_CONTAINERD_FAILED: spec(500, (detail: string) => detail),
  KDR_REALNODE_COMMAND_FAILED: spec(500, (detail: string) => detail),
  KDR_REALNODE_HOST_UNSUPPORTED: spec(500, (detail: string) => detail),
  KDR_REALNODE_HELM_FAILED: spec(500, (detail: string) => detail),
  KDR_REALNODE_KUBELET_FAILED: spec(500, (detail: string) => detail),
  KDR_REALNODE_BUSY: spec(500, (detail: string) => detail),
  KDR_REALNODE_ADDRESS_IN_USE: spec(500, (detail: string) => detail),

  // ---- campaign/: the fault campaign ----
  KDR_CAMPAIGN_NODE_UNAVAILABLE: spec(
    500,
    (node: string, detail: string) =>
      `--node ${node} cannot run the campaign here: ${detail} (docs/reliability.md, Nodes); --node process needs none of it`,
  ),
} as const;

export type ErrorCode = keyof typeof ERRORS;
type TemplateArgs<C extends ErrorCode> = Parameters<(typeof ERRORS)[C]['message']>;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

export class KonductorError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  /**
   * Prefer konductorError(code, ...args). The constructor takes a message already rendered: an error that
   * crossed a process boundary (the kubeconfig resolver), or the Kubernetes API's own words (KubeApiError).
   */
  constructor(code: ErrorCode, message: string, statusCode: number = ERRORS[code].statusCode) {
    super(message);
    this.name = 'KonductorError';
    this.code = code;
    this.statusCode = statusCode;
  }

  /** Records the error this one wraps (`err.cause`). */
  causedBy(cause: unknown): this {
    this.cause = cause;
    return this;
  }
}

/** The catalogue's error `code`, its message rendered from the template's arguments. */
export function konductorError<C extends ErrorCode>(code: C, ...args: TemplateArgs<C>): KonductorError {
  const { message } = ERRORS[code] as ErrorSpec<TemplateArgs<C>>;
  return new KonductorError(code, message(...args));
}

export function isKonductorError(err: unknown): err is KonductorError {
  return err instanceof KonductorError;
}

/** The JSON body of an HTTP error answer: `{code, message}`. */
export function errorBody(err: KonductorError): { code: ErrorCode; message: string } {
  return { code: err.code, message: err.message };
}
