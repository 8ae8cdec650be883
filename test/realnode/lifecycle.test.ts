/**
 * The real node's own life cycle on this machine (project `realnode`, before `e2e`): it comes up
 * with working pods, Service DNS and a ClusterIP; a run killed with SIGKILL leaves its processes,
 * mounts, links and chains behind and the next run removes every one of them; a stop leaves the host
 * exactly as it was (no process, mount, link, iptables chain, cgroup, file or sysctl of ours).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../devcluster/processes.ts';
import {
  DEFAULT_LOCK_DIR,
  findLeftovers,
  HOST_DIRS,
  type RealCluster,
  STATE_DIR,
  SYSCTLS,
  startRealCluster,
  stateLayout,
  sweepRealNode,
} from '../../devcluster/realnode/index.ts';
import { acquireMachineLock } from '../../devcluster/realnode/machineLock.ts';
import { runProcess } from '../helpers/process.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const NODE = process.execPath;

function hostSnapshot() {
  return {
    dirs: HOST_DIRS.filter((d) => existsSync(d)),
    sysctls: Object.fromEntries(
      Object.keys(SYSCTLS).map((k) => [k, readFileSync(join('/proc/sys', k), 'utf8').trim()]),
    ),
  };
}

async function kubectl(kubectlPath: string, kubeconfig: string, args: string[], input?: string) {
  const res = await runProcess(kubectlPath, args, {
    env: { ...process.env, KUBECONFIG: kubeconfig },
    ...(input !== undefined ? { input } : {}),
    timeoutMs: 120_000,
  });
  if (res.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${res.stderr || res.stdout}`);
  return res.stdout;
}

const podYaml = (name: string, image: string) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: ${image}
    imagePullPolicy: Never
    command: ["sh", "-c", "sleep 3600"]
`;

/** A busybox pod that is Running, resolves the kubernetes Service by DNS and reaches it. */
async function provePods(kubectlPath: string, kubeconfig: string, name: string) {
  const k = (args: string[], input?: string) => kubectl(kubectlPath, kubeconfig, args, input);
  await k(['apply', '-f', '-'], podYaml(name, 'busybox:1.37'));
  await k(['wait', '--for=condition=Ready', `pod/${name}`, '--timeout=120s']);
  const dns = await k(['exec', name, '--', 'nslookup', 'kubernetes.default.svc.cluster.local']);
  expect(dns).toContain('Address: 10.0.0.1');
  // The ClusterIP (kube-proxy) reaches the API server on the node IP.
  await k(['exec', name, '--', 'sh', '-c', 'nc -w 5 10.0.0.1 443 </dev/null']);
}

describe('real node life cycle', () => {
  let before: ReturnType<typeof hostSnapshot>;
  let second: RealCluster | undefined;
  let child: ChildProcess | undefined;

  afterAll(async () => {
    child?.kill('SIGKILL');
    await second?.stop();
  });

  it('starts with working pods and DNS; a crashed run is cleaned up by the next; a stop leaves nothing', async () => {
    // 0. What an earlier run on this machine left when it was killed (a CI job cut off, a session
    // ended) is swept under the machine lock, as every run does first; from here the host is clean.
    const lock = await acquireMachineLock({ waitMs: 600_000 });
    try {
      await sweepRealNode({ layout: stateLayout(), log: () => {} });
    } finally {
      lock.release();
    }
    expect(await findLeftovers(stateLayout())).toEqual([]);
    before = hostSnapshot();

    // 1. A first run in its own process (as `npm run cluster -- --node real`), with a pod.
    child = spawn(NODE, [join(ROOT, 'scripts', 'cluster.ts'), '--node', 'real', '--no-konductor'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (c) => {
      out += c;
    });
    child.stderr?.on('data', (c) => {
      err += c;
    });
    const kubeconfig = await waitFor(
      () => {
        if (child?.exitCode !== null) throw new Error(`first run exited ${child?.exitCode}:\n${err}`);
        return /^export KUBECONFIG=(.+)$/m.exec(out)?.[1];
      },
      { timeoutMs: 600_000, message: `the first real node to come up (stderr: ${err.slice(-2000)})` },
    );
    const kubectlPath = /^# kubectl of the same version: (.+)$/m.exec(out)?.[1] ?? '';
    await provePods(kubectlPath, kubeconfig, 'first');

    // 2. SIGKILL: nothing of it gets to clean up.
    child.kill('SIGKILL');
    await new Promise((r) => child?.once('exit', r));
    const left = await findLeftovers(stateLayout());
    const leftKinds = new Set(left.map((l) => l.split(' ')[0]));
    for (const kind of ['process', 'mount', 'link', 'chain', 'cgroup', 'directory']) {
      expect(leftKinds, `a crashed run leaves ${kind}s (else this test proves nothing)`).toContain(kind);
    }
    const crashedPids = left
      .map((l) => /^process (\d+)/.exec(l)?.[1])
      .filter((p): p is string => !!p)
      .map(Number);

    // 3. The next run takes the lock over, removes all of it, and works.
    second = await startRealCluster({ lockWaitMs: 60_000, readyTimeoutMs: 120_000 });
    expect(second.node.previousRun.killed.length).toBeGreaterThan(0);
    expect(second.node.previousRun.unmounted.length).toBeGreaterThan(0);
    expect(second.node.previousRun.chains.length).toBeGreaterThan(0);
    expect(second.node.previousRun.failed).toEqual([]);
    for (const pid of crashedPids) expect(isProcessAlive(pid), `pid ${pid} of the crashed run`).toBe(false);
    await provePods(second.binaries.kubectl, second.kubeconfigPath, 'second');

    // 4. Stop: the host is as it was.
    await second.stop();
    second = undefined;
    expect(await findLeftovers(stateLayout())).toEqual([]);
    expect(hostSnapshot()).toEqual(before);
    expect(existsSync(DEFAULT_LOCK_DIR)).toBe(false);
    expect(existsSync(STATE_DIR)).toBe(false);
  });
});
