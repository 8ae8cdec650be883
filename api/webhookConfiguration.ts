/**
 * The MutatingWebhookConfiguration konductor needs (DESIGN §5), as a pure function. The devcluster
 * installs this object; the Helm chart renders the same rules (a chart test compares them).
 */

import { KONDUCTOR_METADATA_CHANGED } from './admissionPolicies.ts';
import { ANNOTATION_PREFIX } from './constants.ts';

export interface WebhookClientConfig {
  url?: string;
  service?: { name: string; namespace: string; path: string; port?: number };
  caBundle?: string; // base64 PEM
}

export interface WebhookConfigurationOptions {
  name: string;
  clientConfig: WebhookClientConfig;
  /** Namespaces never mutated (kube-system and konductor's own). */
  excludedNamespaces: string[];
  /** Only these namespaces (a namespace-scoped manager, e.g. one per test namespace); all when absent. */
  onlyNamespaces?: string[];
  failurePolicy?: 'Fail' | 'Ignore';
  timeoutSeconds?: number;
}

/** CEL: the object carries at least one konductor.io/ annotation. */
export const MATCH_KONDUCTOR_ANNOTATIONS = `has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('${ANNOTATION_PREFIX}'))`;

/**
 * CEL of the pods webhook: a CREATE of an annotated pod (inject), or an UPDATE that changes the pod's
 * konductor metadata (deny: it is immutable). Every other pod update — the kubelet's, the garbage
 * collector's, finalizer removals — never reaches the webhook, so they pass even while the manager is down.
 */
export const MATCH_POD_REQUEST = `request.operation == 'UPDATE' ? (${KONDUCTOR_METADATA_CHANGED}) : (${MATCH_KONDUCTOR_ANNOTATIONS})`;

/**
 * CEL of the workloads webhook: the Job or CronJob, or its pod template, carries a konductor.io/ annotation
 * (a bad annotation in the template is denied at the Job, not later as FailedCreate events).
 */
export const MATCH_WORKLOAD_ANNOTATIONS =
  '[object.metadata.?annotations.orValue({}), object.?spec.?template.?metadata.?annotations.orValue({}), ' +
  'object.?spec.?jobTemplate.?spec.?template.?metadata.?annotations.orValue({})]' +
  `.exists(m, m.exists(k, k.startsWith('${ANNOTATION_PREFIX}')))`;

/** The namespaces the webhook (and the admission policies) apply in. */
export function webhookNamespaceSelector(
  opts: Pick<WebhookConfigurationOptions, 'excludedNamespaces' | 'onlyNamespaces'>,
) {
  return {
    matchExpressions: [
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: opts.excludedNamespaces },
      ...(opts.onlyNamespaces
        ? [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: opts.onlyNamespaces }]
        : []),
    ],
  };
}

export function buildWebhookConfiguration(opts: WebhookConfigurationOptions) {
  const common = {
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: opts.failurePolicy ?? 'Fail',
    timeoutSeconds: opts.timeoutSeconds ?? 5,
    clientConfig: opts.clientConfig,
    namespaceSelector: webhookNamespaceSelector(opts),
  };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: opts.name, labels: { 'app.kubernetes.io/name': 'konductor' } },
    webhooks: [
      {
        name: 'pods.konductor.io',
        ...common,
        reinvocationPolicy: 'IfNeeded',
        matchConditions: [{ name: 'konductor-pod-request', expression: MATCH_POD_REQUEST }],
        rules: [
          {
            apiGroups: [''],
            apiVersions: ['v1'],
            resources: ['pods'],
            operations: ['CREATE', 'UPDATE'],
            scope: 'Namespaced',
          },
        ],
      },
      {
        name: 'workloads.konductor.io',
        ...common,
        reinvocationPolicy: 'Never',
        matchConditions: [{ name: 'has-konductor-annotations', expression: MATCH_WORKLOAD_ANNOTATIONS }],
        rules: [
          {
            apiGroups: ['batch'],
            apiVersions: ['v1'],
            resources: ['jobs'],
            operations: ['CREATE'],
            scope: 'Namespaced',
          },
          {
            apiGroups: ['batch'],
            apiVersions: ['v1'],
            resources: ['cronjobs'],
            operations: ['CREATE', 'UPDATE'],
            scope: 'Namespaced',
          },
        ],
      },
    ],
  };
}
