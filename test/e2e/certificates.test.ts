/**
 * The chart on a real node, both certificate modes, and its life cycle as a user runs it:
 * - `helm install` with the chart's defaults: cert-manager issues the serving certificate (its
 *   Certificate is Ready, the Secret's CA signed it) and cainjector puts that CA into the webhook
 *   configuration's caBundle; an annotated pod is injected and runs;
 * - `helm uninstall`: the CRDs and the primitives stay;
 * - `helm install --set certManager.enabled=false`: the manager makes its own CA and certificate,
 *   stores them in a Secret and patches the caBundle itself; an annotated pod is injected and runs;
 * - `helm upgrade` (a changed value): the manager rolls over, the primitive and its history stay.
 */
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { kubectl } from '../helpers/kubectl.ts';
import { waitFor } from '../helpers/waitFor.ts';
import {
  e2eNamespace,
  ensureInstalled,
  helm,
  installArgs,
  installedMode,
  kubectlJson,
  MANAGER_SELECTOR,
  RELEASE,
  RELEASE_NS,
  waitForInjection,
} from './helpers.ts';

const ns = e2eNamespace('certs');

interface Secret {
  data: Record<string, string>;
}
interface WebhookConfig {
  webhooks: { name: string; clientConfig: { caBundle?: string } }[];
  metadata: { annotations?: Record<string, string> };
}

const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/** The webhook configuration's caBundle (every webhook of it carries the same). */
async function caBundle(): Promise<string> {
  const cfg = await kubectlJson<WebhookConfig>(['get', 'mutatingwebhookconfiguration', RELEASE]);
  const bundles = new Set(cfg.webhooks.map((w) => w.clientConfig.caBundle ?? ''));
  expect(bundles.size).toBe(1);
  return b64([...bundles][0] ?? '');
}

/** Checks the serving certificate in `secret` chains to the CA in the caBundle, for the Service's DNS name. */
async function expectServingChain(secretName: string): Promise<void> {
  const secret = await kubectlJson<Secret>(['get', 'secret', secretName], RELEASE_NS);
  const serving = new X509Certificate(b64(secret.data['tls.crt'] ?? ''));
  const ca = new X509Certificate(await caBundle());
  expect(serving.verify(ca.publicKey)).toBe(true);
  expect(serving.subjectAltName).toContain(`DNS:${RELEASE}.${RELEASE_NS}.svc`);
}

/** An annotated pod is injected and passes its wait (the Semaphore has a free permit). */
async function runAnnotatedPod(name: string): Promise<void> {
  await kubectl(['apply', '-f', '-'], {
    namespace: ns.name,
    input: `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  annotations: { konductor.io/semaphore: slots }
spec:
  restartPolicy: Never
  containers:
    - { name: main, image: busybox:1.37, command: ["sh", "-c", "echo ran"] }
`,
  });
  await waitFor(
    async () =>
      (await kubectlJson<{ status: { phase: string } }>(['get', 'pod', name], ns.name)).status.phase ===
      'Succeeded',
    { timeoutMs: 90_000, message: `pod ${name} to succeed` },
  );
}

const semaphore = `apiVersion: sync.konductor.io/v1
kind: Semaphore
metadata: { name: slots }
spec: { permits: 1 }
`;

describe('helm install, uninstall, upgrade on a real node', () => {
  it('default install: cert-manager issues the certificate, cainjector injects the caBundle, pods get injected', async () => {
    if (await installedMode()) await helm(['uninstall', RELEASE, '--namespace', RELEASE_NS, '--wait']);
    await helm(installArgs('cert-manager'));
    const cert = await kubectlJson<{
      status: { conditions?: { type: string; status: string }[] };
      spec: { issuerRef: { name: string } };
    }>(['get', 'certificate.cert-manager.io', `${RELEASE}-serving`], RELEASE_NS);
    expect(cert.status.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(cert.spec.issuerRef.name).toBe(`${RELEASE}-ca`);
    const cfg = await kubectlJson<WebhookConfig>(['get', 'mutatingwebhookconfiguration', RELEASE]);
    expect(cfg.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe(
      `${RELEASE_NS}/${RELEASE}-serving`,
    );
    await waitForInjection();
    // cainjector's caBundle is the CA cert-manager signed the serving certificate with.
    const caSecret = await kubectlJson<Secret>(['get', 'secret', `${RELEASE}-webhook-tls`], RELEASE_NS);
    expect(await caBundle()).toContain(b64(caSecret.data['ca.crt'] ?? '').trim());
    await expectServingChain(`${RELEASE}-webhook-tls`);

    await kubectl(['apply', '-f', '-'], { namespace: ns.name, input: semaphore });
    await runAnnotatedPod('with-cert-manager');
  });

  it('helm uninstall keeps the CRDs and the primitives', async () => {
    await helm(['uninstall', RELEASE, '--namespace', RELEASE_NS, '--wait']);
    expect(await installedMode()).toBeUndefined();
    const crds = (await kubectl(['get', 'crd', '-o', 'name'])).stdout;
    for (const kind of ['semaphores', 'leases', 'barriers', 'gates']) {
      expect(crds).toContain(`${kind}.sync.konductor.io`);
    }
    const sem = await kubectlJson<{ spec: { permits: number } }>(['get', 'semaphore', 'slots'], ns.name);
    expect(sem.spec.permits).toBe(1);
    // The Deployment's pods go with it (garbage collection, after helm returned).
    await waitFor(
      async () =>
        (await kubectlJson<{ items: unknown[] }>(['get', 'pods', '-l', MANAGER_SELECTOR], RELEASE_NS)).items
          .length === 0,
      { timeoutMs: 60_000, message: 'the manager pod to be gone' },
    );
  });

  it('self-managed install: the manager issues its own certificate and patches the caBundle', async () => {
    await helm(installArgs('self-managed'));
    await waitForInjection();
    const certificates = await kubectl(['get', 'certificates.cert-manager.io', '-o', 'name'], {
      namespace: RELEASE_NS,
    });
    expect(certificates.stdout.trim()).toBe('');
    await expectServingChain(`${RELEASE}-webhook-tls`);
    await runAnnotatedPod('self-managed');
  });

  it('helm upgrade rolls the manager over with the new value; primitives and grants history stay', async () => {
    const before = await kubectlJson<{ items: { metadata: { name: string } }[] }>(
      ['get', 'pods', '-l', MANAGER_SELECTOR],
      RELEASE_NS,
    );
    await helm(installArgs('self-managed', ['--set', 'controller.args.logLevel=debug']));
    const deploy = await kubectlJson<{ spec: { template: { spec: { containers: { args: string[] }[] } } } }>(
      ['get', 'deployment', RELEASE],
      RELEASE_NS,
    );
    expect(deploy.spec.template.spec.containers[0]?.args).toContain('--log-level=debug');
    await waitFor(
      async () => {
        const now = await kubectlJson<{ items: { metadata: { name: string } }[] }>(
          ['get', 'pods', '-l', MANAGER_SELECTOR, '--field-selector=status.phase=Running'],
          RELEASE_NS,
        );
        const names = now.items.map((p) => p.metadata.name);
        return names.length === 1 && !before.items.some((b) => names.includes(b.metadata.name));
      },
      { timeoutMs: 120_000, message: 'the upgraded manager pod to replace the old one' },
    );
    const history = (await helm(['history', RELEASE, '--namespace', RELEASE_NS, '-o', 'json'])).stdout;
    expect(JSON.parse(history).length).toBe(2);
    await waitForInjection();
    await runAnnotatedPod('after-upgrade');
    const sem = await kubectlJson<{ status: { inUse?: number } }>(['get', 'semaphore', 'slots'], ns.name);
    expect(sem.status.inUse ?? 0).toBe(0);
    // Leave the default install for the other files.
    await ensureInstalled('cert-manager');
  });
});
