/**
 * The chart's ValidatingAdmissionPolicy (issue 5, DESIGN §5): a pod with a konductor.io primitive
 * annotation that reaches the API server without the injected `konductor-wait` init container (the
 * webhook was skipped) is rejected with the chart's readable message; unannotated pods and injected pods
 * are admitted.
 *
 * Only the policy and its binding are applied (`helm template --show-only`, no webhook), rendered with
 * `webhook.namespaceSelector` selecting this file's namespace only, so other test files are never
 * affected. The release namespace is a different (non-existent) name: the chart always excludes its own.
 * Pods are bound to a node that does not exist, so nothing runs them: admission is all that is tested.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsonpatch from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pod } from '../../api/types.ts';
import { buildInjectionPatch } from '../../webhook/injectionPatch.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { CHART_DIR, findChartTools, helm, type Json, parseManifests } from '../unit/chart-tools.ts';

const ns = testNamespace('admission-policy');
const RELEASE = `kvap-${randomBytes(3).toString('hex')}`;
const RELEASE_NAMESPACE = `${RELEASE}-system`;
/** No such Node: pods bound to it are stored but never run (the process kubelet only runs its own). */
const NO_NODE = 'kt-admission-policy-no-node';

let policyYaml: string;
let policy: Json;
let binding: Json;
let home: string;

beforeAll(async () => {
  const tools = await findChartTools();
  home = mkdtempSync(join(tmpdir(), 'konductor-vap-'));
  const r = helm(tools, home, [
    'template',
    RELEASE,
    CHART_DIR,
    '--namespace',
    RELEASE_NAMESPACE,
    '--show-only',
    'templates/validatingadmissionpolicy.yaml',
    '--set-json',
    `webhook.namespaceSelector=${JSON.stringify({ matchLabels: { 'kubernetes.io/metadata.name': ns.name } })}`,
  ]);
  if (r.status !== 0) throw new Error(`helm template failed:\n${r.stderr}`);
  policyYaml = r.stdout;
  const ms = parseManifests(policyYaml);
  expect(ms.map((m) => m.kind)).toEqual(['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
  [policy, binding] = ms;
  expect(binding.spec.matchResources.namespaceSelector.matchLabels).toEqual({
    'kubernetes.io/metadata.name': ns.name,
  });
  await kubectl(['apply', '--server-side', '--field-manager=konductor-test', '-f', '-'], {
    input: policyYaml,
  });
}, 120_000);

afterAll(async () => {
  if (policyYaml) {
    await kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], { input: policyYaml });
  }
  await kubectl(['delete', 'pods', '--all', '--force', '--grace-period=0', '--wait=false'], {
    namespace: ns.name,
    allowFailure: true,
  });
  if (home) rmSync(home, { recursive: true, force: true });
});

function pod(name: string, annotations?: Record<string, string>): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, ...(annotations ? { annotations } : {}) },
    spec: {
      nodeName: NO_NODE,
      restartPolicy: 'Never',
      containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', 'exit 0'] }],
    },
  } as Pod;
}

/** The pod as the konductor webhook would have mutated it (the real injection patch). */
function injected(p: Pod): Pod {
  const patch = buildInjectionPatch(p, {
    agentImage: 'logiciq/konductor-agent:0.1.0',
    agentUrl: 'https://konductor.konductor-system.svc:443',
    caBundle: '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n',
  });
  expect(patch.length).toBeGreaterThan(0);
  return jsonpatch.applyPatch(structuredClone(p), patch, true, false).newDocument;
}

function create(p: Pod, dryRun = false) {
  return kubectl(['create', ...(dryRun ? ['--dry-run=server'] : []), '-f', '-', '-o', 'name'], {
    namespace: ns.name,
    input: JSON.stringify(p),
    allowFailure: true,
  });
}

const message = () => policy.spec.validations[0].message as string;

describe('ValidatingAdmissionPolicy require-injection', () => {
  it('carries a readable message', () => {
    expect(message()).toMatch(/konductor\.io annotations but was not injected by the konductor webhook/);
  });

  it('rejects an annotated pod that was not injected, with the chart message', async () => {
    const bad = pod('unguarded', { 'konductor.io/semaphore': 'x' });
    // A new policy is enforced once the API server's policy informer has it: wait (dry-run) until it is.
    await waitFor(
      async () => {
        const r = await create(bad, true);
        if (r.code === 0) throw new Error('still admitted (policy not enforced yet)');
        if (!r.stderr.includes(message())) throw new Error(`rejected for another reason: ${r.stderr}`);
        return true;
      },
      { message: 'the admission policy to be enforced', timeoutMs: 60_000 },
    );

    const r = await create(bad);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`ValidatingAdmissionPolicy '${policy.metadata.name}'`);
    expect(r.stderr).toContain(`binding '${binding.metadata.name}'`);
    expect(r.stderr).toContain('denied request');
    expect(r.stderr).toContain(message());
    const gone = await kubectl(['get', 'pod', 'unguarded', '--ignore-not-found', '-o', 'name'], {
      namespace: ns.name,
    });
    expect(gone.stdout.trim()).toBe('');
  });

  it('rejects every primitive annotation, not only semaphores', async () => {
    for (const [key, value] of [
      ['konductor.io/lease', 'l'],
      ['konductor.io/barrier', 'b'],
      ['konductor.io/gate', 'g'],
    ] as const) {
      const r = await create(pod(`unguarded-${key.split('/')[1]}`, { [key]: value }), true);
      expect(r.code, key).not.toBe(0);
      expect(r.stderr, key).toContain(message());
    }
  });

  it('admits an unannotated pod', async () => {
    const r = await create(pod('plain', { 'example.com/other': 'x' }));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('pod/plain');
  });

  it('admits an annotated pod carrying the injected konductor-wait init container', async () => {
    const p = injected(pod('guarded', { 'konductor.io/semaphore': 'x' }));
    expect(p.spec?.initContainers?.map((c) => c.name)).toContain('konductor-wait');
    const r = await create(p);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const got = JSON.parse(
      (await kubectl(['get', 'pod', 'guarded', '-o', 'json'], { namespace: ns.name })).stdout,
    ) as Pod;
    expect(got.spec?.initContainers?.[0]?.name).toBe('konductor-wait');
  });

  it('does not apply outside the selected namespace', async () => {
    // The binding selects only this file's namespace: in kube-system (always excluded) a dry run passes.
    const r = await kubectl(['create', '--dry-run=server', '-f', '-', '-o', 'name'], {
      namespace: 'kube-system',
      input: JSON.stringify(pod('elsewhere', { 'konductor.io/semaphore': 'x' })),
      allowFailure: true,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});
