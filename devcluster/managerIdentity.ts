/**
 * The devcluster's manager runs with its own identity, as the chart's Deployment does: a ServiceAccount
 * bound to the chart's RBAC (the same rules: `managerRbacRules`, compared with charts/konductor by a chart
 * test), authenticated with a token of that ServiceAccount (TokenRequest API) in a kubeconfig of its own.
 * Never the admin's client certificate: the `status-writer` admission policy tells the manager apart from
 * everyone else by this user name (docs/security.md).
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { serviceAccountUsername } from '../api/admissionPolicies.ts';
import { GROUP, KINDS } from '../api/constants.ts';
import type { KubeClient } from '../api/kubeClient.ts';
import { loadKubeConfig } from '../api/kubeconfig.ts';

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  resourceNames?: string[];
  verbs: string[];
}

export interface ManagerRbacOptions {
  /** Self-managed certificates: the webhook configuration the manager patches and its Secret. */
  selfManaged?: { webhookConfigName: string; secretName: string };
}

/** What the manager needs: cluster-wide, and in its own (the service) namespace. Least privilege. */
export function managerRbacRules(opts: ManagerRbacOptions = {}): {
  cluster: PolicyRule[];
  namespaced: PolicyRule[];
} {
  // Sorted, as the chart lists them from its CRD files.
  const plurals = Object.values(KINDS)
    .map((k) => k.plural)
    .sort();
  const cluster: PolicyRule[] = [
    // patch: the scheduling gate konductor.io/wait comes off a granted scheduling-gate pod.
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'patch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
    { apiGroups: [GROUP], resources: plurals, verbs: ['get', 'list', 'watch'] },
    { apiGroups: [GROUP], resources: plurals.map((p) => `${p}/status`), verbs: ['update', 'patch'] },
    { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
  ];
  const namespaced: PolicyRule[] = [
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
  ];
  if (opts.selfManaged) {
    cluster.push({
      apiGroups: ['admissionregistration.k8s.io'],
      resources: ['mutatingwebhookconfigurations'],
      resourceNames: [opts.selfManaged.webhookConfigName],
      verbs: ['get', 'patch', 'update'],
    });
    namespaced.push(
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
      {
        apiGroups: [''],
        resources: ['secrets'],
        resourceNames: [opts.selfManaged.secretName],
        verbs: ['get', 'update'],
      },
    );
  }
  return { cluster, namespaced };
}

export interface ManagerIdentityOptions extends ManagerRbacOptions {
  /** Name of the ClusterRole(Binding) and Role(Binding) (unique per install). */
  name: string;
  /** Namespace of the ServiceAccount (the manager's service namespace). */
  namespace: string;
  serviceAccount: string;
  /** Where to write the manager's kubeconfig (its token next to it). */
  kubeconfigPath: string;
  /** The admin kubeconfig: server and CA are taken from it. */
  adminKubeconfigPath: string;
  /** Token lifetime (default one year: `npm run cluster` may stay up for days). */
  tokenExpirationSeconds?: number;
}

export interface ManagerIdentity {
  /** The user name the API server sees, e.g. system:serviceaccount:default:konductor. */
  username: string;
  kubeconfigPath: string;
  /** Deletes the cluster-scoped RBAC objects (the namespaced ones go with their namespace). */
  remove(): Promise<void>;
}

const FIELD_MANAGER = 'konductor-devcluster';
const RBAC = '/apis/rbac.authorization.k8s.io/v1';

/** Creates (idempotently) the ServiceAccount and its RBAC, requests a token, writes the kubeconfig. */
export async function ensureManagerIdentity(
  client: KubeClient,
  opts: ManagerIdentityOptions,
): Promise<ManagerIdentity> {
  const { namespace, name, serviceAccount } = opts;
  const rules = managerRbacRules(opts);
  const subjects = [{ kind: 'ServiceAccount', name: serviceAccount, namespace }];
  const labels = { 'app.kubernetes.io/name': 'konductor' };
  await client.apply(
    `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}`,
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: serviceAccount, namespace, labels } },
    FIELD_MANAGER,
  );
  // A role and its binding at each scope: cluster-wide, and in the manager's own namespace.
  const scopes = [
    { role: 'ClusterRole', rules: rules.cluster, path: RBAC, meta: { name, labels } },
    {
      role: 'Role',
      rules: rules.namespaced,
      path: `${RBAC}/namespaces/${namespace}`,
      meta: { name, namespace, labels },
    },
  ];
  for (const { role, rules: roleRules, path, meta } of scopes) {
    const plural = `${role.toLowerCase()}s`;
    const rbac = 'rbac.authorization.k8s.io';
    await client.apply(
      `${path}/${plural}/${name}`,
      { apiVersion: `${rbac}/v1`, kind: role, metadata: meta, rules: roleRules },
      FIELD_MANAGER,
    );
    await client.apply(
      `${path}/${role.toLowerCase()}bindings/${name}`,
      {
        apiVersion: `${rbac}/v1`,
        kind: `${role}Binding`,
        metadata: meta,
        roleRef: { apiGroup: rbac, kind: role, name },
        subjects,
      },
      FIELD_MANAGER,
    );
  }
  // A token with the API server's own audience (no audiences given: the API server's), as the kubelet
  // mounts for a Deployment's pod.
  const tr = await client.create<{ status: { token: string } }>(
    `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`,
    {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: opts.tokenExpirationSeconds ?? 365 * 24 * 3600 },
    },
  );
  const adminCluster = loadKubeConfig({ kubeconfig: opts.adminKubeconfigPath }).getCurrentCluster();
  if (!adminCluster) throw new Error(`kubeconfig ${opts.adminKubeconfigPath} has no current cluster`);
  const admin = {
    server: adminCluster.server,
    ca: adminCluster.caData
      ? Buffer.from(adminCluster.caData, 'base64').toString('utf8')
      : adminCluster.caFile
        ? readFileSync(adminCluster.caFile, 'utf8')
        : undefined,
  };
  const tokenFile = `${opts.kubeconfigPath}.token`;
  await mkdir(dirname(opts.kubeconfigPath), { recursive: true });
  await writeFile(tokenFile, tr.status.token, { mode: 0o600 });
  const cluster = {
    server: admin.server,
    ...(admin.ca ? { 'certificate-authority-data': Buffer.from(admin.ca).toString('base64') } : {}),
  };
  await writeFile(
    opts.kubeconfigPath,
    toYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'devcluster', cluster }],
      users: [{ name: serviceAccount, user: { tokenFile } }],
      contexts: [{ name: 'manager', context: { cluster: 'devcluster', user: serviceAccount, namespace } }],
      'current-context': 'manager',
    }),
    { mode: 0o600 },
  );
  return {
    username: serviceAccountUsername(namespace, serviceAccount),
    kubeconfigPath: opts.kubeconfigPath,
    remove: async () => {
      for (const path of [`${RBAC}/clusterrolebindings/${name}`, `${RBAC}/clusterroles/${name}`]) {
        await client.delete(path).catch(() => undefined);
      }
    },
  };
}
