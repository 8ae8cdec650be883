/**
 * `helm install` of charts/konductor into the devcluster (issue 5): every object the chart renders must be
 * accepted by a real API server, with default values (cert-manager mode) and with
 * `certManager.enabled=false`, `podMonitor.enabled=true`, `azure.enabled=true`.
 *
 * - cert-manager and the Prometheus Operator do not run here: their CRDs are minimal stand-ins
 *   (test/fixtures/crds/, derived from the JSON schemas of test/fixtures/schemas/), server-side applied
 *   first. Nothing acts on the Certificates/Issuers/PodMonitor; they only need to be admitted.
 * - Each install has its own random release name (so the cluster-scoped ClusterRole(Binding),
 *   MutatingWebhookConfiguration and ValidatingAdmissionPolicy(Binding) never collide) and namespace.
 * - The konductor CRDs are cluster-wide and shared with every other test file (devcluster/konductor.ts
 *   server-side applies the same files). They are applied first (`installCrds`, so helm never races
 *   another file creating them), then the default install adopts them with `--take-ownership` (helm
 *   3.17+): that keeps `crd.install=true` (the default) under test against the API server instead of
 *   failing with "exists and cannot be imported into the current release". The content is identical, so
 *   helm's patch changes only its ownership labels/annotations. The second install uses
 *   `crd.install=false`. `helm uninstall` must keep them (`helm.sh/resource-policy: keep`).
 * - The webhook (failurePolicy Fail, no server behind it here) and the admission policy must not touch
 *   other test files' pods: `webhook.namespaceSelector` requires the release namespace's own name, which
 *   the chart always excludes, so they select no namespace at all. Checked on the rendering before install.
 * - No pod of the chart becomes ready (the manager image is not runnable by the process kubelet), hence
 *   `--wait=false`; the Deployment and its ReplicaSet are accepted, which is what is tested.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { installCrds } from '../../devcluster/crds.ts';
import {
  CHART_DIR,
  type ChartTools,
  crdSchemaToJsonSchema,
  FIXTURE_SCHEMAS,
  findChartTools,
  type Json,
  parseManifests,
  REPO,
} from '../helpers/chartTools.ts';
import { clusterInfo, useAdminClient } from '../helpers/cluster.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { type TestNamespace, testNamespace } from '../helpers/namespace.ts';
import { runProcess } from '../helpers/process.ts';
import { waitFor } from '../helpers/waitFor.ts';

const FIXTURE_CRDS = join(REPO, 'test/fixtures/crds');
const FIXTURE_CRD_FIELD_MANAGER = 'konductor-test-fixtures';
const admin = useAdminClient();
const nsDefault = testNamespace('helm-default');
const nsSelfManaged = testNamespace('helm-selfmanaged');

let tools: ChartTools;
let home: string;
/** Releases still installed (uninstalled in afterAll when a test failed before its uninstall). */
const installed = new Map<string, string>();

interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** helm with the devcluster's kubeconfig and private config/cache/data homes (async: installs take seconds). */
async function helm(args: string[]): Promise<HelmResult> {
  const res = await runProcess(tools.helm, [...args, '--kubeconfig', clusterInfo().kubeconfigPath], {
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
    },
    timeoutMs: 170_000,
  });
  return { code: res.code, stdout: res.stdout, stderr: res.stderr };
}

const fixtureCrdFiles = () =>
  readdirSync(FIXTURE_CRDS)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
const fixtureCrds = (): Json[] =>
  fixtureCrdFiles().map((f) => parse(readFileSync(join(FIXTURE_CRDS, f), 'utf8')) as Json);

beforeAll(async () => {
  tools = await findChartTools();
  home = mkdtempSync(join(tmpdir(), 'konductor-helm-install-'));
  // konductor's CRDs, exactly as every other test file installs them (idempotent server-side apply).
  await installCrds(admin);
  // The cert-manager and Prometheus Operator stand-ins (idempotent too: other files may apply them).
  await kubectl([
    'apply',
    '--server-side',
    '--force-conflicts',
    `--field-manager=${FIXTURE_CRD_FIELD_MANAGER}`,
    '-f',
    FIXTURE_CRDS,
  ]);
  const names = fixtureCrds().map((c) => `crd/${c.metadata.name}`);
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', ...names]);
  // Established precedes discovery by a moment; helm maps kinds through discovery.
  for (const crd of fixtureCrds()) {
    await waitFor(
      async () =>
        (await kubectl(['get', `${crd.spec.names.plural}.${crd.spec.group}`, '-A', '-o', 'name'])).code === 0,
      { message: `discovery of ${crd.metadata.name}`, timeoutMs: 60_000 },
    );
  }
}, 180_000);

afterAll(async () => {
  for (const [release, namespace] of installed) {
    await helm(['uninstall', release, '--namespace', namespace]).catch(() => undefined);
  }
  if (home) rmSync(home, { recursive: true, force: true });
});

/** Differences of `actual` from `expected` where every value of `expected` must appear in `actual`. */
function notContained(expected: Json, actual: Json, path = ''): string[] {
  if (expected === null || typeof expected !== 'object') {
    return expected === actual
      ? []
      : [`${path}: want ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      return [`${path}: want ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
    }
    return expected.flatMap((e, i) => notContained(e, actual[i], `${path}[${i}]`));
  }
  if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) {
    return [`${path}: want an object, got ${JSON.stringify(actual)}`];
  }
  return Object.entries(expected).flatMap(([k, v]) => notContained(v, actual[k], `${path}.${k}`));
}

const id = (m: Json) => `${m.kind}/${m.metadata.name}`;

/**
 * A selector that selects no namespace: the release namespace's own name, which the chart always
 * excludes (kubernetes.io/metadata.name NotIn [kube-system, <release namespace>]).
 */
const selectNothing = (ns: TestNamespace) => ({
  matchLabels: { 'kubernetes.io/metadata.name': ns.name },
});

function setArgs(values: Record<string, unknown>): string[] {
  return Object.entries(values).flatMap(([k, v]) => ['--set-json', `${k}=${JSON.stringify(v)}`]);
}

interface Installed {
  release: string;
  rendered: Json[];
  manifest: Json[];
}

/** Renders (checking the webhook and policy select nothing), installs, and reads back the release's manifest. */
async function install(
  ns: TestNamespace,
  values: Record<string, unknown>,
  extra: string[] = [],
  valuesFiles: string[] = [],
) {
  const release = `kdr-${randomBytes(3).toString('hex')}`;
  const all = { 'webhook.namespaceSelector': selectNothing(ns), ...values };
  const files = valuesFiles.flatMap((f) => ['-f', join(CHART_DIR, f)]);
  const common = [release, CHART_DIR, '--namespace', ns.name, ...files, ...setArgs(all)];

  const template = await helm(['template', ...common]);
  expect(template.code, template.stderr).toBe(0);
  const rendered = parseManifests(template.stdout);
  for (const m of rendered) {
    if (m.kind === 'MutatingWebhookConfiguration') {
      for (const w of m.webhooks) {
        expect(w.namespaceSelector.matchLabels, w.name).toEqual(selectNothing(ns).matchLabels);
        expect(w.namespaceSelector.matchExpressions[0].values, w.name).toContain(ns.name);
      }
    }
    if (m.kind === 'ValidatingAdmissionPolicyBinding') {
      expect(m.spec.matchResources.namespaceSelector.matchLabels).toEqual(selectNothing(ns).matchLabels);
      expect(m.spec.matchResources.namespaceSelector.matchExpressions[0].values).toContain(ns.name);
    }
  }

  const r = await helm(['install', ...common, '--wait=false', '--timeout', '2m', ...extra]);
  if (r.code === 0) installed.set(release, ns.name);
  expect(r.code, `helm install failed:\n${r.stderr}\n${r.stdout}`).toBe(0);
  expect(r.stdout).toContain('STATUS: deployed');
  // client-go prints the API server's warnings (e.g. "unknown field", pruned by a CRD) on stderr.
  expect(r.stderr).not.toMatch(/unknown field|deprecated|would violate/i);

  const got = await helm(['get', 'manifest', release, '--namespace', ns.name]);
  expect(got.code, got.stderr).toBe(0);
  const manifest = parseManifests(got.stdout);
  return { release, rendered, manifest } satisfies Installed;
}

/** Reads every object of the manifest back from the API server (kubectl get -f -). */
async function liveObjects(ns: TestNamespace, manifest: Json[]): Promise<Map<string, Json>> {
  const input = manifest.map((m) => JSON.stringify(m)).join('\n---\n');
  const r = await kubectl(['get', '-f', '-', '-o', 'json', '--ignore-not-found'], {
    namespace: ns.name,
    input,
  });
  const out = r.stdout.trim();
  if (!out) return new Map();
  const parsed = JSON.parse(out) as Json;
  const items: Json[] = parsed.kind === 'List' ? parsed.items : [parsed];
  return new Map(items.map((o) => [id(o), o]));
}

/** Every object helm created exists and holds what was rendered (nothing pruned, nothing rewritten). */
async function expectAllAccepted(ns: TestNamespace, inst: Installed): Promise<Map<string, Json>> {
  expect(inst.manifest.map(id).sort()).toEqual(inst.rendered.map(id).sort());
  const live = await liveObjects(ns, inst.manifest);
  expect([...live.keys()].sort()).toEqual(inst.manifest.map(id).sort());
  for (const m of inst.manifest) {
    const o = live.get(id(m));
    const { metadata, ...body } = m;
    const problems = [
      ...notContained(body, o, ''),
      ...notContained(metadata.labels ?? {}, o.metadata.labels, '.metadata.labels'),
      ...notContained(metadata.annotations ?? {}, o.metadata.annotations, '.metadata.annotations'),
    ];
    expect(problems, id(m)).toEqual([]);
    if (o.metadata.namespace !== undefined) {
      expect(o.metadata.namespace, id(m)).toBe(ns.name);
    }
    // helm's ownership: what `helm uninstall` will use to find them.
    expect(o.metadata.annotations?.['meta.helm.sh/release-name'], id(m)).toBe(inst.release);
  }
  return live;
}

/** helm uninstall; every object but the CRDs is gone, the CRDs are kept (resource-policy keep). */
async function uninstallKeepingCrds(ns: TestNamespace, inst: Installed): Promise<void> {
  const r = await helm(['uninstall', inst.release, '--namespace', ns.name]);
  expect(r.code, r.stderr).toBe(0);
  installed.delete(inst.release);
  const crds = inst.manifest.filter((m) => m.kind === 'CustomResourceDefinition');
  if (crds.length > 0) {
    expect(r.stdout).toContain('These resources were kept due to the resource policy');
    for (const crd of crds) expect(r.stdout).toContain(`[CustomResourceDefinition] ${crd.metadata.name}`);
  }
  const remaining = await waitFor(
    async () => {
      const live = await liveObjects(ns, inst.manifest);
      const left = [...live.values()].filter((o) => o.kind !== 'CustomResourceDefinition');
      if (left.length > 0) throw new Error(`still there: ${left.map(id).join(', ')}`);
      return live;
    },
    { message: 'the release objects to be deleted', timeoutMs: 60_000 },
  );
  expect([...remaining.keys()].sort()).toEqual(crds.map(id).sort());
  for (const o of remaining.values()) {
    expect(o.metadata.deletionTimestamp, id(o)).toBeUndefined();
    expect(o.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
  }
  const history = await helm(['status', inst.release, '--namespace', ns.name]);
  expect(history.code).not.toBe(0);
}

describe('fixture CRDs', () => {
  it('accept the same fields as the hand-written JSON schemas they stand in for', () => {
    const paths = (s: Json, prefix = ''): string[] => {
      if (s === null || typeof s !== 'object') return [];
      const props = Object.entries((s.properties ?? {}) as Record<string, Json>).flatMap(([k, v]) => [
        `${prefix}.${k}`,
        ...paths(v, `${prefix}.${k}`),
      ]);
      return [...props, ...(s.items ? paths(s.items, `${prefix}[]`) : [])];
    };
    const jsonSchemaFiles = readdirSync(FIXTURE_SCHEMAS).filter((f) => f.endsWith('.json'));
    expect(fixtureCrdFiles()).toHaveLength(jsonSchemaFiles.length);
    for (const crd of fixtureCrds()) {
      const kind: string = crd.spec.names.kind;
      const file = jsonSchemaFiles.find((f) => f.startsWith(`${kind.toLowerCase()}-`));
      expect(file, kind).toBeDefined();
      const json = JSON.parse(readFileSync(join(FIXTURE_SCHEMAS, file as string), 'utf8')) as Json;
      const spec = crdSchemaToJsonSchema(crd.spec.versions[0].schema.openAPIV3Schema.properties.spec);
      expect(paths(spec).sort(), kind).toEqual(paths(json.properties.spec).sort());
      expect(JSON.stringify(spec.required ?? []), kind).toBe(
        JSON.stringify(json.properties.spec.required ?? []),
      );
    }
  });

  it('are served by the API server and reject what the JSON schemas reject', async () => {
    const bad = {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name: 'bad' },
      spec: { secretName: 's', issuerRef: { name: 'i' }, usages: ['not a usage'] },
    };
    const r = await kubectl(['create', '--dry-run=server', '-f', '-'], {
      namespace: nsDefault.name,
      input: JSON.stringify(bad),
      allowFailure: true,
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('spec.usages[0]');
    const unknown = { ...bad, spec: { secretName: 's', issuerRef: { name: 'i' }, bogus: 1 } };
    const u = await kubectl(['create', '--dry-run=server', '--validate=strict', '-f', '-'], {
      namespace: nsDefault.name,
      input: JSON.stringify(unknown),
      allowFailure: true,
    });
    expect(u.code).not.toBe(0);
    expect(u.stderr).toContain('unknown field "spec.bogus"');
  });
});

describe('helm install with default values (cert-manager mode)', () => {
  let inst: Installed;

  it('is accepted: helm install exits 0 and every object exists as rendered', async () => {
    inst = await install(nsDefault, {}, ['--take-ownership']);
    const kinds = inst.manifest.map((m) => m.kind);
    for (const k of ['Certificate', 'Issuer', 'MutatingWebhookConfiguration', 'ValidatingAdmissionPolicy']) {
      expect(kinds).toContain(k);
    }
    expect(kinds.filter((k) => k === 'CustomResourceDefinition')).toHaveLength(4);
    const live = await expectAllAccepted(nsDefault, inst);
    const mwc = [...live.values()].find((o) => o.kind === 'MutatingWebhookConfiguration');
    expect(mwc.metadata.annotations['cert-manager.io/inject-ca-from']).toMatch(
      new RegExp(`^${nsDefault.name}/`),
    );
    // The Deployment reached the controllers (its ReplicaSet exists): accepted, not just stored.
    await waitFor(
      async () =>
        (
          await kubectl(
            ['get', 'replicasets', '-l', `app.kubernetes.io/instance=${inst.release}`, '-o', 'name'],
            {
              namespace: nsDefault.name,
            },
          )
        ).stdout.trim() !== '',
      { message: 'the manager ReplicaSet', timeoutMs: 30_000 },
    );
  });

  it('helm uninstall removes the release and keeps the CRDs', async () => {
    expect(inst, 'install failed').toBeDefined();
    await uninstallKeepingCrds(nsDefault, inst);
  });
});

describe('helm install -f values-ha.yaml with certManager.enabled=false, podMonitor.enabled=true, azure.enabled=true', () => {
  let inst: Installed;

  it('is accepted: helm install exits 0 and every object exists as rendered', async () => {
    inst = await install(
      nsSelfManaged,
      {
        'crd.install': false,
        'certManager.enabled': false,
        'podMonitor.enabled': true,
        'podMonitor.interval': '30s',
        'podMonitor.additionalLabels': { release: 'prometheus' },
        'azure.enabled': true,
        'azure.tenantId': '00000000-0000-0000-0000-000000000001',
        'azure.credentials.clientId': '00000000-0000-0000-0000-000000000002',
        'serviceAccount.annotations': {
          'azure.workload.identity/client-id': '00000000-0000-0000-0000-000000000002',
        },
      },
      [],
      ['values-ha.yaml'],
    );
    const kinds = inst.manifest.map((m) => m.kind);
    expect(kinds).toContain('PodMonitor');
    expect(kinds).toContain('PodDisruptionBudget'); // values-ha.yaml: 2 replicas
    expect(kinds).not.toContain('Certificate');
    expect(kinds).not.toContain('Issuer');
    expect(kinds).not.toContain('CustomResourceDefinition');
    const live = await expectAllAccepted(nsSelfManaged, inst);
    const mwc = [...live.values()].find((o) => o.kind === 'MutatingWebhookConfiguration');
    expect(mwc.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBeUndefined();
    const deployment = [...live.values()].find((o) => o.kind === 'Deployment');
    const env = deployment.spec.template.spec.containers[0].env.map((e: Json) => e.name);
    expect(env).toEqual(expect.arrayContaining(['AZURE_TENANT_ID', 'AZURE_CLIENT_ID']));
    expect(deployment.spec.template.metadata.labels['azure.workload.identity/use']).toBe('true');
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.template.spec.containers[0].args).toContain('--leader-elect');
  });

  it('helm uninstall removes the release; the (not installed) CRDs are untouched', async () => {
    expect(inst, 'install failed').toBeDefined();
    await uninstallKeepingCrds(nsSelfManaged, inst);
    for (const name of ['semaphores', 'leases', 'barriers', 'gates']) {
      await kubectl(['get', 'crd', `${name}.sync.konductor.io`]);
    }
  });
});
