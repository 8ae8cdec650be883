/**
 * The injected containers under Pod Security "restricted" on a real node, and how the agent finds the
 * manager: through the Service's DNS name (CoreDNS), not an IP.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { kubectl } from '../helpers/kubectl.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { e2eNamespace, ensureInstalled, kubectlJson, RELEASE, RELEASE_NS } from './helpers.ts';

const ns = e2eNamespace('restricted', { 'pod-security.kubernetes.io/enforce': 'restricted' });
const k = (args: string[], input?: string) =>
  kubectl(args, { namespace: ns.name, ...(input !== undefined ? { input } : {}) });

interface Container {
  name: string;
  env?: { name: string; value?: string }[];
  securityContext?: Record<string, unknown>;
}
interface PodJson {
  spec: { initContainers?: Container[]; containers: Container[] };
  status: { phase?: string; initContainerStatuses?: { name: string; state?: { running?: unknown } }[] };
}

/** A restricted-compliant pod that holds a semaphore permit while it sleeps. */
const restrictedPod = stringify({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'locked-down', annotations: { 'konductor.io/semaphore': 'one' } },
  spec: {
    restartPolicy: 'Never',
    terminationGracePeriodSeconds: 1,
    securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [
      {
        name: 'main',
        image: 'busybox:1.37',
        command: ['sh', '-c', 'id -u; sleep 30'],
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
      },
    ],
  },
});

/** Runs node in the running konductor-hold sidecar (the agent image has node and nothing else). */
const inHold = async (script: string) =>
  (await k(['exec', 'locked-down', '-c', 'konductor-hold', '--', 'node', '-e', script])).stdout.trim();

describe('injected containers on a real node', () => {
  beforeAll(async () => {
    await ensureInstalled();
    await k(
      ['apply', '-f', '-'],
      'apiVersion: sync.konductor.io/v1\nkind: Semaphore\nmetadata: {name: one}\nspec: {permits: 1}\n',
    );
    await k(['apply', '-f', '-'], restrictedPod);
    await waitFor(
      async () => {
        const p = await kubectlJson<PodJson>(['get', 'pod', 'locked-down'], ns.name);
        const hold = p.status.initContainerStatuses?.find((s) => s.name === 'konductor-hold');
        return p.status.phase === 'Running' && hold?.state?.running;
      },
      { timeoutMs: 120_000, message: 'the pod to run with its konductor-hold sidecar' },
    );
  }, 300_000);

  it('are admitted by Pod Security "restricted" and run as non-root on a read-only root filesystem', async () => {
    const p = await kubectlJson<PodJson>(['get', 'pod', 'locked-down'], ns.name);
    for (const name of ['konductor-wait', 'konductor-hold']) {
      const c = p.spec.initContainers?.find((x) => x.name === name);
      expect(c?.securityContext).toMatchObject({
        runAsNonRoot: true,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
    }
    // What the kernel says inside the running sidecar.
    expect(Number(await inHold('console.log(process.getuid())'))).not.toBe(0);
    expect(
      await inHold(
        "try { require('fs').writeFileSync('/probe', 'x'); console.log('written') } catch (e) { console.log(e.code) }",
      ),
    ).toBe('EROFS');
    expect((await k(['logs', 'locked-down', '-c', 'main'])).stdout.trim()).toBe('1000');
  });

  it('reach the manager by the Service DNS name through CoreDNS', async () => {
    const p = await kubectlJson<PodJson>(['get', 'pod', 'locked-down'], ns.name);
    const url = p.spec.initContainers
      ?.find((c) => c.name === 'konductor-wait')
      ?.env?.find((e) => e.name === 'KONDUCTOR_URL')?.value;
    const host = `${RELEASE}.${RELEASE_NS}.svc`;
    const svc = await kubectlJson<{ spec: { clusterIP: string; ports: { name: string; port: number }[] } }>(
      ['get', 'service', RELEASE],
      RELEASE_NS,
    );
    // The agent API has a port of its own on the Service (the admission webhook keeps 443).
    const agentPort = svc.spec.ports.find((p) => p.name === 'agent')?.port;
    expect(agentPort).toBe(9444);
    expect(url).toBe(`https://${host}:${agentPort}`);
    const resolved = await inHold(`require('dns').lookup('${host}', (e, a) => console.log(e ? e.code : a))`);
    expect(resolved).toBe(svc.spec.clusterIP);
    // The pod got its grant through that URL: it is the semaphore's holder.
    const sem = await kubectlJson<{ status: { holders?: { pod: string }[] } }>(
      ['get', 'semaphore', 'one'],
      ns.name,
    );
    expect(sem.status.holders?.map((h) => h.pod)).toEqual(['locked-down']);
  });
});
