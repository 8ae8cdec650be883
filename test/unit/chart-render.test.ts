/**
 * The Helm chart renders, lints, and every rendered object is valid against the Kubernetes 1.37 schemas
 * and the cert-manager / Prometheus Operator / konductor CRD schemas (kubeconform -strict, offline), with
 * the optional objects: PodMonitor, ServiceMonitor, the Grafana dashboard ConfigMap.
 * Needs the chart tools (helm, kubeconform, models-schema): see docs/helm.md. Missing tools fail the
 * suite with the command that builds them; nothing is skipped.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAdmissionPolicies } from '../../api/admissionPolicies.ts';
import { buildWebhookConfiguration } from '../../api/webhookConfiguration.ts';
import { managerRbacRules } from '../../devcluster/managerIdentity.ts';
import {
  CHART_DIR,
  type ChartTools,
  findChartTools,
  helm,
  type Json,
  kubeconform,
  kubeconformProblems,
  kubernetesDefinitions,
  NAMESPACE,
  parseManifests,
  RELEASE,
  renderChart,
  templateArgs,
  writeSchemaDir,
} from '../helpers/chartTools.ts';
import { DASHBOARD_FILE } from '../helpers/dashboard.ts';

const FULLNAME = `${RELEASE}`; // the release name contains the chart name
const SVC_DNS = `${FULLNAME}.${NAMESPACE}.svc`;

let tools: ChartTools;
let home: string;
let defs: Record<string, Json>;

beforeAll(async () => {
  tools = await findChartTools();
  home = mkdtempSync(join(tmpdir(), 'konductor-chart-'));
  defs = kubernetesDefinitions(tools);
}, 900_000);

afterAll(() => {
  if (home) rmSync(home, { recursive: true, force: true });
});

function validate(yamlText: string, label: string): Json[] {
  const manifests = parseManifests(yamlText);
  const schemaDir = join(home, `schemas-${label}`);
  writeSchemaDir(schemaDir, defs, manifests);
  const report = kubeconform(tools, schemaDir, yamlText);
  expect(kubeconformProblems(report), `kubeconform (${label})`).toEqual([]);
  expect(report.status).toBe(0);
  expect(report.resources.length).toBe(manifests.length);
  return manifests;
}

const find = (ms: Json[], kind: string, name?: string): Json[] =>
  ms.filter((m) => m.kind === kind && (name === undefined || m.metadata?.name === name));
const one = (ms: Json[], kind: string, name?: string): Json => {
  const found = find(ms, kind, name);
  expect(found.length, `${kind}${name ? `/${name}` : ''}`).toBe(1);
  return found[0];
};
const managerContainer = (ms: Json[]) => one(ms, 'Deployment').spec.template.spec.containers[0];

describe('helm lint', () => {
  it('passes with --strict', () => {
    const r = helm(tools, home, ['lint', CHART_DIR, '--strict']);
    expect(r.stderr + r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.status).toBe(0);
  });
});

describe('the validation itself can fail', () => {
  it('kubeconform rejects an unknown field, a wrong type and a kind without a schema', () => {
    const bad = [
      'apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 443}], bogus: 1}',
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: b}\nspec: {replicas: "two", selector: {}, template: {}}',
      'apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: c}\nspec: {secretName: s, issuerRef: {name: i}, dnsName: [x]}',
      'apiVersion: sync.konductor.io/v1\nkind: Semaphore\nmetadata: {name: d}\nspec: {permits: 1, unknown: true}',
      'apiVersion: example.com/v1\nkind: Unknown\nmetadata: {name: e}',
    ].join('\n---\n');
    const schemaDir = join(home, 'schemas-bad');
    writeSchemaDir(schemaDir, defs, parseManifests(bad));
    const report = kubeconform(tools, schemaDir, bad);
    expect(report.status).not.toBe(0);
    // kubeconform validates concurrently: compare by name, not by order.
    const byName = Object.fromEntries(report.resources.map((r) => [r.name, r.status]));
    expect(byName).toEqual({
      a: 'statusInvalid',
      b: 'statusInvalid',
      c: 'statusInvalid',
      d: 'statusInvalid',
      e: 'statusError',
    });
  });
});

describe('default values (cert-manager)', () => {
  let ms: Json[];
  beforeAll(() => {
    ms = validate(renderChart(tools, home), 'default');
  });

  it('renders the expected objects', () => {
    const kinds = ms.map((m) => m.kind).sort();
    expect(kinds).toEqual(
      [
        'Certificate',
        'Certificate',
        'ClusterRole',
        'ClusterRoleBinding',
        'CustomResourceDefinition',
        'CustomResourceDefinition',
        'CustomResourceDefinition',
        'CustomResourceDefinition',
        'Deployment',
        'Issuer',
        'Issuer',
        'MutatingWebhookConfiguration',
        'Role',
        'RoleBinding',
        'Service',
        'ServiceAccount',
        'ValidatingAdmissionPolicy',
        'ValidatingAdmissionPolicy',
        'ValidatingAdmissionPolicy',
        'ValidatingAdmissionPolicyBinding',
        'ValidatingAdmissionPolicyBinding',
        'ValidatingAdmissionPolicyBinding',
      ].sort(),
    );
    for (const crd of find(ms, 'CustomResourceDefinition')) {
      expect(crd.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
    }
  });

  it('wires the manager flags from values', () => {
    const c = managerContainer(ms);
    expect(c.image).toBe('logiciq/konductor:0.1.0');
    expect(c.args).toEqual([
      '--log-level=info',
      '--metrics-bind-address=:8080',
      '--health-probe-bind-address=:8081',
      '--webhook-port=9443',
      '--agent-port=9444',
      '--cert-dir=/tmp/k8s-webhook-server/serving-certs',
      '--cert-mode=cert-manager',
      `--service-name=${FULLNAME}`,
      '--service-namespace=$(POD_NAMESPACE)',
      '--agent-image=logiciq/konductor-agent:0.1.0',
      `--agent-url=https://${SVC_DNS}:9444`,
      '--default-wait-mode=init-container',
      '--default-start-timeout=5m',
    ]);
    // The memory budget's input (the cgroup says the same): heap and agent connections follow the limit.
    expect(c.env).toContainEqual({
      name: 'KONDUCTOR_MEMORY_LIMIT',
      valueFrom: { resourceFieldRef: { containerName: 'manager', resource: 'limits.memory' } },
    });
    expect(c.resources.limits.memory).toBe('128Mi');
    expect(c.env[0]).toEqual({
      name: 'POD_NAMESPACE',
      valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } },
    });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(c.ports).toContainEqual({ name: 'health', containerPort: 8081, protocol: 'TCP' });
    expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(c.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
    const pod = one(ms, 'Deployment').spec.template.spec;
    expect(pod.securityContext).toEqual({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.serviceAccountName).toBe(FULLNAME);
  });

  it('chains self-signed Issuer -> CA Certificate -> CA Issuer -> serving Certificate mounted by the Deployment', () => {
    const selfSigned = one(ms, 'Issuer', `${FULLNAME}-selfsigned`);
    expect(selfSigned.spec).toEqual({ selfSigned: {} });
    const ca = one(ms, 'Certificate', `${FULLNAME}-ca`);
    expect(ca.spec.isCA).toBe(true);
    expect(ca.spec.issuerRef.name).toBe(selfSigned.metadata.name);
    const caIssuer = one(ms, 'Issuer', `${FULLNAME}-ca`);
    expect(caIssuer.spec.ca.secretName).toBe(ca.spec.secretName);
    const serving = one(ms, 'Certificate', `${FULLNAME}-serving`);
    expect(serving.spec.issuerRef.name).toBe(caIssuer.metadata.name);
    expect(serving.spec.dnsNames).toEqual([SVC_DNS, `${SVC_DNS}.cluster.local`]);
    expect(serving.spec.usages).toContain('server auth');
    const volumes = one(ms, 'Deployment').spec.template.spec.volumes;
    expect(volumes).toContainEqual({ name: 'serving-cert', secret: { secretName: serving.spec.secretName } });
    const mwc = one(ms, 'MutatingWebhookConfiguration');
    expect(mwc.metadata.annotations['cert-manager.io/inject-ca-from']).toBe(
      `${NAMESPACE}/${serving.metadata.name}`,
    );
    for (const w of mwc.webhooks) expect(w.clientConfig.caBundle).toBeUndefined();
  });

  it('renders the same webhook rules as api/webhookConfiguration.ts', () => {
    const mwc = one(ms, 'MutatingWebhookConfiguration');
    expect(mwc.metadata.name).toBe(FULLNAME);
    const clientConfig = { service: { name: FULLNAME, namespace: NAMESPACE, path: '/mutate', port: 443 } };
    const expected = buildWebhookConfiguration({
      name: FULLNAME,
      clientConfig,
      excludedNamespaces: ['kube-system', NAMESPACE],
      failurePolicy: 'Fail',
      timeoutSeconds: 5,
    });
    expect(mwc.webhooks).toEqual(expected.webhooks);
  });

  it('Service maps 443 to the webhook port, the agent API to its own port, and exposes metrics', () => {
    const svc = one(ms, 'Service');
    expect(svc.spec.ports).toEqual([
      { name: 'https', port: 443, targetPort: 'https', protocol: 'TCP', appProtocol: 'https' },
      { name: 'agent', port: 9444, targetPort: 'agent', protocol: 'TCP', appProtocol: 'https' },
      { name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP', appProtocol: 'http' },
    ]);
    expect(managerContainer(ms).ports).toContainEqual({
      name: 'https',
      containerPort: 9443,
      protocol: 'TCP',
    });
    expect(managerContainer(ms).ports).toContainEqual({
      name: 'agent',
      containerPort: 9444,
      protocol: 'TCP',
    });
    expect(svc.spec.selector).toEqual(one(ms, 'Deployment').spec.selector.matchLabels);
  });

  it('RBAC is least privilege and has no certificate rights in cert-manager mode', () => {
    const cr = one(ms, 'ClusterRole');
    const rules: Json[] = cr.rules;
    const verbsFor = (group: string, resource: string) =>
      rules
        .filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource))
        .flatMap((r) => r.verbs);
    expect(verbsFor('', 'pods').sort()).toEqual(['get', 'list', 'patch', 'watch']);
    expect(verbsFor('', 'events').sort()).toEqual(['create', 'patch']);
    expect(verbsFor('sync.konductor.io', 'semaphores').sort()).toEqual(['get', 'list', 'watch']);
    expect(verbsFor('sync.konductor.io', 'semaphores/status').sort()).toEqual(['patch', 'update']);
    expect(verbsFor('batch', 'jobs').sort()).toEqual(['get', 'list', 'watch']);
    expect(verbsFor('', 'namespaces').sort()).toEqual(['get', 'list', 'watch']);
    expect(verbsFor('authentication.k8s.io', 'tokenreviews')).toEqual(['create']);
    for (const r of rules) {
      expect(r.verbs).not.toContain('*');
      expect(r.resources).not.toContain('*');
      expect(r.resources).not.toContain('secrets');
      expect(r.resources).not.toContain('mutatingwebhookconfigurations');
    }
    const role = one(ms, 'Role');
    expect(role.metadata.namespace).toBe(NAMESPACE);
    expect(role.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
    ]);
    // The devcluster's manager gets exactly these rules (devcluster/managerIdentity.ts).
    expect(cr.rules).toEqual(managerRbacRules().cluster);
    expect(role.rules).toEqual(managerRbacRules().namespaced);
    const subjects = [one(ms, 'ClusterRoleBinding').subjects, one(ms, 'RoleBinding').subjects];
    for (const s of subjects)
      expect(s).toEqual([{ kind: 'ServiceAccount', name: FULLNAME, namespace: NAMESPACE }]);
  });

  it('renders the admission policies of api/admissionPolicies.ts, in the webhook namespaces', () => {
    const rendered = [
      ...find(ms, 'ValidatingAdmissionPolicy'),
      ...find(ms, 'ValidatingAdmissionPolicyBinding'),
    ];
    const expected = buildAdmissionPolicies({
      namePrefix: FULLNAME,
      agentImage: 'logiciq/konductor-agent:0.1.0',
      managerUsername: `system:serviceaccount:${NAMESPACE}:${FULLNAME}`,
      namespaceSelector: one(ms, 'MutatingWebhookConfiguration').webhooks[0].namespaceSelector,
    }) as Json[];
    const byId = (list: Json[]) =>
      Object.fromEntries(list.map((o) => [`${o.kind}/${o.metadata.name}`, { spec: o.spec, kind: o.kind }]));
    expect(byId(rendered)).toEqual(byId(expected));
    const vap = one(ms, 'ValidatingAdmissionPolicy', `${FULLNAME}-require-injection`);
    expect(vap.spec.validations[0].message).toBe(
      'pod has konductor.io annotations but was not injected by the konductor webhook; is the webhook running?',
    );
    for (const a of ['semaphore', 'lease', 'barrier', 'gate']) {
      expect(vap.spec.matchConditions[0].expression).toContain(`'konductor.io/${a}'`);
    }
  });

  it('renders no PodDisruptionBudget with one replica', () => {
    expect(find(ms, 'PodDisruptionBudget')).toEqual([]);
  });
});

describe('values-ha.yaml (high availability)', () => {
  let ms: Json[];
  beforeAll(() => {
    const r = helm(tools, home, [...templateArgs({}), '-f', join(CHART_DIR, 'values-ha.yaml')]);
    if (r.status !== 0) throw new Error(`helm template -f values-ha.yaml failed:\n${r.stderr}`);
    ms = validate(r.stdout, 'ha');
  });

  it('runs 2 replicas with leader election, spread over nodes', () => {
    const d = one(ms, 'Deployment');
    expect(d.spec.replicas).toBe(2);
    expect(managerContainer(ms).args).toContain('--leader-elect');
    const term =
      d.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0];
    expect(term.podAffinityTerm.topologyKey).toBe('kubernetes.io/hostname');
    expect(d.spec.template.metadata.labels).toMatchObject(term.podAffinityTerm.labelSelector.matchLabels);
  });

  it('renders a PodDisruptionBudget that keeps a replica serving', () => {
    const pdb = one(ms, 'PodDisruptionBudget');
    expect(pdb.spec).toEqual({
      maxUnavailable: 1,
      selector: { matchLabels: one(ms, 'Deployment').spec.selector.matchLabels },
    });
  });

  it('every replica serves the webhook and the agent API (the Service selects them all)', () => {
    expect(one(ms, 'Service').spec.selector).toEqual(one(ms, 'Deployment').spec.template.metadata.labels);
  });
});

describe('agent API values', () => {
  it('agentApi.maxConnections and agentApi.port reach the manager; webhook and agent ports must differ', () => {
    const ms = validate(
      renderChart(tools, home, { 'agentApi.maxConnections': 2000, 'agentApi.port': 8444 }),
      'agent',
    );
    expect(managerContainer(ms).args).toContain('--max-agent-connections=2000');
    expect(managerContainer(ms).args).toContain(`--agent-url=https://${SVC_DNS}:8444`);
    const r = helm(tools, home, templateArgs({ 'agentApi.port': 9443 }));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('webhook.port and agentApi.port must differ');
  });
});

describe('wait values', () => {
  it('wait.mode and wait.startTimeout reach the manager; the schema refuses an unknown mode', () => {
    const ms = validate(
      renderChart(tools, home, { 'wait.mode': 'scheduling-gate', 'wait.startTimeout': '90s' }),
      'wait',
    );
    expect(managerContainer(ms).args).toContain('--default-wait-mode=scheduling-gate');
    expect(managerContainer(ms).args).toContain('--default-start-timeout=90s');
    const r = helm(tools, home, templateArgs({ 'wait.mode': 'gate' }));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/wait\.mode|mode/);
  });
});

describe('certManager.enabled=false (self-managed certificates)', () => {
  let ms: Json[];
  beforeAll(() => {
    ms = validate(renderChart(tools, home, { 'certManager.enabled': false }), 'self-managed');
  });

  it('renders no cert-manager object, no caBundle and no inject-ca-from', () => {
    expect(find(ms, 'Certificate')).toEqual([]);
    expect(find(ms, 'Issuer')).toEqual([]);
    const mwc = one(ms, 'MutatingWebhookConfiguration');
    expect(mwc.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBeUndefined();
    for (const w of mwc.webhooks) expect(w.clientConfig.caBundle).toBeUndefined();
  });

  it('tells the manager to manage the Secret and the webhook configuration, and lets it', () => {
    const c = managerContainer(ms);
    expect(c.args).toContain('--cert-mode=self-managed');
    expect(c.args).toContain(`--cert-secret=${FULLNAME}-webhook-tls`);
    expect(c.args).toContain(`--webhook-config-name=${FULLNAME}`);
    expect(c.volumeMounts.map((v: Json) => v.name)).toEqual(['tmp']);
    const role = one(ms, 'Role');
    expect(role.rules).toContainEqual({ apiGroups: [''], resources: ['secrets'], verbs: ['create'] });
    expect(role.rules).toContainEqual({
      apiGroups: [''],
      resources: ['secrets'],
      resourceNames: [`${FULLNAME}-webhook-tls`],
      verbs: ['get', 'update'],
    });
    expect(one(ms, 'ClusterRole').rules).toContainEqual({
      apiGroups: ['admissionregistration.k8s.io'],
      resources: ['mutatingwebhookconfigurations'],
      resourceNames: [FULLNAME],
      verbs: ['get', 'patch', 'update'],
    });
  });
});

describe('podMonitor.enabled=true', () => {
  it('renders a valid PodMonitor on the metrics port with the podMonitor values', () => {
    const ms = validate(
      renderChart(tools, home, {
        'podMonitor.enabled': true,
        'podMonitor.namespace': 'monitoring',
        'podMonitor.additionalLabels': { release: 'prometheus' },
        'podMonitor.interval': '30s',
        'podMonitor.scrapeTimeout': '10s',
        'podMonitor.relabelings': [
          { action: 'replace', sourceLabels: ['__meta_kubernetes_pod_name'], targetLabel: 'pod' },
        ],
        'podMonitor.metricRelabelings': [{ action: 'drop', sourceLabels: ['__name__'], regex: 'go_.*' }],
      }),
      'podmonitor',
    );
    const pm = one(ms, 'PodMonitor');
    expect(pm.metadata.namespace).toBe('monitoring');
    expect(pm.metadata.labels.release).toBe('prometheus');
    expect(pm.spec.namespaceSelector).toEqual({ matchNames: [NAMESPACE] });
    expect(pm.spec.selector.matchLabels).toEqual(one(ms, 'Deployment').spec.selector.matchLabels);
    expect(pm.spec.podMetricsEndpoints[0]).toMatchObject({
      port: 'metrics',
      scheme: 'http',
      interval: '30s',
      scrapeTimeout: '10s',
    });
    expect(pm.spec.podMetricsEndpoints[0].metricRelabelings[0].regex).toBe('go_.*');
  });

  it('defaults the PodMonitor to the release namespace', () => {
    const ms = validate(renderChart(tools, home, { 'podMonitor.enabled': true }), 'podmonitor-default');
    expect(one(ms, 'PodMonitor').metadata.namespace).toBe(NAMESPACE);
  });
});

describe('observability defaults', () => {
  it('render neither a ServiceMonitor nor a dashboard ConfigMap', () => {
    const ms = parseManifests(renderChart(tools, home));
    expect(ms.map((m) => m.kind)).not.toContain('ServiceMonitor');
    expect(ms.filter((m) => m.kind === 'ConfigMap')).toEqual([]);
  });
});

describe('serviceMonitor.enabled=true', () => {
  it('renders a valid ServiceMonitor on the Service’s metrics port', () => {
    const ms = validate(
      renderChart(tools, home, {
        'serviceMonitor.enabled': true,
        'serviceMonitor.namespace': 'monitoring',
        'serviceMonitor.additionalLabels': { release: 'prometheus' },
        'serviceMonitor.interval': '15s',
        'serviceMonitor.scrapeTimeout': '5s',
        'serviceMonitor.metricRelabelings': [
          { action: 'drop', sourceLabels: ['__name__'], regex: 'nodejs_.*' },
        ],
      }),
      'servicemonitor',
    );
    const sm = ms.find((m) => m.kind === 'ServiceMonitor');
    const svc = ms.find((m) => m.kind === 'Service');
    expect(sm.metadata).toMatchObject({
      namespace: 'monitoring',
      labels: expect.objectContaining({ release: 'prometheus' }),
    });
    // it selects the Service (by its labels) in the release namespace, on the port named metrics
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) expect(svc.metadata.labels[k]).toBe(v);
    expect(sm.spec.namespaceSelector).toEqual({ matchNames: [NAMESPACE] });
    expect(svc.spec.ports.map((p: Json) => p.name)).toContain('metrics');
    expect(sm.spec.endpoints).toEqual([
      {
        port: 'metrics',
        path: '/metrics',
        scheme: 'http',
        interval: '15s',
        scrapeTimeout: '5s',
        metricRelabelings: [{ action: 'drop', sourceLabels: ['__name__'], regex: 'nodejs_.*' }],
      },
    ]);
  });

  it('refuses to render without a metrics port', () => {
    const r = helm(tools, home, [
      ...templateArgs({ 'serviceMonitor.enabled': true, 'controller.args.metricsBindAddress': '0' }),
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('serviceMonitor.enabled=true needs controller.args.metricsBindAddress');
  });
});

describe('grafanaDashboard.enabled=true', () => {
  it('renders a ConfigMap with the grafana_dashboard label and the dashboard JSON', () => {
    const ms = validate(
      renderChart(tools, home, {
        'grafanaDashboard.enabled': true,
        'grafanaDashboard.namespace': 'monitoring',
        'grafanaDashboard.annotations': { grafana_folder: 'konductor' },
      }),
      'dashboard',
    );
    const cm = ms.find((m) => m.kind === 'ConfigMap');
    expect(cm.metadata).toMatchObject({
      namespace: 'monitoring',
      labels: expect.objectContaining({ grafana_dashboard: '1' }),
      annotations: { grafana_folder: 'konductor' },
    });
    expect(JSON.parse(cm.data['konductor.json'])).toEqual(JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')));
  });

  it('takes another label for the sidecar, and the schema rejects an invalid one', () => {
    const ms = parseManifests(
      renderChart(tools, home, {
        'grafanaDashboard.enabled': true,
        'grafanaDashboard.label': 'dashboards.example.com/grafana',
        'grafanaDashboard.labelValue': 'konductor',
      }),
    );
    expect(ms.find((m) => m.kind === 'ConfigMap').metadata.labels['dashboards.example.com/grafana']).toBe(
      'konductor',
    );
    const r = helm(
      tools,
      home,
      templateArgs({ 'grafanaDashboard.enabled': true, 'grafanaDashboard.label': 'not a label' }),
    );
    expect(r.status).not.toBe(0);
  });
});

describe('azure.enabled=true', () => {
  const TENANT = '00000000-0000-0000-0000-000000000001';
  const CLIENT = '00000000-0000-0000-0000-000000000002';

  it('managed identity: workload-identity label and tenant id, no secret', () => {
    const ms = validate(
      renderChart(tools, home, {
        'azure.enabled': true,
        'azure.tenantId': TENANT,
        'serviceAccount.annotations': { 'azure.workload.identity/client-id': CLIENT },
      }),
      'azure-mi',
    );
    const pod = one(ms, 'Deployment').spec.template;
    expect(pod.metadata.labels['azure.workload.identity/use']).toBe('true');
    expect(managerContainer(ms).env).toContainEqual({ name: 'AZURE_TENANT_ID', value: TENANT });
    expect(managerContainer(ms).env.map((e: Json) => e.name)).not.toContain('AZURE_CLIENT_SECRET');
    expect(one(ms, 'ServiceAccount').metadata.annotations['azure.workload.identity/client-id']).toBe(CLIENT);
    expect(find(ms, 'Secret')).toEqual([]);
  });

  it('service principal with a client secret: the chart creates the Secret', () => {
    const ms = validate(
      renderChart(tools, home, {
        'azure.enabled': true,
        'azure.tenantId': TENANT,
        'azure.credentials.useManagedIdentity': false,
        'azure.credentials.clientId': CLIENT,
        'azure.credentials.clientSecret': 'shh',
      }),
      'azure-sp',
    );
    const secret = one(ms, 'Secret');
    expect(Buffer.from(secret.data['client-secret'], 'base64').toString()).toBe('shh');
    const env = managerContainer(ms).env;
    expect(env).toContainEqual({ name: 'AZURE_CLIENT_ID', value: CLIENT });
    expect(env).toContainEqual({
      name: 'AZURE_CLIENT_SECRET',
      valueFrom: { secretKeyRef: { name: secret.metadata.name, key: 'client-secret' } },
    });
    expect(
      one(ms, 'Deployment').spec.template.metadata.labels['azure.workload.identity/use'],
    ).toBeUndefined();
  });

  it('service principal with an existing secret: no Secret rendered, the key is honoured', () => {
    const ms = validate(
      renderChart(tools, home, {
        'azure.enabled': true,
        'azure.tenantId': TENANT,
        'azure.credentials.useManagedIdentity': false,
        'azure.credentials.clientId': CLIENT,
        'azure.credentials.existingSecret': 'my-azure',
        'azure.credentials.existingSecretKey': 'password',
      }),
      'azure-existing',
    );
    expect(find(ms, 'Secret')).toEqual([]);
    expect(managerContainer(ms).env).toContainEqual({
      name: 'AZURE_CLIENT_SECRET',
      valueFrom: { secretKeyRef: { name: 'my-azure', key: 'password' } },
    });
  });

  it('service principal without any secret fails with a readable message', () => {
    expect(() =>
      renderChart(tools, home, {
        'azure.enabled': true,
        'azure.credentials.useManagedIdentity': false,
        'azure.credentials.clientId': CLIENT,
      }),
    ).toThrow(/needs azure.credentials.existingSecret or azure.credentials.clientSecret/);
  });
});

describe('other values', () => {
  it('controller.* values reach the Deployment', () => {
    const ms = validate(
      renderChart(tools, home, {
        'controller.replicas': 2,
        'controller.args.leaderElect': true,
        'controller.args.logLevel': 'debug',
        'controller.args.additionalArgs': ['--namespace=team-a'],
        'controller.annotations': { a: '1' },
        'controller.podAnnotations': { b: '2' },
        'controller.podLabels': { c: '3' },
        'controller.nodeSelector': { 'kubernetes.io/os': 'linux' },
        'controller.tolerations': [{ key: 'k', operator: 'Exists', effect: 'NoSchedule' }],
        'controller.affinity': { nodeAffinity: {} },
        'controller.priorityClassName': 'system-cluster-critical',
        'controller.terminationGracePeriodSeconds': 30,
        'controller.podSecurityContext': {
          runAsNonRoot: true,
          seccompProfile: { type: 'Localhost', localhostProfile: 'p' },
        },
        'image.tag': '1.2.3',
        'image.pullPolicy': 'Always',
        'image.pullSecrets': ['regcred', { name: 'other' }],
        'agentImage.tag': '1.2.4',
        'webhook.port': 10443,
        'webhook.failurePolicy': 'Ignore',
        'webhook.timeoutSeconds': 3,
      }),
      'controller',
    );
    const d = one(ms, 'Deployment');
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    expect(d.spec.replicas).toBe(2);
    expect(d.metadata.annotations).toEqual({ a: '1' });
    expect(d.spec.template.metadata.annotations).toEqual({ b: '2' });
    expect(d.spec.template.metadata.labels.c).toBe('3');
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(pod.tolerations).toHaveLength(1);
    expect(pod.affinity).toEqual({ nodeAffinity: {} });
    expect(pod.priorityClassName).toBe('system-cluster-critical');
    expect(pod.terminationGracePeriodSeconds).toBe(30);
    expect(pod.securityContext.seccompProfile.type).toBe('Localhost');
    expect(pod.imagePullSecrets).toEqual([{ name: 'regcred' }, { name: 'other' }]);
    expect(c.image).toBe('logiciq/konductor:1.2.3');
    expect(c.imagePullPolicy).toBe('Always');
    expect(c.args[0]).toBe('--leader-elect');
    expect(c.args).toContain('--log-level=debug');
    expect(c.args).toContain('--webhook-port=10443');
    expect(c.args).toContain('--agent-image=logiciq/konductor-agent:1.2.4');
    expect(c.args.at(-1)).toBe('--namespace=team-a');
    expect(c.ports).toContainEqual({ name: 'https', containerPort: 10443, protocol: 'TCP' });
    for (const w of one(ms, 'MutatingWebhookConfiguration').webhooks) {
      expect(w.failurePolicy).toBe('Ignore');
      expect(w.timeoutSeconds).toBe(3);
    }
  });

  it('crd.install=false, validatingAdmissionPolicy.enabled=false, serviceAccount.enabled=false', () => {
    const ms = validate(
      renderChart(tools, home, {
        'crd.install': false,
        'validatingAdmissionPolicy.enabled': false,
        'serviceAccount.enabled': false,
      }),
      'minimal',
    );
    expect(find(ms, 'CustomResourceDefinition')).toEqual([]);
    expect(find(ms, 'ValidatingAdmissionPolicy')).toEqual([]);
    expect(find(ms, 'ServiceAccount')).toEqual([]);
    expect(one(ms, 'Deployment').spec.template.spec.serviceAccountName).toBe('default');
    expect(one(ms, 'RoleBinding').subjects[0].name).toBe('default');
  });

  it('a user namespaceSelector is added to the exclusions of the webhook and the policy', () => {
    const ms = validate(
      renderChart(tools, home, {
        'webhook.namespaceSelector': {
          matchLabels: { team: 'a' },
          matchExpressions: [{ key: 'env', operator: 'In', values: ['prod'] }],
        },
      }),
      'selector',
    );
    const sel = one(ms, 'MutatingWebhookConfiguration').webhooks[0].namespaceSelector;
    expect(sel).toEqual({
      matchLabels: { team: 'a' },
      matchExpressions: [
        { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', NAMESPACE] },
        { key: 'env', operator: 'In', values: ['prod'] },
      ],
    });
    const bindings = find(ms, 'ValidatingAdmissionPolicyBinding');
    expect(bindings).toHaveLength(3);
    for (const b of bindings) expect(b.spec.matchResources.namespaceSelector).toEqual(sel);
  });

  it('metricsBindAddress "0" disables the metrics port; a PodMonitor then refuses to render', () => {
    const ms = validate(renderChart(tools, home, { 'controller.args.metricsBindAddress': '0' }), 'nometrics');
    expect(one(ms, 'Service').spec.ports.map((p: Json) => p.name)).toEqual(['https', 'agent']);
    expect(() =>
      renderChart(tools, home, { 'controller.args.metricsBindAddress': '0', 'podMonitor.enabled': true }),
    ).toThrow(/podMonitor.enabled=true needs controller.args.metricsBindAddress/);
  });
});
