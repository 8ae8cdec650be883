/**
 * The e2e tests' tools, all on the user's side of the devcluster's API: kubectl and helm against the
 * real node's cluster, namespaces, installing the chart the way a user does, and ground truth from
 * the containers themselves (each main container prints /proc/uptime, the node kernel's clock, when
 * it starts and ends: busybox's `date` has no sub-second field).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, inject } from 'vitest';
import { type Interval, maxConcurrent } from '../../devcluster/intervals.ts';
import { CHART_DIR, REPO } from '../helpers/chartTools.ts';
import { clusterInfo } from '../helpers/cluster.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { runProcess } from '../helpers/process.ts';
import { waitFor } from '../helpers/waitFor.ts';

export interface E2eInfo {
  helmPath: string;
  /** `--set` flags for the locally built manager and agent images. */
  imageArgs: string[];
  /** The agent image as pods reference it. */
  agentImage: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    e2e: E2eInfo;
  }
}

export { maxConcurrent, REPO };
export const RELEASE = 'konductor';
export const RELEASE_NS = 'konductor-system';
export const MANAGER_SELECTOR = 'app.kubernetes.io/name=konductor';

export function e2eInfo(): E2eInfo {
  const info = inject('e2e');
  if (!info) throw new Error('no real node: e2e tests run in the `e2e` vitest project');
  return info;
}

const helmHome = mkdtempSync(join(tmpdir(), 'konductor-e2e-helm-'));

export async function helm(args: string[], opts: { allowFailure?: boolean } = {}) {
  const res = await runProcess(e2eInfo().helmPath, [...args, '--kubeconfig', clusterInfo().kubeconfigPath], {
    env: {
      ...process.env,
      HELM_CACHE_HOME: join(helmHome, 'cache'),
      HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_DATA_HOME: join(helmHome, 'data'),
    },
    timeoutMs: 300_000,
  });
  if (res.code !== 0 && !opts.allowFailure) {
    throw new Error(`helm ${args.join(' ')} failed (exit ${res.code}):\n${res.stderr || res.stdout}`);
  }
  return res;
}

export async function kubectlJson<T>(args: string[], namespace?: string): Promise<T> {
  const res = await kubectl([...args, '-o', 'json'], namespace ? { namespace } : {});
  return JSON.parse(res.stdout) as T;
}

export type CertMode = 'cert-manager' | 'self-managed';

/** `helm upgrade --install` of charts/konductor as a user runs it, with the local images. */
export function installArgs(mode: CertMode, extra: string[] = []): string[] {
  return [
    'upgrade',
    '--install',
    RELEASE,
    CHART_DIR,
    '--namespace',
    RELEASE_NS,
    '--create-namespace',
    ...e2eInfo().imageArgs,
    ...(mode === 'self-managed' ? ['--set', 'certManager.enabled=false'] : []),
    ...extra,
    '--wait',
    '--timeout',
    '4m',
  ];
}

const annotatedPod = (ns: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    generateName: 'injection-check-',
    namespace: ns,
    annotations: { 'konductor.io/gate': 'check' },
  },
  spec: { containers: [{ name: 'main', image: 'busybox:1.37', command: ['true'] }] },
});

/**
 * Resolves when the API server sends an annotated pod through the webhook (TLS with the caBundle it
 * has) and gets it back injected: a server-side dry run, as a user can check it.
 */
export async function waitForInjection(ns = 'default'): Promise<void> {
  await waitFor(
    async () => {
      const res = await kubectl(['create', '--dry-run=server', '-f', '-', '-o', 'json'], {
        input: JSON.stringify(annotatedPod(ns)),
        allowFailure: true,
      });
      if (res.code !== 0) throw new Error(res.stderr);
      const pod = JSON.parse(res.stdout) as { spec: { initContainers?: { name: string }[] } };
      return pod.spec.initContainers?.some((c) => c.name === 'konductor-wait');
    },
    { timeoutMs: 120_000, message: 'the webhook to inject a dry-run pod' },
  );
}

/** The release's certificate mode, or undefined when it is not installed. */
export async function installedMode(): Promise<CertMode | undefined> {
  const status = await helm(['status', RELEASE, '--namespace', RELEASE_NS, '-o', 'json'], {
    allowFailure: true,
  });
  if (status.code !== 0 || JSON.parse(status.stdout).info?.status !== 'deployed') return undefined;
  const values = JSON.parse(
    (await helm(['get', 'values', RELEASE, '--namespace', RELEASE_NS, '--all', '-o', 'json'])).stdout,
  );
  return values.certManager?.enabled === false ? 'self-managed' : 'cert-manager';
}

/** Installs konductor (cert-manager mode by default) unless it is installed that way; waits for injection. */
export async function ensureInstalled(mode: CertMode = 'cert-manager'): Promise<void> {
  if ((await installedMode()) !== mode) await helm(installArgs(mode));
  await waitForInjection();
}

/** A namespace for this file (kubectl create / delete), with optional labels. */
export function e2eNamespace(prefix: string, labels: Record<string, string> = {}): { name: string } {
  const name = `e2e-${prefix}-${Math.random().toString(36).slice(2, 7)}`;
  beforeAll(async () => {
    await kubectl(['create', 'namespace', name]);
    const pairs = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
    if (pairs.length) await kubectl(['label', 'namespace', name, ...pairs]);
  });
  afterAll(async () => {
    if (process.env.KONDUCTOR_KEEP_NAMESPACES === '1') return;
    await kubectl(['delete', 'namespace', name, '--wait=false'], { allowFailure: true });
  });
  return { name };
}

/** Wraps a container's shell script: `start <uptime>` first, `end <uptime>` last. */
export const stamped = (script: string) =>
  `read up _ < /proc/uptime; echo "start $up"; ${script}; read up _ < /proc/uptime; echo "end $up"`;

export interface PodInterval extends Interval {
  pod: string;
}

/** The `start`/`end` stamps of one container of every pod matching `selector`. */
export async function intervals(
  namespace: string,
  selector: string,
  container: string,
): Promise<PodInterval[]> {
  const pods = await kubectlJson<{ items: { metadata: { name: string } }[] }>(
    ['get', 'pods', '-l', selector],
    namespace,
  );
  const out: PodInterval[] = [];
  for (const p of pods.items) {
    const log = (await kubectl(['logs', p.metadata.name, '-c', container], { namespace })).stdout;
    const start = /^start (\d+\.\d+)$/m.exec(log)?.[1];
    const end = /^end (\d+\.\d+)$/m.exec(log)?.[1];
    if (!start || !end) throw new Error(`pod ${p.metadata.name}: no start/end stamps in its log:\n${log}`);
    out.push({ pod: p.metadata.name, start: Number(start), end: Number(end) });
  }
  return out;
}
