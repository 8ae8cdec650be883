/**
 * The devcluster control plane is a real Kubernetes API server: CRDs, watches through Informer,
 * status subresources, kubectl, and the TokenRequest/TokenReview flow the manager relies on.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Informer, type InformerEvent } from '../../api/informer.ts';
import { KubeApiError, KubeClient } from '../../api/kubeClient.ts';
import { clusterInfo } from '../helpers/cluster.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { waitFor, waitForObject } from '../helpers/waitFor.ts';

const ns = testNamespace('cluster');
const client = ns.client;

const GROUP = 'devcluster-test.konductor.io';
const CRD_NAME = `widgets.${GROUP}`;
const CRD_PATH = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`;

const widgetCrd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: CRD_NAME },
  spec: {
    group: GROUP,
    scope: 'Namespaced',
    names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                required: ['size'],
                properties: { size: { type: 'integer', minimum: 1 } },
              },
              status: { type: 'object', properties: { phase: { type: 'string' } } },
            },
          },
        },
      },
    ],
  },
};

interface Widget {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number };
  spec: { size: number };
  status?: { phase?: string };
}

interface Crd {
  status?: { conditions?: { type: string; status: string }[] };
}

afterAll(async () => {
  await client.delete(CRD_PATH).catch(() => {});
});

describe('devcluster control plane', () => {
  it('serves a CRD, watches custom objects through Informer, and patches their status subresource', async () => {
    await client.apply(CRD_PATH, widgetCrd, 'konductor-tests');
    await waitForObject<Crd & { metadata: { name: string } }>(
      client,
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
      CRD_NAME,
      (crd) => !!crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'),
      { message: 'the Widget CRD to be Established' },
    );

    const collection = `/apis/${GROUP}/v1/namespaces/${ns.name}/widgets`;
    const events: InformerEvent<Widget>[] = [];
    const informer = new Informer<Widget>(client, { path: collection, onEvent: (ev) => events.push(ev) });
    informer.start();
    try {
      await informer.synced;
      await client.create(collection, {
        apiVersion: `${GROUP}/v1`,
        kind: 'Widget',
        metadata: { name: 'w1' },
        spec: { size: 3 },
      });
      await waitFor(() => events.find((e) => e.type === 'added' && e.object.metadata.name === 'w1'), {
        message: 'the informer to see w1 added',
      });

      // The status subresource takes status and ignores spec changes.
      const patched = await client.patchMerge<Widget>(`${collection}/w1/status`, {
        spec: { size: 99 },
        status: { phase: 'Ready' },
      });
      expect(patched.status?.phase).toBe('Ready');
      expect(patched.spec.size).toBe(3);
      const updated = await waitFor(
        () => events.find((e) => e.type === 'updated' && e.object.status?.phase === 'Ready'),
        { message: 'the informer to see the status update' },
      );
      expect(informer.get(`${ns.name}/w1`)?.status?.phase).toBe('Ready');
      expect(updated.type === 'updated' && updated.old.status?.phase).toBeFalsy();

      // Schema validation is real.
      const invalid = await client
        .create(collection, {
          apiVersion: `${GROUP}/v1`,
          kind: 'Widget',
          metadata: { name: 'bad' },
          spec: { size: 0 },
        })
        .catch((err: unknown) => err);
      expect(invalid).toBeInstanceOf(KubeApiError);
      expect((invalid as KubeApiError).statusCode).toBe(422);

      await client.delete(`${collection}/w1`);
      await waitFor(() => events.find((e) => e.type === 'deleted'), {
        message: 'the informer to see w1 deleted',
      });
    } finally {
      informer.stop();
    }
  });

  it('works with kubectl and the written kubeconfig', async () => {
    const { stdout } = await kubectl(['get', 'namespaces', '-o', 'name']);
    expect(stdout).toContain(`namespace/${ns.name}`);
    const version = await kubectl(['version', '-o', 'json']);
    const v = JSON.parse(version.stdout) as { serverVersion: { gitVersion: string } };
    expect(v.serverVersion.gitVersion).toMatch(/^v1\.\d+\.\d+/);
  });

  it('issues service-account tokens with audience konductor that TokenReview validates', async () => {
    const sa = 'agent';
    await client.create(`/api/v1/namespaces/${ns.name}/serviceaccounts`, { metadata: { name: sa } });
    // A pod for the token to be bound to (pinned to a node that does not exist: nothing runs it).
    const pod = await client.create<{ metadata: { uid: string } }>(`/api/v1/namespaces/${ns.name}/pods`, {
      metadata: { name: 'holder' },
      spec: {
        nodeName: 'no-such-node',
        serviceAccountName: sa,
        containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', 'true'] }],
      },
    });
    const tokenPath = `/api/v1/namespaces/${ns.name}/serviceaccounts/${sa}/token`;
    const requestToken = async (audience: string) => {
      const tr = await client.create<{ status: { token: string } }>(tokenPath, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: [audience],
          expirationSeconds: 600,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'holder', uid: pod.metadata.uid },
        },
      });
      return tr.status.token;
    };
    interface Review {
      status: {
        authenticated?: boolean;
        audiences?: string[];
        user?: { username?: string; extra?: Record<string, string[]> };
        error?: string;
      };
    }
    const review = (token: string) =>
      client.create<Review>('/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, audiences: ['konductor'] },
      });

    const good = await review(await requestToken('konductor'));
    expect(good.status.authenticated).toBe(true);
    expect(good.status.audiences).toEqual(['konductor']);
    expect(good.status.user?.username).toBe(`system:serviceaccount:${ns.name}:${sa}`);
    expect(good.status.user?.extra?.['authentication.kubernetes.io/pod-name']).toEqual(['holder']);
    expect(good.status.user?.extra?.['authentication.kubernetes.io/pod-uid']).toEqual([pod.metadata.uid]);

    const wrongAudience = await review(await requestToken('someone-else'));
    expect(wrongAudience.status.authenticated).toBeFalsy();

    const forged = await review('eyJhbGciOiJSUzI1NiJ9.e30.c2ln');
    expect(forged.status.authenticated).toBeFalsy();
  });

  it('runs the controllers: the namespace gets its default service account and root CA', async () => {
    await waitForObject(client, `/api/v1/namespaces/${ns.name}/serviceaccounts`, 'default', () => true, {
      message: 'the serviceaccount controller to create default',
    });
    await waitForObject(client, `/api/v1/namespaces/${ns.name}/configmaps`, 'kube-root-ca.crt', () => true, {
      message: 'the root-ca publisher to create kube-root-ca.crt',
    });
    // The admin client of the global setup is what the kubeconfig says.
    const viaKubeconfig = KubeClient.fromKubeconfig(clusterInfo().kubeconfigPath);
    try {
      await expect(viaKubeconfig.get(`/api/v1/namespaces/${ns.name}`)).resolves.toBeTruthy();
    } finally {
      viaKubeconfig.close();
    }
  });
});
