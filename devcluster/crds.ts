/**
 * konductor's CRDs on a devcluster: applied server-side and waited for until Established and served.
 */
import { loadCrdManifests } from '../api/crds.ts';
import type { KubeClient } from '../api/kubeClient.ts';
import { resourcePath } from '../api/kubeRequest.ts';
import type { DevCluster } from './controlPlane.ts';

/** What installKonductor needs of a cluster (a DevCluster, or a test worker's view of the global one). */
export type ClusterHandle = Pick<DevCluster, 'client' | 'kubeconfigPath' | 'dataDir' | 'processes'>;

/** Server-side applies the CRDs and waits until every one is Established. */
export async function installCrds(client: KubeClient, timeoutMs = 30_000): Promise<void> {
  const crds = loadCrdManifests() as { metadata: { name: string } }[];
  for (const crd of crds) {
    await client.apply(
      resourcePath({
        group: 'apiextensions.k8s.io',
        version: 'v1',
        plural: 'customresourcedefinitions',
        name: crd.metadata.name,
      }),
      crd,
      'konductor-devcluster',
    );
  }
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    for (;;) {
      const got = await client.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
      );
      if (got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline)
        throw new Error(`CRD ${crd.metadata.name} not Established after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  // The API server serves a new CRD's REST endpoint a moment after Established; wait for discovery.
  for (const crd of crds) {
    const [plural, ...group] = crd.metadata.name.split('.');
    for (;;) {
      try {
        await client.list(`/apis/${group.join('.')}/v1/${plural}`, { limit: 1 });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}
