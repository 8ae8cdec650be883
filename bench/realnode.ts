/**
 * konductor on the real node (devcluster/realnode/: the upstream kubelet, containerd, runc, the images
 * built from the Dockerfiles, installed by helm with cert-manager): handoff through the real kubelet,
 * the agent's start time and memory, the manager's memory. Beside the process-kubelet figures in
 * docs/benchmarks.md; no targets (DESIGN §8's targets are for the konductor part, which these include
 * with the kubelet's own work).
 *
 * Method.
 * - Handoff: a Semaphore of 1 permit and a Job of N pods, 3 alive at once (one holds, two wait). Each
 *   main container prints `start`, its grant, sleeps 0.5 s, prints `end`. The runtime stamps every log
 *   line (`kubectl logs --timestamps`: containerd's clock, ns). Handoff = next pod's `start` line - the
 *   holder's `end` line, in token order, counted only when the next pod's konductor-wait had printed its
 *   `waiting for` line before the holder ended; the first 2 are a warm-up. Where the time goes, per
 *   handoff: holder's end -> the manager's decision (grantedAt of the next grant, ms) -> the next
 *   konductor-wait's `granted` line -> the next main container's `start` line. The holder's
 *   konductor-hold `SIGTERM received` line says when the kubelet acted on the exit.
 * - Agent start: pods created one at a time (each once the previous printed its line) wait at a closed
 *   Gate; for each konductor-wait, its process (found through its cgroup) start time (/proc/<pid>/stat,
 *   10 ms ticks, mapped to the wall clock through /proc/uptime) -> its `waiting for` line. The gate opens
 *   onto a Semaphore of 1 permit, so the pods pass one at a time and each konductor-hold starts alone:
 *   process start -> its `holding` line. One agent starting at a time: on 2 cores, several node processes
 *   starting together mostly measure each other.
 * - Agent memory: the container's memory cgroup (v1: memory.max_usage_in_bytes peak, total_rss) and the
 *   kubelet's view (stats/summary workingSetBytes), for the waiting pods above and for as many pods
 *   holding a wide Semaphore for 45 s.
 * - Manager: its container's memory cgroup and the kubelet's stats/summary, idle after install and after
 *   the handoff run.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import type { RealCluster } from '../devcluster/realnode/index.ts';
import { CGROUP_ROOT, startRealCluster } from '../devcluster/realnode/index.ts';
import {
  installKonductorChart,
  KONDUCTOR_NAMESPACE,
  konductorNodeImages,
} from '../devcluster/realnode/konductor.ts';
import {
  type BenchOptions,
  byMode,
  describeEnvironment,
  environment,
  type Figure,
  printFigures,
  round,
  summarize,
  waitUntil,
  writeResult,
} from './common.ts';

const run = promisify(execFile);
const NS = 'bench';
const MEMORY_CGROUP = join('/sys/fs/cgroup/memory', CGROUP_ROOT);
const MiB = 2 ** 20;

type Kubectl = (...args: string[]) => Promise<string>;

interface PodJson {
  metadata: { name: string; uid: string };
  status: {
    initContainerStatuses?: { name: string; containerID?: string; state?: { running?: unknown } }[];
    containerStatuses?: { name: string; containerID?: string; state?: { running?: unknown } }[];
  };
}

/** The cgroup directory of a container (cgroupfs driver: named after the container ID). */
function containerCgroup(containerID: string | undefined): string | undefined {
  const id = containerID?.replace(/^containerd:\/\//, '');
  if (!id) return undefined;
  const walk = (dir: string, depth: number): string | undefined => {
    if (depth > 4) return undefined;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      if (e.name === id) return join(dir, e.name);
      const found = walk(join(dir, e.name), depth + 1);
      if (found) return found;
    }
    return undefined;
  };
  return existsSync(MEMORY_CGROUP) ? walk(MEMORY_CGROUP, 0) : undefined;
}

interface CgroupMemory {
  peakMiB: number;
  usageMiB: number;
  rssMiB: number;
}

function cgroupMemory(dir: string): CgroupMemory {
  const read = (f: string) => Number(readFileSync(join(dir, f), 'utf8').trim());
  const stat = readFileSync(join(dir, 'memory.stat'), 'utf8');
  const rss = Number(/^total_rss (\d+)$/m.exec(stat)?.[1] ?? 0);
  return {
    peakMiB: round(read('memory.max_usage_in_bytes') / MiB, 1),
    usageMiB: round(read('memory.usage_in_bytes') / MiB, 1),
    rssMiB: round(rss / MiB, 1),
  };
}

/** Wall-clock ms of a process's start (10 ms ticks since boot, mapped through /proc/uptime). */
function processStartMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  const bootMs = Date.now() - uptime * 1000;
  return bootMs + ticks * 10;
}

const firstPid = (cgroupDir: string) =>
  Number(readFileSync(join(cgroupDir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)[0]);

/** `kubectl logs --timestamps` as [ms, text] pairs. */
async function stampedLog(kubectl: Kubectl, pod: string, container: string): Promise<[number, string][]> {
  const out = await kubectl('-n', NS, 'logs', pod, '-c', container, '--timestamps');
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const i = l.indexOf(' ');
      return [Date.parse(l.slice(0, i)), l.slice(i + 1)] as [number, string];
    });
}

/** The kubelet's stats/summary working set per `pod/container`. */
async function kubeletWorkingSets(kubectl: Kubectl, node: string): Promise<Record<string, number>> {
  const summary = JSON.parse(await kubectl('get', '--raw', `/api/v1/nodes/${node}/proxy/stats/summary`)) as {
    pods: {
      podRef: { name: string };
      containers?: { name: string; memory?: { workingSetBytes?: number } }[];
    }[];
  };
  const out: Record<string, number> = {};
  for (const p of summary.pods) {
    for (const c of p.containers ?? []) {
      if (c.memory?.workingSetBytes)
        out[`${p.podRef.name}/${c.name}`] = round(c.memory.workingSetBytes / MiB, 1);
    }
  }
  return out;
}

/** The kubelet's working set of `container` in each pod, once stats/summary has them all (~10 s refresh). */
function workingSetsOf(kubectl: Kubectl, node: string, pods: string[], container: string): Promise<number[]> {
  return waitUntil(
    `stats/summary for ${container}`,
    async () => {
      const ws = await kubeletWorkingSets(kubectl, node);
      const v = pods.map((n) => ws[`${n}/${container}`]).filter((x): x is number => x !== undefined);
      return v.length === pods.length ? v : undefined;
    },
    90_000,
    2000,
  );
}

async function managerMemory(kubectl: Kubectl, node: string) {
  const pods = JSON.parse(
    await kubectl(
      '-n',
      KONDUCTOR_NAMESPACE,
      'get',
      'pods',
      '-l',
      'app.kubernetes.io/name=konductor',
      '-o',
      'json',
    ),
  ) as { items: PodJson[] };
  const pod = pods.items[0];
  const dir = containerCgroup(pod?.status.containerStatuses?.find((c) => c.name === 'manager')?.containerID);
  const workingSets = await kubeletWorkingSets(kubectl, node);
  return {
    cgroup: dir ? cgroupMemory(dir) : undefined,
    kubeletWorkingSetMiB: workingSets[`${pod?.metadata.name}/manager`],
  };
}

/** kubectl against the real node's cluster; `apply` reads a document (YAML or an object) from stdin. */
function kubectlFor(
  bin: string,
  kubeconfig: string,
): { kubectl: Kubectl; apply: (doc: unknown) => Promise<string> } {
  const env = { ...process.env, KUBECONFIG: kubeconfig };
  return {
    kubectl: async (...args) => (await run(bin, args, { env, encoding: 'utf8', maxBuffer: 64 * MiB })).stdout,
    apply: (doc) =>
      new Promise<string>((resolve, reject) => {
        const child = execFile(bin, ['-n', NS, 'apply', '-f', '-'], { env }, (err, out) =>
          err ? reject(err) : resolve(out),
        );
        child.stdin?.end(typeof doc === 'string' ? doc : stringify(doc));
      }),
  };
}

type Apply = (doc: unknown) => Promise<string>;

const semaphore = (name: string, permits: number) => ({
  apiVersion: 'sync.konductor.io/v1',
  kind: 'Semaphore',
  metadata: { name },
  spec: { permits },
});

async function measureHandoff(kubectl: Kubectl, apply: Apply, count: number) {
  await apply(semaphore('one', 1));
  await apply({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'handoff' },
    spec: {
      parallelism: 3,
      completions: count,
      backoffLimit: 0,
      template: {
        metadata: { annotations: { 'konductor.io/semaphore': 'one' } },
        spec: {
          restartPolicy: 'Never',
          terminationGracePeriodSeconds: 2,
          containers: [
            {
              name: 'main',
              image: 'busybox:1.37',
              command: [
                'sh',
                '-c',
                'echo start; grep -m1 grantedAt /var/run/konductor/grant.json; sleep 0.5; echo end',
              ],
            },
          ],
        },
      },
    },
  });
  await kubectl('-n', NS, 'wait', '--for=condition=complete', 'job/handoff', `--timeout=${60 + count * 10}s`);
  const pods = (
    JSON.parse(await kubectl('-n', NS, 'get', 'pods', '-l', 'job-name=handoff', '-o', 'json')) as {
      items: PodJson[];
    }
  ).items;
  const records = [];
  for (const p of pods) {
    const main = await stampedLog(kubectl, p.metadata.name, 'main');
    const wait = await stampedLog(kubectl, p.metadata.name, 'konductor-wait');
    const hold = await stampedLog(kubectl, p.metadata.name, 'konductor-hold');
    const grantedAt = Date.parse(/"grantedAt": "([^"]+)"/.exec(main.map((l) => l[1]).join('\n'))?.[1] ?? '');
    records.push({
      pod: p.metadata.name,
      startMs: main.find((l) => l[1] === 'start')?.[0] ?? Number.NaN,
      endMs: main.find((l) => l[1] === 'end')?.[0] ?? Number.NaN,
      grantedAtMs: grantedAt,
      queuedMs: wait.find((l) => / waiting for /.test(l[1]))?.[0],
      grantedLineMs: wait.find((l) => /^granted /.test(l[1]))?.[0] ?? Number.NaN,
      sigtermMs: hold.find((l) => /SIGTERM/.test(l[1]))?.[0],
    });
  }
  records.sort((a, b) => a.grantedAtMs - b.grantedAtMs);
  const handoff: number[] = [];
  const toDecision: number[] = [];
  const toAgent: number[] = [];
  const toMain: number[] = [];
  const toSigterm: number[] = [];
  for (let i = 3; i < records.length; i++) {
    const prev = records[i - 1];
    const next = records[i];
    if (!prev || !next || next.queuedMs === undefined || next.queuedMs > prev.endMs) continue;
    handoff.push(next.startMs - prev.endMs);
    toDecision.push(next.grantedAtMs - prev.endMs);
    toAgent.push(next.grantedLineMs - next.grantedAtMs);
    toMain.push(next.startMs - next.grantedLineMs);
    if (prev.sigtermMs !== undefined) toSigterm.push(prev.sigtermMs - prev.endMs);
  }
  return {
    handoffMs: summarize(handoff, 0),
    breakdownMs: {
      holderExitToDecision: summarize(toDecision, 0),
      decisionToAgentGranted: summarize(toAgent, 0),
      agentGrantedToNextMainStart: summarize(toMain, 0),
      holderExitToHoldSigterm: summarize(toSigterm, 0),
    },
    counted: handoff.length,
    pods: records.length,
  };
}

async function measureAgents(kubectl: Kubectl, apply: Apply, node: string, count: number) {
  const getPod = async (name: string) =>
    JSON.parse(await kubectl('-n', NS, 'get', 'pod', name, '-o', 'json')) as PodJson;
  const podOf = (name: string, annotations: Record<string, string>, script: string) =>
    apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, annotations },
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'main', image: 'busybox:1.37', command: ['sh', '-c', script] }],
      },
    });
  /** Waits for the container to run, then reads its start time, its first `ready` line and its cgroup. */
  const sample = async (name: string, container: 'konductor-wait' | 'konductor-hold', ready: RegExp) => {
    const status = await waitUntil(
      `${name}/${container} running`,
      async () => {
        const s = (await getPod(name)).status.initContainerStatuses?.find((c) => c.name === container);
        return s?.state?.running ? s : undefined;
      },
      180_000,
      100,
    );
    const dir = await waitUntil(
      `${name}/${container} cgroup`,
      () => containerCgroup(status.containerID),
      10_000,
    );
    const startMs = processStartMs(firstPid(dir));
    const readyAt = await waitUntil(
      `${name}/${container} ${ready}`,
      async () => (await stampedLog(kubectl, name, container)).find((l) => ready.test(l[1]))?.[0],
      60_000,
      100,
    );
    return { startToReadyMs: readyAt - startMs, memory: cgroupMemory(dir) };
  };
  const memoryOf = async (pods: string[], container: 'konductor-wait' | 'konductor-hold') => {
    const peaks: number[] = [];
    for (const n of pods) {
      const dir = containerCgroup(
        (await getPod(n)).status.initContainerStatuses?.find((c) => c.name === container)?.containerID,
      );
      if (dir) peaks.push(cgroupMemory(dir).peakMiB);
    }
    return {
      cgroupPeakMiB: summarize(peaks, 1),
      kubeletWorkingSetMiB: summarize(await workingSetsOf(kubectl, node, pods, container), 1),
    };
  };

  // 1. konductor-wait, one pod at a time (each created once the previous printed its line), at a closed
  //    Gate; behind the gate a Semaphore of 1 permit, so that later each konductor-hold starts alone too.
  await apply(semaphore('serial', 1));
  await apply({
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Gate',
    metadata: { name: 'later' },
    spec: { conditions: [{ type: 'Job', name: 'opener', state: 'Complete' }], timeout: '10m' },
  });
  const serial = Array.from({ length: count }, (_, i) => `serial-${i}`);
  const wait = [];
  for (const name of serial) {
    await podOf(name, { 'konductor.io/gate': 'later', 'konductor.io/semaphore': 'serial' }, 'sleep 1');
    wait.push(await sample(name, 'konductor-wait', / waiting for /));
  }
  const waitMemory = await memoryOf(serial, 'konductor-wait');

  // 2. Open the gate: the pods pass one at a time (1 permit); each konductor-hold starts alone.
  await apply({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'opener' },
    spec: {
      backoffLimit: 0,
      template: {
        spec: {
          restartPolicy: 'Never',
          containers: [{ name: 'main', image: 'busybox:1.37', command: ['true'] }],
        },
      },
    },
  });
  const hold = [];
  for (const name of serial) hold.push(await sample(name, 'konductor-hold', /holding /));

  // 3. Memory of konductor-hold as the kubelet sees it: pods that all hold at once for a while.
  await apply(semaphore('wide', count));
  const wide = Array.from({ length: count }, (_, i) => `wide-${i}`);
  for (const name of wide) await podOf(name, { 'konductor.io/semaphore': 'wide' }, 'sleep 45');
  for (const name of wide) await sample(name, 'konductor-hold', /holding /);
  const holdMemory = await memoryOf(wide, 'konductor-hold');

  return {
    wait: {
      startToWaitingLineMs: summarize(
        wait.map((w) => w.startToReadyMs),
        0,
      ),
      cgroupRssMiB: summarize(
        wait.map((w) => w.memory.rssMiB),
        1,
      ),
      ...waitMemory,
    },
    hold: {
      startToHoldingLineMs: summarize(
        hold.map((w) => w.startToReadyMs),
        0,
      ),
      cgroupRssMiB: summarize(
        hold.map((w) => w.memory.rssMiB),
        1,
      ),
      ...holdMemory,
    },
  };
}

export async function runRealNode(opts: BenchOptions): Promise<void> {
  const started = Date.now();
  const env = environment();
  const log = opts.log;
  const t0 = Date.now();
  const images = await konductorNodeImages((l) => log(`  [images] ${l}`));
  const imagesSeconds = (Date.now() - t0) / 1000;
  const t1 = Date.now();
  const cluster: RealCluster = await startRealCluster({ images, log: (l) => log(`  [devcluster] ${l}`) });
  const nodeSeconds = (Date.now() - t1) / 1000;
  try {
    const t2 = Date.now();
    await installKonductorChart(cluster, { log: (l) => log(`  [devcluster] ${l}`) });
    const installSeconds = (Date.now() - t2) / 1000;
    const { kubectl, apply } = kubectlFor(cluster.binaries.kubectl, cluster.kubeconfigPath);
    await kubectl('create', 'namespace', NS);
    // Idle manager (give the kubelet's stats a chance to include it).
    const managerIdle = await waitUntil(
      'the manager in stats/summary',
      async () => {
        const m = await managerMemory(kubectl, cluster.node.name);
        return m.kubeletWorkingSetMiB !== undefined ? m : undefined;
      },
      90_000,
      2000,
    );
    const handoffCount = byMode(opts.mode, { full: 40, quick: 12, tiny: 5 });
    log(`  handoff: Semaphore of 1 permit, Job of ${handoffCount} pods (3 alive at once)`);
    const handoff = await measureHandoff(kubectl, apply, handoffCount);
    const managerAfter = await managerMemory(kubectl, cluster.node.name);
    const agentCount = byMode(opts.mode, { full: 8, quick: 4, tiny: 2 });
    log(
      `  agent: ${agentCount} pods, one at a time, at a closed Gate then a 1-permit Semaphore; ${agentCount} holding together`,
    );
    const agents = await measureAgents(kubectl, apply, cluster.node.name, agentCount);
    const agentImage = images.find((i) => i.kind === 'agent');
    const managerImage = images.find((i) => i.kind === 'manager');

    const figures: Figure[] = [
      {
        name: 'handoff p50 (holder main exit -> next main start, real kubelet)',
        value: handoff.handoffMs.p50,
        unit: 'ms',
      },
      { name: 'handoff p99', value: handoff.handoffMs.p99, unit: 'ms' },
      {
        name: 'of which: holder exit -> grant decision (p50)',
        value: handoff.breakdownMs.holderExitToDecision.p50,
        unit: 'ms',
      },
      {
        name: 'of which: decision -> konductor-wait granted (p50)',
        value: handoff.breakdownMs.decisionToAgentGranted.p50,
        unit: 'ms',
      },
      {
        name: 'of which: granted -> next main start (p50)',
        value: handoff.breakdownMs.agentGrantedToNextMainStart.p50,
        unit: 'ms',
      },
      {
        name: 'konductor-wait start -> waiting line (p50)',
        value: agents.wait.startToWaitingLineMs.p50,
        unit: 'ms',
      },
      {
        name: 'konductor-hold start -> holding line (p50)',
        value: agents.hold.startToHoldingLineMs.p50,
        unit: 'ms',
      },
      { name: 'konductor-wait memory peak, cgroup (p50)', value: agents.wait.cgroupPeakMiB.p50, unit: 'MiB' },
      {
        name: 'konductor-wait working set, kubelet (p50)',
        value: agents.wait.kubeletWorkingSetMiB.p50,
        unit: 'MiB',
      },
      { name: 'konductor-hold memory peak, cgroup (p50)', value: agents.hold.cgroupPeakMiB.p50, unit: 'MiB' },
      {
        name: 'konductor-hold working set, kubelet (p50)',
        value: agents.hold.kubeletWorkingSetMiB.p50,
        unit: 'MiB',
      },
      {
        name: 'manager working set idle, kubelet',
        value: managerIdle.kubeletWorkingSetMiB ?? Number.NaN,
        unit: 'MiB',
      },
      {
        name: 'manager memory peak after the handoff run, cgroup',
        value: managerAfter.cgroup?.peakMiB ?? Number.NaN,
        unit: 'MiB',
      },
      {
        name: 'agent image, compressed',
        value: round((agentImage?.compressedBytes ?? 0) / MiB, 1),
        unit: 'MiB',
      },
      {
        name: 'agent image, unpacked',
        value: round((agentImage?.uncompressedBytes ?? 0) / MiB, 1),
        unit: 'MiB',
      },
    ];
    log(`  ${describeEnvironment(env)}`);
    printFigures(log, figures);
    const path = await writeResult(opts, {
      benchmark: 'realnode',
      mode: opts.mode,
      environment: env,
      method:
        'Real node (upstream kubelet + containerd + runc, images from the Dockerfiles, helm with cert-manager). ' +
        "Handoff from the runtime timestamps of the containers' own log lines; agent start from the process " +
        "start time to its first line; memory from the containers' memory cgroups and the kubelet's stats/summary. " +
        'See bench/realnode.ts.',
      parameters: { handoffPods: handoffCount, agentPods: agentCount, holdSeconds: 0.5 },
      figures,
      details: {
        startup: {
          imagesSeconds: round(imagesSeconds, 1),
          nodeSeconds: round(nodeSeconds, 1),
          installSeconds: round(installSeconds, 1),
        },
        handoff,
        agents,
        manager: { idle: managerIdle, afterHandoff: managerAfter },
        images: {
          agent: agentImage && {
            compressedBytes: agentImage.compressedBytes,
            uncompressedBytes: agentImage.uncompressedBytes,
          },
          manager: managerImage && {
            compressedBytes: managerImage.compressedBytes,
            uncompressedBytes: managerImage.uncompressedBytes,
          },
        },
      },
      durationSeconds: round((Date.now() - started) / 1000, 1),
    });
    log(`  wrote ${path}`);
  } finally {
    await cluster.stop();
  }
}
