/**
 * The MutatingWebhookConfiguration konductor needs (DESIGN §5), as a pure function. The devcluster
 * installs this object; the Helm chart renders the same rules (a chart test compares them).
 */
import { ANNOTATION_PREFIX } from '../api/constants.ts';

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

export function buildWebhookConfiguration(opts: WebhookConfigurationOptions) {
  const common = {
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: opts.failurePolicy ?? 'Fail',
    timeoutSeconds: opts.timeoutSeconds ?? 5,
    clientConfig: opts.clientConfig,
    namespaceSelector: {
      matchExpressions: [
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: opts.excludedNamespaces },
        ...(opts.onlyNamespaces
          ? [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: opts.onlyNamespaces }]
          : []),
      ],
    },
    matchConditions: [{ name: 'has-konductor-annotations', expression: MATCH_KONDUCTOR_ANNOTATIONS }],
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
        rules: [
          {
            apiGroups: [''],
            apiVersions: ['v1'],
            resources: ['pods'],
            operations: ['CREATE'],
            scope: 'Namespaced',
          },
        ],
      },
      {
        name: 'workloads.konductor.io',
        ...common,
        reinvocationPolicy: 'Never',
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
