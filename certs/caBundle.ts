/**
 * Keeps `webhooks[*].clientConfig.caBundle` of the MutatingWebhookConfiguration equal to the trust bundle
 * of the self-managed certificates (current CA, plus the previous one during a rollover).
 *
 * GET + PUT with the resourceVersion read: a concurrent writer (another replica, `helm upgrade`) makes the
 * PUT fail with 409 and the loop reads again. Idempotent: no write when every webhook already carries the
 * bundle. A missing configuration is reported (`'missing'`), not an error: the chart may create it after the
 * manager starts, and the caller retries.
 */
import { konductorError } from '../api/errors.ts';
import { isConflict, isNotFound, type KubeClient } from '../api/kubeClient.ts';

interface WebhookConfiguration {
  metadata: { name: string; resourceVersion?: string };
  webhooks?: { name: string; clientConfig?: { caBundle?: string } & Record<string, unknown> }[];
}

export type CaBundleResult = 'updated' | 'unchanged' | 'missing';

export function webhookConfigurationPath(name: string): string {
  return `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${encodeURIComponent(name)}`;
}

/** base64 of the PEM bundle, as `clientConfig.caBundle` holds it. */
export function encodeCaBundle(pem: string): string {
  return Buffer.from(pem, 'utf8').toString('base64');
}

/** The configuration with every webhook's caBundle set (pure); undefined when nothing changes. */
export function withCaBundle<T extends WebhookConfiguration>(config: T, caBundleB64: string): T | undefined {
  const webhooks = config.webhooks ?? [];
  if (webhooks.every((w) => w.clientConfig?.caBundle === caBundleB64)) return undefined;
  return {
    ...config,
    webhooks: webhooks.map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: caBundleB64 } })),
  };
}

export async function ensureCaBundle(
  client: KubeClient,
  webhookConfigName: string,
  bundlePem: string,
  maxAttempts = 5,
  /** For tests: runs between each read and the PUT (a write made there makes the PUT a real 409). */
  beforeReplace?: () => void | Promise<void>,
): Promise<CaBundleResult> {
  const path = webhookConfigurationPath(webhookConfigName);
  const wanted = encodeCaBundle(bundlePem);
  let lastErr: unknown;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    let config: WebhookConfiguration;
    try {
      config = await client.get<WebhookConfiguration>(path);
    } catch (err) {
      if (isNotFound(err)) return 'missing';
      throw konductorError(
        'KDR_CERTS_CABUNDLE_FAILED',
        `cannot read MutatingWebhookConfiguration ${webhookConfigName}: ${(err as Error).message}`,
      ).causedBy(err);
    }
    const next = withCaBundle(config, wanted);
    if (!next) return 'unchanged';
    await beforeReplace?.();
    try {
      await client.replace(path, next);
      return 'updated';
    } catch (err) {
      if (isNotFound(err)) return 'missing';
      if (!isConflict(err)) {
        throw konductorError(
          'KDR_CERTS_CABUNDLE_FAILED',
          `cannot update caBundle of MutatingWebhookConfiguration ${webhookConfigName}: ${(err as Error).message}`,
        ).causedBy(err);
      }
      lastErr = err;
    }
  }
  throw konductorError(
    'KDR_CERTS_CABUNDLE_FAILED',
    `caBundle of MutatingWebhookConfiguration ${webhookConfigName} still conflicting after ${maxAttempts} attempts`,
  ).causedBy(lastErr);
}
