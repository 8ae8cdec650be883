/**
 * `npm run demo`: the Semaphore story on a real local control plane, end to end, in one command.
 * Starts the devcluster (building the Kubernetes binaries the first time), the process kubelet and the
 * konductor manager, applies examples/semaphore.yaml and examples/semaphore-job.yaml, shows pods and
 * the Semaphore live until the Job completes, prints a summary and exits 0 (non-zero on failure).
 *
 * `npm run demo -- lease | barrier | gate` runs examples/<primitive>-job.yaml the same way, with a live
 * view and a summary of that primitive.
 *
 * `npm run demo -- --node real [semaphore|lease|barrier|gate]` tells the same story on real containers:
 * the real node (devcluster/realnode/: kubelet, containerd, CNI, CoreDNS), the images built from the
 * Dockerfiles, cert-manager, and konductor installed with helm. Needs root and takes longer to start
 * (README: "Which cluster").
 */
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { Informer } from '../api/informer.ts';
import type { KubeClient } from '../api/kubeClient.ts';
import type { Barrier, Gate, Job, Lease, Pod, Semaphore } from '../api/types.ts';
import { startCluster } from '../devcluster/index.ts';
import { type Interval, maxConcurrent } from '../devcluster/intervals.ts';
import { installKonductor, REPO_ROOT } from '../devcluster/konductor.ts';
import { startProcessKubelet } from '../devcluster/kubelet/index.ts';
import { startRealCluster } from '../devcluster/realnode/index.ts';
import { installKonductorChart, konductorNodeImages } from '../devcluster/realnode/konductor.ts';

const NAMESPACE = 'default';
const TIMEOUT_MS = 5 * 60_000;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function podStatusText(pod: Pod): string {
  const inits = pod.status?.initContainerStatuses ?? [];
  const initTotal = pod.spec.initContainers?.length ?? 0;
  if (pod.metadata.deletionTimestamp) return 'Terminating';
  // As kubectl counts: an init container is done when it exited 0, a native sidecar when it started.
  const sidecars = new Set(
    (pod.spec.initContainers ?? []).filter((c) => c.restartPolicy === 'Always').map((c) => c.name),
  );
  const waitDone = inits.filter(
    (s) => s.state?.terminated?.exitCode === 0 || (sidecars.has(s.name) && s.started),
  ).length;
  const mains = pod.status?.containerStatuses ?? [];
  if (pod.status?.phase === 'Succeeded') return 'Completed';
  if (pod.status?.phase === 'Failed') return 'Error';
  if (mains.some((c) => c.state?.running)) return 'Running';
  if (initTotal > 0 && waitDone < initTotal) return `Init:${waitDone}/${initTotal}`;
  return pod.status?.phase ?? 'Pending';
}

const mainRunning = (pod: Pod) => (pod.status?.containerStatuses ?? []).some((c) => c.state?.running);

type Kubectl = (...args: string[]) => Promise<string>;

/** What every scenario shares: the pods of its Jobs, live, and when each main container was seen running. */
interface DemoState {
  started: number;
  pods: Map<string, Pod>;
  createdAt: Map<string, number>;
  /** First time a pod's main container was seen running (ms, demo clock). */
  runningAt: Map<string, number>;
  /** Most pods with a running main container at once, as the pods' status shows it. */
  maxRunning: number;
  /** On a real node the pod status lags the containers by up to a second or so: see `mainOverlap`. */
  real: boolean;
}

/**
 * Most main containers running at once by their own output: the runtime's timestamps of each main
 * container's first and last log line (`kubectl logs --timestamps`). On the real node this is the
 * ground truth; its pod status reaches the API server up to a second after the containers change.
 */
async function mainOverlap(state: DemoState, kubectl: Kubectl): Promise<number> {
  if (!state.real) return state.maxRunning;
  const intervals: Interval[] = [];
  for (const pod of state.pods.values()) {
    const container = pod.spec.containers[0]?.name ?? '';
    const lines = (await kubectl('logs', pod.metadata.name ?? '', '-c', container, '--timestamps'))
      .trim()
      .split('\n');
    const at = (l: string | undefined) => Date.parse(l?.split(' ')[0] ?? '');
    intervals.push({ start: at(lines[0]), end: at(lines.at(-1)) });
  }
  return maxConcurrent(intervals);
}

/** One primitive's story: what to apply, what to watch, what to print, and what must hold at the end. */
interface Scenario {
  title: string;
  files: string[];
  /** Jobs whose pods the live view shows; the demo ends when the last one completes. */
  jobs: string[];
  /** Starts the primitive's informer; `changed` marks the view dirty. */
  watch(client: KubeClient, changed: () => void): { stop(): void };
  /** The primitive's part of a live line. */
  line(): string;
  /** Resolves when the final state has landed (e.g. the last release). */
  settled(): boolean;
  /** The `kubectl get` to show at the end. */
  get: [string, string];
  summary(state: DemoState, kubectl: Kubectl, jobs: ReadonlyMap<string, Job>): Promise<void>;
}

function podLine(state: DemoState, jobs: string[]): string {
  const prefix = jobs.length === 1 ? new RegExp(`^${jobs[0]}-`) : /^$/;
  return [...state.pods.values()]
    .sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''))
    .map((p) => `${(p.metadata.name ?? '').replace(prefix, '')}:${podStatusText(p)}`)
    .join('  ');
}

function watchOne<T extends { metadata: { name?: string } }>(
  client: KubeClient,
  plural: string,
  name: string,
  onObject: (obj: T | undefined) => void,
): { stop(): void } {
  return new Informer<T>(client, {
    path: `/apis/sync.konductor.io/v1/namespaces/${NAMESPACE}/${plural}`,
    fieldSelector: `metadata.name=${name}`,
    onEvent: (ev) => onObject(ev.type === 'deleted' ? undefined : ev.object),
  }).start();
}

function semaphoreScenario(): Scenario {
  let semaphore: Semaphore | undefined;
  let maxHolders = 0;
  const grantedAt = new Map<string, number>();
  return {
    title: 'konductor demo: a Semaphore with 2 permits and a Job of 6 pods',
    files: ['examples/semaphore.yaml', 'examples/semaphore-job.yaml'],
    jobs: ['batch'],
    watch: (client, changed) =>
      watchOne<Semaphore>(client, 'semaphores', 'batch-slots', (s) => {
        semaphore = s;
        const holders = semaphore?.status?.holders ?? [];
        maxHolders = Math.max(maxHolders, holders.length);
        for (const h of holders) if (!grantedAt.has(h.pod)) grantedAt.set(h.pod, Date.parse(h.grantedAt));
        changed();
      }),
    line: () => {
      const s = semaphore?.status;
      return `semaphore batch-slots: ${s?.inUse ?? 0}/${semaphore?.spec.permits ?? '?'} in use, ${s?.waiting ?? 0} waiting, ${s?.phase ?? '-'}`;
    },
    settled: () => (semaphore?.status?.inUse ?? 0) === 0,
    get: ['semaphore', 'batch-slots'],
    summary: async (state, kubectl) => {
      say(`  max concurrent holders: ${maxHolders} (permits: 2)`);
      const overlap = await mainOverlap(state, kubectl);
      if (state.real) say(`  max main containers at once, by their own log timestamps: ${overlap}`);
      if (overlap > 2) throw new Error(`${overlap} main containers ran at once on 2 permits`);
      for (const name of [...grantedAt.keys()].sort()) {
        const waited = (grantedAt.get(name)! - (state.createdAt.get(name) ?? grantedAt.get(name)!)) / 1000;
        say(`  ${name}: waited ${waited.toFixed(1)}s for its permit`);
      }
      say(`  permits in use at the end: ${semaphore?.status?.inUse ?? 0}`);
      say(`  total: ${((Date.now() - state.started) / 1000).toFixed(1)}s`);
      if (maxHolders > 2) throw new Error(`over-grant: ${maxHolders} holders > 2 permits`);
      if ((semaphore?.status?.inUse ?? 0) !== 0) throw new Error('permits did not return to 0');
    },
  };
}

function leaseScenario(): Scenario {
  let lease: Lease | undefined;
  const holders: { pod: string; token: number; acquiredAt: string }[] = [];
  return {
    title: 'konductor demo: a Lease (exclusive, ttl 2m) and a Job of 3 pods that each need it',
    files: ['examples/lease-job.yaml'],
    jobs: ['migrate'],
    watch: (client, changed) =>
      watchOne<Lease>(client, 'leases', 'db-migration', (l) => {
        lease = l;
        const h = l?.status?.holder;
        if (h && holders.at(-1)?.pod !== h.pod)
          holders.push({ pod: h.pod, token: h.token, acquiredAt: h.acquiredAt });
        changed();
      }),
    line: () => {
      const s = lease?.status;
      const held = s?.holder ? `held by ${s.holder.pod} (token ${s.holder.token})` : 'not held';
      return `lease db-migration: ${s?.phase ?? '-'}, ${held}, ${s?.waiting ?? 0} waiting`;
    },
    settled: () => lease?.status?.phase === 'Available',
    get: ['klease', 'db-migration'],
    summary: async (state, kubectl) => {
      const running = await mainOverlap(state, kubectl);
      say(`  max pods running at once: ${running} (a lease has one holder)`);
      for (const h of holders) {
        const waited =
          (Date.parse(h.acquiredAt) - (state.createdAt.get(h.pod) ?? Date.parse(h.acquiredAt))) / 1000;
        say(`  ${h.pod}: token ${h.token}, waited ${waited.toFixed(1)}s for the lease`);
      }
      say(`  lease at the end: ${lease?.status?.phase ?? '-'}`);
      say(`  total: ${((Date.now() - state.started) / 1000).toFixed(1)}s`);
      if (running > 1) throw new Error(`${running} pods ran at once under one lease`);
      if (holders.length !== 3) throw new Error(`expected 3 holders, saw ${holders.length}`);
      for (let i = 1; i < holders.length; i++)
        if (holders[i]!.token <= holders[i - 1]!.token) throw new Error('fencing tokens did not increase');
      if (lease?.status?.phase !== 'Available') throw new Error('the lease was not released at the end');
    },
  };
}

function barrierScenario(): Scenario {
  let barrier: Barrier | undefined;
  return {
    title: 'konductor demo: a Barrier expecting 4 pods, and a Job of 4 workers that start together',
    files: ['examples/barrier-job.yaml'],
    jobs: ['workers'],
    watch: (client, changed) =>
      watchOne<Barrier>(client, 'barriers', 'start-together', (b) => {
        barrier = b;
        changed();
      }),
    line: () => {
      const s = barrier?.status;
      return `barrier start-together: ${s?.arrived ?? 0}/${barrier?.spec.expected ?? '?'} arrived, ${s?.phase ?? '-'}`;
    },
    settled: () => barrier?.status?.phase === 'Open',
    get: ['kbar', 'start-together'],
    summary: async (state, kubectl) => {
      const s = barrier?.status;
      const opened = Date.parse(s?.openedAt ?? '');
      const arrivals = (s?.arrivals ?? []).map((a) => Date.parse(a.arrivedAt));
      say(
        `  arrived: ${s?.arrived ?? 0} of ${barrier?.spec.expected ?? '?'}, opened at ${s?.openedAt ?? '-'}`,
      );
      if (arrivals.length > 0)
        say(
          `  arrivals spread over ${((Math.max(...arrivals) - Math.min(...arrivals)) / 1000).toFixed(1)}s; nobody started before the last one`,
        );
      for (const name of [...state.pods.keys()].sort()) {
        const line = (await kubectl('logs', name, '-c', 'worker')).trim().split('\n')[0] ?? '';
        say(`  ${line}`);
      }
      say(`  total: ${((Date.now() - state.started) / 1000).toFixed(1)}s`);
      if (s?.phase !== 'Open') throw new Error(`the barrier is ${s?.phase ?? 'without status'}, not Open`);
      for (const [name, at] of state.runningAt)
        if (Number.isFinite(opened) && at < opened - 1000)
          throw new Error(`${name} ran before the barrier opened`);
    },
  };
}

function gateScenario(): Scenario {
  let gate: Gate | undefined;
  return {
    title: 'konductor demo: a Gate that holds the report Job until the preprocessing Job has completed',
    files: ['examples/gate-job.yaml'],
    jobs: ['preprocessing', 'report'],
    watch: (client, changed) =>
      watchOne<Gate>(client, 'gates', 'after-preprocessing', (g) => {
        gate = g;
        changed();
      }),
    line: () => {
      const s = gate?.status;
      const why = (s?.conditionStatuses ?? [])
        .map((c) => `${c.met ? 'met' : 'unmet'}: ${c.message}`)
        .join('; ');
      return `gate after-preprocessing: ${s?.phase ?? '-'}${why ? ` (${why})` : ''}`;
    },
    settled: () => gate?.status?.phase === 'Open',
    get: ['kgate', 'after-preprocessing'],
    summary: async (state, _kubectl, jobs) => {
      const s = gate?.status;
      const reports = [...state.pods.values()].filter((p) => (p.metadata.name ?? '').startsWith('report-'));
      const prepDone = Date.parse(jobs.get('preprocessing')?.status?.completionTime ?? '');
      say(
        `  gate opened at ${s?.openedAt ?? '-'}: ${(s?.conditionStatuses ?? []).map((c) => c.message).join('; ')}`,
      );
      say(`  preprocessing completed at ${jobs.get('preprocessing')?.status?.completionTime ?? '-'}`);
      for (const p of reports) {
        const name = p.metadata.name ?? '';
        const wait = p.status?.initContainerStatuses?.find((c) => c.name === 'konductor-wait');
        const passed = Date.parse(wait?.state?.terminated?.finishedAt ?? '');
        const waited = (passed - (state.createdAt.get(name) ?? passed)) / 1000;
        say(`  ${name}: waited ${Number.isFinite(waited) ? waited.toFixed(0) : '?'}s at the gate`);
        // Both timestamps have one-second precision, and the report passed the gate after the Job completed.
        if (!(passed >= prepDone)) throw new Error(`${name} passed the gate before preprocessing completed`);
      }
      say(`  total: ${((Date.now() - state.started) / 1000).toFixed(1)}s`);
      if (s?.phase !== 'Open') throw new Error(`the gate is ${s?.phase ?? 'without status'}, not Open`);
      if (reports.length === 0) throw new Error('no report pod seen');
    },
  };
}

const SCENARIOS: Record<string, () => Scenario> = {
  semaphore: semaphoreScenario,
  lease: leaseScenario,
  barrier: barrierScenario,
  gate: gateScenario,
};

async function main(): Promise<void> {
  const started = Date.now();
  const { values, positionals } = parseArgs({
    options: { node: { type: 'string', default: 'process' } },
    allowPositionals: true,
  });
  const which = positionals[0] ?? 'semaphore';
  if (values.node !== 'process' && values.node !== 'real') {
    throw new Error(`unknown --node "${values.node}": use process or real`);
  }
  const make = SCENARIOS[which];
  if (!make) throw new Error(`unknown demo "${which}": use one of ${Object.keys(SCENARIOS).join(', ')}`);
  const scenario = make();
  say(`${scenario.title}\n`);
  say('building konductor (npm run build) ...');
  const build = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build.ts')], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('npm run build failed');

  const log = (l: string) => say(`[devcluster] ${l}`);
  const realCluster =
    values.node === 'real'
      ? await startRealCluster({ log, images: await konductorNodeImages(log) })
      : undefined;
  const cluster = realCluster ?? (await startCluster({ log }));
  const cleanups: (() => Promise<void>)[] = [() => cluster.stop()];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    if (realCluster) {
      // Real containers: konductor from its images, installed by helm with cert-manager.
      await installKonductorChart(realCluster, { log });
    } else {
      const kubelet = await startProcessKubelet({ cluster });
      cleanups.push(() => kubelet.stop());
      const konductor = await installKonductor(cluster, { log });
      cleanups.push(() => konductor.uninstall());
    }
    // Asynchronous: the process kubelet serves `kubectl logs` from this very process.
    const run = promisify(execFile);
    const kubectl = async (...args: string[]) =>
      (
        await run(cluster.binaries.kubectl, args, {
          env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath },
          encoding: 'utf8',
        })
      ).stdout;
    say(`\nexport KUBECONFIG=${cluster.kubeconfigPath}   # to look around with kubectl while it runs\n`);
    for (const [i, file] of scenario.files.entries()) {
      const out = (await kubectl('apply', '-f', join(REPO_ROOT, file))).trim();
      say(`$ kubectl apply -f ${file}\n${out}${i === scenario.files.length - 1 ? '\n' : ''}`);
    }

    const client = cluster.client;
    const state: DemoState = {
      started,
      pods: new Map(),
      createdAt: new Map(),
      runningAt: new Map(),
      maxRunning: 0,
      real: realCluster !== undefined,
    };
    const jobs = new Map<string, Job>();
    let dirty = true;
    const changed = () => {
      dirty = true;
    };
    const primitiveWatch = scenario.watch(client, changed);
    const podInformer = new Informer<Pod>(client, {
      path: `/api/v1/namespaces/${NAMESPACE}/pods`,
      labelSelector:
        scenario.jobs.length === 1
          ? `job-name=${scenario.jobs[0]}`
          : `job-name in (${scenario.jobs.join(',')})`,
      onEvent: (ev) => {
        const name = ev.object.metadata.name ?? '';
        if (ev.type === 'deleted') state.pods.delete(name);
        else state.pods.set(name, ev.object);
        if (!state.createdAt.has(name))
          state.createdAt.set(name, Date.parse(ev.object.metadata.creationTimestamp ?? ''));
        if (ev.type !== 'deleted' && mainRunning(ev.object) && !state.runningAt.has(name))
          state.runningAt.set(name, Date.now());
        state.maxRunning = Math.max(state.maxRunning, [...state.pods.values()].filter(mainRunning).length);
        dirty = true;
      },
    }).start();
    const jobInformer = new Informer<Job>(client, {
      path: `/apis/batch/v1/namespaces/${NAMESPACE}/jobs`,
      ...(scenario.jobs.length === 1 ? { fieldSelector: `metadata.name=${scenario.jobs[0]}` } : {}),
      onEvent: (ev) => {
        if (!scenario.jobs.includes(ev.object.metadata.name ?? '')) return;
        jobs.set(ev.object.metadata.name ?? '', ev.object);
        dirty = true;
      },
    }).start();

    const render = () => {
      const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
      say(`[${t}s] ${scenario.line()} | ${podLine(state, scenario.jobs)}`);
    };
    const finished = (name: string) =>
      jobs
        .get(name)
        ?.status?.conditions?.find(
          (c) => c.status === 'True' && (c.type === 'Complete' || c.type === 'Failed'),
        );
    const deadline = Date.now() + TIMEOUT_MS;
    await new Promise<void>((resolve, reject) => {
      const tick = setInterval(() => {
        if (dirty) {
          dirty = false;
          render();
        }
        const failed = scenario.jobs
          .map((j) => [j, finished(j)] as const)
          .find(([, c]) => c?.type === 'Failed');
        if (failed) {
          clearInterval(tick);
          reject(new Error(`Job ${failed[0]} failed: ${failed[1]?.message ?? failed[1]?.reason ?? ''}`));
        } else if (scenario.jobs.every((j) => finished(j))) {
          clearInterval(tick);
          resolve();
        } else if (Date.now() > deadline) {
          clearInterval(tick);
          reject(
            new Error(`the Job${scenario.jobs.length > 1 ? 's' : ''} did not complete within 5 minutes`),
          );
        }
      }, 250);
    });
    // Let the last releases land, then show the final state.
    const releaseDeadline = Date.now() + 30_000;
    while (!scenario.settled() && Date.now() < releaseDeadline) await new Promise((r) => setTimeout(r, 100));
    render();
    primitiveWatch.stop();
    podInformer.stop();
    jobInformer.stop();

    say(`\n$ kubectl get ${scenario.get.join(' ')}\n${(await kubectl('get', ...scenario.get)).trimEnd()}`);
    const first = [...state.pods.keys()]
      .filter((n) => state.pods.get(n)?.spec.initContainers?.length)
      .sort()[0];
    if (first) {
      say(
        `\n$ kubectl logs ${first} -c konductor-wait\n${(await kubectl('logs', first, '-c', 'konductor-wait')).trimEnd()}`,
      );
    }
    say('\nsummary');
    await scenario.summary(state, kubectl, jobs);
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
