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
import type { Job, Pod } from '../api/types.ts';
import { startCluster } from '../devcluster/index.ts';
import { installKonductor, REPO_ROOT } from '../devcluster/konductor.ts';
import { startProcessKubelet } from '../devcluster/kubelet/index.ts';
import { startRealCluster } from '../devcluster/realnode/index.ts';
import { installKonductorChart, konductorNodeImages } from '../devcluster/realnode/konductor.ts';
import { type DemoState, NAMESPACE, SCENARIOS, say } from './demoScenarios.ts';

const TIMEOUT_MS = 5 * 60_000;

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

function podLine(state: DemoState, jobs: string[]): string {
  const prefix = jobs.length === 1 ? new RegExp(`^${jobs[0]}-`) : /^$/;
  return [...state.pods.values()]
    .sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''))
    .map((p) => `${(p.metadata.name ?? '').replace(prefix, '')}:${podStatusText(p)}`)
    .join('  ');
}

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
