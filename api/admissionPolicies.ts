/**
 * The ValidatingAdmissionPolicies konductor installs (docs/security.md), as a pure function. The devcluster
 * applies these objects; the Helm chart renders the same (a chart test compares them). They run inside the
 * API server (no webhook call, so they hold while the manager is down):
 *
 * - `require-injection` (pods, CREATE): a pod with a primitive annotation must carry konductor's injected
 *   agent — `konductor-wait` with the configured agent image and `args: [wait]`, mounting the projected
 *   `konductor-token` volume (audience `konductor`), as the first regular init container — and the
 *   `konductor.io/managed` label. A user container that merely borrows the name is not enough.
 * - `immutable-metadata` (pods, UPDATE): the `konductor.io/managed` label and every `konductor.io/`
 *   annotation keep the values they were admitted with (they decide what a pod waits for and holds; the
 *   controller's pod informer filters on the label). Other label and annotation edits, and the updates of
 *   kube-controller-manager (finalizers, ownerReferences), pass.
 * - `status-writer` (primitives' `/status`, UPDATE): only the manager's identity writes the status, the
 *   record of who holds what.
 */
import {
  ANNOTATION_PREFIX,
  GROUP,
  KINDS,
  MANAGED_LABEL,
  TOKEN_AUDIENCE,
  TOKEN_VOLUME,
  WAIT_CONTAINER,
} from './constants.ts';

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export interface AdmissionPolicyOptions {
  /** Prefix of the objects' names: `<prefix>-require-injection`, `-immutable-metadata`, `-status-writer`. */
  namePrefix: string;
  /** The agent image the webhook injects (`--agent-image`). */
  agentImage: string;
  /** The user name the manager authenticates as, e.g. `system:serviceaccount:konductor-system:konductor`. */
  managerUsername: string;
  /** Namespaces the policies apply in (the webhook's). */
  namespaceSelector: LabelSelector;
  labels?: Record<string, string>;
}

/** Shown when an annotated pod reaches the API server without the webhook's injection. */
export const NOT_INJECTED_MESSAGE =
  'pod has konductor.io annotations but was not injected by the konductor webhook; is the webhook running?';

/** Shown when a pod's konductor metadata is edited after admission (webhook and policy alike). */
export const IMMUTABLE_METADATA_MESSAGE =
  'the konductor.io/managed label and the konductor.io/ annotations of a pod are immutable after admission ' +
  '(they decide what the pod waits for and holds); delete and recreate the pod to change them';

/** The primitives' status subresources, sorted (as the chart lists them from its CRD files). */
export const STATUS_SUBRESOURCES = Object.values(KINDS)
  .map((k) => `${k.plural}/status`)
  .sort();

const q = (s: string) => `'${s}'`;

/** CEL (webhook matchConditions, `object`/`oldObject` untyped): the managed label or a konductor annotation changed. */
export const KONDUCTOR_METADATA_CHANGED =
  `object.metadata.?labels[?${q(MANAGED_LABEL)}] != oldObject.metadata.?labels[?${q(MANAGED_LABEL)}] || ` +
  `object.metadata.?annotations.orValue({}).exists(k, k.startsWith(${q(ANNOTATION_PREFIX)}) && ` +
  `object.metadata.?annotations[?k] != oldObject.metadata.?annotations[?k]) || ` +
  `oldObject.metadata.?annotations.orValue({}).exists(k, k.startsWith(${q(ANNOTATION_PREFIX)}) && ` +
  `!object.metadata.?annotations[?k].hasValue())`;

/** The primitive annotations (a pod carrying one must have been injected), sorted as the chart lists them. */
const PRIMITIVE_ANNOTATIONS = Object.values(KINDS)
  .map((k) => k.annotation)
  .sort();

function policy(name: string, labels: Record<string, string> | undefined, spec: Record<string, unknown>) {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: { failurePolicy: 'Fail', ...spec },
  };
}

function binding(name: string, labels: Record<string, string> | undefined, selector: LabelSelector) {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: {
      policyName: name,
      validationActions: ['Deny'],
      matchResources: { namespaceSelector: selector },
    },
  };
}

const podRule = (operation: 'CREATE' | 'UPDATE') => ({
  apiGroups: [''],
  apiVersions: ['v1'],
  resources: ['pods'],
  operations: [operation],
});

export function requireInjectionSpec(agentImage: string) {
  const wait = 'variables.wait[0]';
  return {
    matchConstraints: { resourceRules: [podRule('CREATE')] },
    matchConditions: [
      {
        name: 'has-konductor-primitive-annotation',
        expression: `has(object.metadata.annotations) && object.metadata.annotations.exists(k, k in [${PRIMITIVE_ANNOTATIONS.map(q).join(', ')}])`,
      },
    ],
    variables: [
      { name: 'initContainers', expression: 'object.spec.?initContainers.orValue([])' },
      { name: 'wait', expression: `variables.initContainers.filter(c, c.name == ${q(WAIT_CONTAINER)})` },
      {
        name: 'regularInitContainers',
        expression: `variables.initContainers.filter(c, c.?restartPolicy.orValue('') != 'Always').map(c, c.name)`,
      },
    ],
    validations: [
      { expression: 'variables.wait.size() == 1', message: NOT_INJECTED_MESSAGE, reason: 'Forbidden' },
      {
        expression:
          `variables.wait.size() != 1 || (${wait}.?image.orValue('') == ${q(agentImage)} && ` +
          `${wait}.?args.orValue([]) == ['wait'] && ` +
          `${wait}.?volumeMounts.orValue([]).exists(m, m.name == ${q(TOKEN_VOLUME)}))`,
        message:
          `init container ${WAIT_CONTAINER} is not the agent konductor injects (image ${agentImage}, args [wait], ` +
          `the ${TOKEN_VOLUME} volume mounted): the name is reserved for the konductor webhook`,
        reason: 'Forbidden',
      },
      {
        expression: `variables.regularInitContainers.size() > 0 && variables.regularInitContainers[0] == ${q(WAIT_CONTAINER)}`,
        message: `${WAIT_CONTAINER} must be the first init container that is not a native sidecar (as the konductor webhook injects it)`,
        reason: 'Forbidden',
      },
      {
        expression: `object.metadata.?labels[?${q(MANAGED_LABEL)}] == optional.of('true')`,
        message: `pod has konductor.io annotations but not the ${MANAGED_LABEL}: "true" label the konductor webhook sets`,
        reason: 'Forbidden',
      },
      {
        expression:
          `object.spec.?volumes.orValue([]).exists(v, v.name == ${q(TOKEN_VOLUME)} && ` +
          `v.?projected.?sources.orValue([]).exists(s, s.?serviceAccountToken.?audience == optional.of(${q(TOKEN_AUDIENCE)})))`,
        message: `pod lacks the projected ${TOKEN_VOLUME} volume (service-account token, audience ${TOKEN_AUDIENCE}) the konductor webhook injects`,
        reason: 'Forbidden',
      },
    ],
  };
}

export function immutableMetadataSpec() {
  const p = q(ANNOTATION_PREFIX);
  return {
    matchConstraints: { resourceRules: [podRule('UPDATE')] },
    variables: [
      { name: 'newAnnotations', expression: 'object.metadata.?annotations.orValue({})' },
      { name: 'oldAnnotations', expression: 'oldObject.metadata.?annotations.orValue({})' },
      {
        name: 'changedAnnotations',
        expression:
          `variables.newAnnotations.filter(k, k.startsWith(${p}) && (!(k in variables.oldAnnotations) || variables.oldAnnotations[k] != variables.newAnnotations[k])) + ` +
          `variables.oldAnnotations.filter(k, k.startsWith(${p}) && !(k in variables.newAnnotations))`,
      },
    ],
    validations: [
      {
        expression: `object.metadata.?labels[?${q(MANAGED_LABEL)}] == oldObject.metadata.?labels[?${q(MANAGED_LABEL)}]`,
        message: `${IMMUTABLE_METADATA_MESSAGE} (changed: ${MANAGED_LABEL})`,
        reason: 'Forbidden',
      },
      {
        expression: 'variables.changedAnnotations.size() == 0',
        messageExpression: `${q(`${IMMUTABLE_METADATA_MESSAGE} (changed: `)} + variables.changedAnnotations.join(', ') + ')'`,
        reason: 'Forbidden',
      },
    ],
  };
}

export function statusWriterSpec(managerUsername: string) {
  return {
    matchConstraints: {
      resourceRules: [
        {
          apiGroups: [GROUP],
          apiVersions: ['*'],
          resources: STATUS_SUBRESOURCES,
          operations: ['UPDATE'],
        },
      ],
    },
    validations: [
      {
        expression: `request.userInfo.username == ${q(managerUsername)}`,
        messageExpression: `${q(`the status of a konductor primitive is the record of who holds it: only the konductor manager (${managerUsername}) may write it, not `)} + request.userInfo.username`,
        reason: 'Forbidden',
      },
    ],
  };
}

/** The three policies and their bindings, in a stable order. */
export function buildAdmissionPolicies(opts: AdmissionPolicyOptions): Record<string, unknown>[] {
  const specs: [string, Record<string, unknown>][] = [
    ['require-injection', requireInjectionSpec(opts.agentImage)],
    ['immutable-metadata', immutableMetadataSpec()],
    ['status-writer', statusWriterSpec(opts.managerUsername)],
  ];
  return specs.flatMap(([suffix, spec]) => {
    const name = `${opts.namePrefix}-${suffix}`;
    return [policy(name, opts.labels, spec), binding(name, opts.labels, opts.namespaceSelector)];
  });
}

/** The user name of a service account, as the API server authenticates its tokens. */
export function serviceAccountUsername(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}
