/**
 * Cluster DNS as Kubernetes runs it: CoreDNS as a Deployment in kube-system behind the `kube-dns`
 * Service at CLUSTER_DNS_IP (the kubelet's clusterDNS), with upstream's RBAC, probes and
 * securityContext. Names outside the cluster go to the host's resolver when it has one.
 */

import { Resolver } from 'node:dns/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { stringify as toYaml } from 'yaml';
import { KUBERNETES_SERVICE_IP } from '../componentFlags.ts';
import { CLUSTER_DNS_IP, CLUSTER_DOMAIN } from './layout.ts';

export function corefile(forward: boolean): string {
  return [
    '.:53 {',
    '    errors',
    '    health {',
    '        lameduck 5s',
    '    }',
    '    ready',
    `    kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {`,
    '        pods insecure',
    '        fallthrough in-addr.arpa ip6.arpa',
    '        ttl 30',
    '    }',
    ...(forward ? ['    forward . /etc/resolv.conf', '    loop'] : []),
    '    cache 30',
    '    reload',
    '    loadbalance',
    '}',
    '',
  ].join('\n');
}

export function corednsManifests(image: string, forward: boolean): string {
  const labels = { 'k8s-app': 'kube-dns' };
  const ns = 'kube-system';
  const docs: Record<string, unknown>[] = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: ns } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'system:coredns' },
      rules: [
        {
          apiGroups: [''],
          resources: ['endpoints', 'services', 'pods', 'namespaces'],
          verbs: ['list', 'watch'],
        },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'system:coredns' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
      subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: ns }],
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'coredns', namespace: ns },
      data: { Corefile: corefile(forward) },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'coredns', namespace: ns, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: 'coredns',
            priorityClassName: 'system-cluster-critical',
            dnsPolicy: 'Default',
            tolerations: [{ key: 'CriticalAddonsOnly', operator: 'Exists' }],
            containers: [
              {
                name: 'coredns',
                image,
                imagePullPolicy: 'Never',
                args: ['-conf', '/etc/coredns/Corefile'],
                resources: { requests: { cpu: '50m', memory: '40Mi' }, limits: { memory: '170Mi' } },
                ports: [
                  { name: 'dns', containerPort: 53, protocol: 'UDP' },
                  { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
                ],
                securityContext: {
                  allowPrivilegeEscalation: false,
                  capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] },
                  readOnlyRootFilesystem: true,
                },
                livenessProbe: {
                  httpGet: { path: '/health', port: 8080 },
                  initialDelaySeconds: 10,
                  timeoutSeconds: 5,
                  failureThreshold: 5,
                },
                readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 2 },
                volumeMounts: [{ name: 'config-volume', mountPath: '/etc/coredns', readOnly: true }],
              },
            ],
            volumes: [{ name: 'config-volume', configMap: { name: 'coredns' } }],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kube-dns', namespace: ns, labels: { ...labels, 'kubernetes.io/name': 'CoreDNS' } },
      spec: {
        selector: labels,
        clusterIP: CLUSTER_DNS_IP,
        ports: [
          { name: 'dns', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, protocol: 'TCP' },
        ],
      },
    },
  ];
  return docs.map((d) => toYaml(d)).join('---\n');
}

/**
 * Resolves once the kube-dns Service answers from the host. CoreDNS being Ready is not enough: kube-proxy
 * programs the Service's endpoint a moment later, and until then a query to the ClusterIP is refused
 * (a pod's first nslookup failed with "Connection refused" right after the rollout).
 */
export async function waitForServiceDns(timeoutMs: number): Promise<void> {
  const resolver = new Resolver({ timeout: 1_000, tries: 1 });
  resolver.setServers([CLUSTER_DNS_IP]);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      // Only CoreDNS knows the name (the kubernetes Service is the range's first address).
      const addresses = await resolver.resolve4(`kubernetes.default.svc.${CLUSTER_DOMAIN}`);
      if (addresses.includes(KUBERNETES_SERVICE_IP)) return;
      throw new Error(`kubernetes.default resolved to ${addresses.join(', ')}`);
    } catch (err) {
      if (Date.now() >= deadline) {
        throw new Error(
          `the kube-dns Service (${CLUSTER_DNS_IP}) did not answer within ${timeoutMs} ms: ${(err as Error).message}`,
          { cause: err },
        );
      }
      await delay(200);
    }
  }
}
