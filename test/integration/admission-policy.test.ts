/**
 * The chart's ValidatingAdmissionPolicies (issue 5, DESIGN §5; issue 15, items 2 and 6), enforced by the
 * API server alone (no webhook here):
 * - require-injection: a pod with a konductor.io primitive annotation that reaches the API server without
 *   the injected `konductor-wait` (the webhook was skipped) is rejected with the chart's readable message,
 *   and so is one whose `konductor-wait` is a user container borrowing the name (wrong image or args, no
 *   managed label, no token volume, not first); unannotated pods and genuinely injected pods are admitted;
 * - immutable-metadata: `kubectl label pod h konductor.io/managed-` and `kubectl annotate --overwrite pod h
 *   konductor.io/semaphore=other` are refused, other edits pass;
 * - status-writer: nobody but the chart's manager ServiceAccount writes a primitive's status.
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
import { IMMUTABLE_METADATA_MESSAGE } from '../../api/admissionPolicies.ts';
import type { Pod } from '../../api/types.ts';
import { installCrds } from '../../devcluster/crds.ts';
import { buildInjectionPatch } from '../../webhook/injectionPatch.ts';
import { CHART_DIR, findChartTools, helm, type Json, parseManifests } from '../helpers/chartTools.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('admission-policy');
const RELEASE = `kvap-${randomBytes(3).toString('hex')}`;
const RELEASE_NAMESPACE = `${RELEASE}-system`;
/** No such Node: pods bound to it are stored but never run (the process kubelet only runs its own). */
const NO_NODE = 'kt-admission-policy-no-node';
/** The agent image the chart's policy requires (the injection below uses the same). */
const AGENT_TAG = '0.1.0';
const AGENT_IMAGE = `logiciq/konductor-agent:${AGENT_TAG}`;

let policyYaml: string;
let policy: Json;
let binding: Json;
let manifests: Json[];
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
    '--set',
    `agentImage.tag=${AGENT_TAG}`,
    '--set-json',
    `webhook.namespaceSelector=${JSON.stringify({ matchLabels: { 'kubernetes.io/metadata.name': ns.name } })}`,
  ]);
  if (r.status !== 0) throw new Error(`helm template failed:\n${r.stderr}`);
  policyYaml = r.stdout;
  manifests = parseManifests(policyYaml);
  const id = (m: Json) => `${m.kind}/${m.metadata.name}`;
  expect(manifests.map(id).sort()).toEqual(
    ['require-injection', 'immutable-metadata', 'status-writer']
      .flatMap((p) => [
        `ValidatingAdmissionPolicy/${RELEASE}-konductor-${p}`,
        `ValidatingAdmissionPolicyBinding/${RELEASE}-konductor-${p}`,
      ])
      .sort(),
  );
  const byId = new Map(manifests.map((m) => [id(m), m]));
  policy = byId.get(`ValidatingAdmissionPolicy/${RELEASE}-konductor-require-injection`);
  binding = byId.get(`ValidatingAdmissionPolicyBinding/${RELEASE}-konductor-require-injection`);
  for (const b of manifests.filter((m) => m.kind === 'ValidatingAdmissionPolicyBinding')) {
    expect(b.spec.matchResources.namespaceSelector.matchLabels).toEqual({
      'kubernetes.io/metadata.name': ns.name,
    });
  }
  await installCrds(ns.client);
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
    agentImage: AGENT_IMAGE,
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

  it('rejects a pod whose konductor-wait is a user container borrowing the name', async () => {
    const genuine = injected(pod('borrowed', { 'konductor.io/semaphore': 'x' }));
    const variants: [string, (p: Pod) => void, RegExp][] = [
      [
        'a busybox container named konductor-wait',
        (p) => {
          p.spec.initContainers = [
            { name: 'konductor-wait', image: 'busybox', command: ['sh', '-c', 'exit 0'] },
          ];
        },
        /init container konductor-wait is not the agent konductor injects/,
      ],
      [
        'the agent image with other args',
        (p) => {
          const wait = p.spec.initContainers?.[0];
          if (wait) wait.args = ['hold'];
        },
        /init container konductor-wait is not the agent konductor injects/,
      ],
      [
        'no managed label',
        (p) => {
          p.metadata.labels = {};
        },
        /not the konductor\.io\/managed: "true" label/,
      ],
      [
        'an emptyDir in place of the projected token volume',
        (p) => {
          p.spec.volumes = (p.spec.volumes ?? []).map((v) =>
            v.name === 'konductor-token' ? { name: v.name, emptyDir: {} } : v,
          );
        },
        /lacks the projected konductor-token volume/,
      ],
      [
        'a user init container running before it',
        (p) => {
          p.spec.initContainers = [
            { name: 'first', image: 'busybox', command: ['sh', '-c', 'exit 0'] },
            ...(p.spec.initContainers ?? []),
          ];
        },
        /konductor-wait must be the first init container/,
      ],
    ];
    for (const [what, change, message] of variants) {
      const p = structuredClone(genuine);
      change(p);
      const r = await create(p, true);
      expect(r.code, what).not.toBe(0);
      expect(r.stderr, what).toMatch(message);
    }
    const ok = await create(genuine, true);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
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

describe('ValidatingAdmissionPolicy immutable-metadata', () => {
  it('refuses kubectl label konductor.io/managed- and annotate --overwrite konductor.io/semaphore; other edits pass', async () => {
    const created = await create(injected(pod('labelled', { 'konductor.io/semaphore': 'x' })));
    expect(created.code, created.stderr).toBe(0);
    const edit = (args: string[]) => kubectl(args, { namespace: ns.name, allowFailure: true });
    // A new policy is enforced once the API server has loaded it: wait (dry-run) until it is.
    await waitFor(
      async () =>
        (await edit(['label', '--dry-run=server', 'pod', 'labelled', 'konductor.io/managed-'])).code !== 0,
      { message: 'the immutable-metadata policy to be enforced', timeoutMs: 60_000 },
    );
    const unlabel = await edit(['label', 'pod', 'labelled', 'konductor.io/managed-']);
    expect(unlabel.code).not.toBe(0);
    expect(unlabel.stderr).toContain(`ValidatingAdmissionPolicy '${RELEASE}-konductor-immutable-metadata'`);
    expect(unlabel.stderr).toContain(`${IMMUTABLE_METADATA_MESSAGE} (changed: konductor.io/managed)`);
    const retarget = await edit([
      'annotate',
      '--overwrite',
      'pod',
      'labelled',
      'konductor.io/semaphore=other',
    ]);
    expect(retarget.code).not.toBe(0);
    expect(retarget.stderr).toContain(`${IMMUTABLE_METADATA_MESSAGE} (changed: konductor.io/semaphore)`);
    expect((await edit(['label', 'pod', 'labelled', 'team=a'])).code).toBe(0);
    expect((await edit(['annotate', 'pod', 'labelled', 'example.com/note=x'])).code).toBe(0);
  });
});

describe('ValidatingAdmissionPolicy status-writer', () => {
  it('refuses a status write by anyone but the chart’s manager ServiceAccount', async () => {
    await kubectl(['create', '-f', '-'], {
      namespace: ns.name,
      input: JSON.stringify({
        apiVersion: 'sync.konductor.io/v1',
        kind: 'Semaphore',
        metadata: { name: 'guarded' },
        spec: { permits: 1 },
      }),
    });
    const r = await waitFor(
      async () => {
        const res = await kubectl(
          [
            'patch',
            'semaphore',
            'guarded',
            '--subresource=status',
            '--type=merge',
            '-p',
            '{"status":{"inUse":1}}',
          ],
          { namespace: ns.name, allowFailure: true },
        );
        if (res.code === 0) throw new Error('status written: the policy is not enforced yet');
        return res;
      },
      { message: 'the status-writer policy to be enforced', timeoutMs: 60_000 },
    );
    expect(r.stderr).toContain(
      `only the konductor manager (system:serviceaccount:${RELEASE_NAMESPACE}:${RELEASE}-konductor) may write it`,
    );
  });
});
