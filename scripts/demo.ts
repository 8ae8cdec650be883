/**
 * `npm run demo`: the Semaphore story on a real local control plane, end to end, in one command.
 * Starts the devcluster (building the Kubernetes binaries the first time), the process kubelet and the
 * konductor manager, applies examples/semaphore.yaml and examples/semaphore-job.yaml, shows pods and
 * the Semaphore live until the Job completes, prints a summary and exits 0 (non-zero on failure).
 */
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Informer } from '../api/informer.ts';
import type { Job, Pod, Semaphore } from '../api/types.ts';
import { startCluster } from '../devcluster/index.ts';
import { installKonductor, REPO_ROOT } from '../devcluster/konductor.ts';
import { startProcessKubelet } from '../devcluster/kubelet/index.ts';

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

async function main(): Promise<void> {
  const started = Date.now();
  say('konductor demo: a Semaphore with 2 permits and a Job of 6 pods\n');
  say('building konductor (npm run build) ...');
  const build = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build.ts')], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('npm run build failed');

  const cluster = await startCluster({ log: (l) => say(`[devcluster] ${l}`) });
  const cleanups: (() => Promise<void>)[] = [() => cluster.stop()];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  try {
    const kubelet = await startProcessKubelet({ cluster });
    cleanups.push(() => kubelet.stop());
    const konductor = await installKonductor(cluster, { log: (l) => say(`[devcluster] ${l}`) });
    cleanups.push(() => konductor.uninstall());
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
    say(
      `$ kubectl apply -f examples/semaphore.yaml\n${(await kubectl('apply', '-f', join(REPO_ROOT, 'examples/semaphore.yaml'))).trim()}`,
    );
    say(
      `$ kubectl apply -f examples/semaphore-job.yaml\n${(await kubectl('apply', '-f', join(REPO_ROOT, 'examples/semaphore-job.yaml'))).trim()}\n`,
    );

    const client = cluster.client;
    let maxHolders = 0;
    let semaphore: Semaphore | undefined;
    const grantedAt = new Map<string, number>();
    const createdAt = new Map<string, number>();
    const pods = new Map<string, Pod>();
    let job: Job | undefined;
    let dirty = true;
    const semInformer = new Informer<Semaphore>(client, {
      path: `/apis/sync.konductor.io/v1/namespaces/${NAMESPACE}/semaphores`,
      fieldSelector: 'metadata.name=batch-slots',
      onEvent: (ev) => {
        semaphore = ev.type === 'deleted' ? undefined : ev.object;
        const holders = semaphore?.status?.holders ?? [];
        maxHolders = Math.max(maxHolders, holders.length);
        for (const h of holders) if (!grantedAt.has(h.pod)) grantedAt.set(h.pod, Date.parse(h.grantedAt));
        dirty = true;
      },
    }).start();
    const podInformer = new Informer<Pod>(client, {
      path: `/api/v1/namespaces/${NAMESPACE}/pods`,
      labelSelector: 'job-name=batch',
      onEvent: (ev) => {
        const name = ev.object.metadata.name ?? '';
        if (ev.type === 'deleted') pods.delete(name);
        else pods.set(name, ev.object);
        if (!createdAt.has(name)) createdAt.set(name, Date.parse(ev.object.metadata.creationTimestamp ?? ''));
        dirty = true;
      },
    }).start();
    const jobInformer = new Informer<Job>(client, {
      path: `/apis/batch/v1/namespaces/${NAMESPACE}/jobs`,
      fieldSelector: 'metadata.name=batch',
      onEvent: (ev) => {
        job = ev.object;
        dirty = true;
      },
    }).start();

    const render = () => {
      const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
      const s = semaphore?.status;
      const podLine = [...pods.values()]
        .sort((a, b) => (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''))
        .map((p) => `${(p.metadata.name ?? '').replace(/^batch-/, '')}:${podStatusText(p)}`)
        .join('  ');
      say(
        `[${t}s] semaphore batch-slots: ${s?.inUse ?? 0}/${semaphore?.spec.permits ?? '?'} in use, ${s?.waiting ?? 0} waiting, ${s?.phase ?? '-'} | ${podLine}`,
      );
    };
    const complete = () =>
      job?.status?.conditions?.find(
        (c) => c.status === 'True' && (c.type === 'Complete' || c.type === 'Failed'),
      );
    const deadline = Date.now() + TIMEOUT_MS;
    await new Promise<void>((resolve, reject) => {
      const tick = setInterval(() => {
        if (dirty) {
          dirty = false;
          render();
        }
        const done = complete();
        if (done) {
          clearInterval(tick);
          if (done.type === 'Failed')
            reject(new Error(`Job batch failed: ${done.message ?? done.reason ?? ''}`));
          else resolve();
        } else if (Date.now() > deadline) {
          clearInterval(tick);
          reject(new Error('the Job did not complete within 5 minutes'));
        }
      }, 250);
    });
    // Let the last releases land, then show the final state.
    const releaseDeadline = Date.now() + 30_000;
    while ((semaphore?.status?.inUse ?? 0) > 0 && Date.now() < releaseDeadline)
      await new Promise((r) => setTimeout(r, 100));
    render();
    semInformer.stop();
    podInformer.stop();
    jobInformer.stop();

    say(
      `\n$ kubectl get semaphore batch-slots\n${(await kubectl('get', 'semaphore', 'batch-slots')).trimEnd()}`,
    );
    const first = [...pods.keys()].sort()[0];
    if (first) {
      say(
        `\n$ kubectl logs ${first} -c konductor-wait\n${(await kubectl('logs', first, '-c', 'konductor-wait')).trimEnd()}`,
      );
    }
    say('\nsummary');
    say(`  max concurrent holders: ${maxHolders} (permits: 2)`);
    for (const name of [...grantedAt.keys()].sort()) {
      const waited = (grantedAt.get(name)! - (createdAt.get(name) ?? grantedAt.get(name)!)) / 1000;
      say(`  ${name}: waited ${waited.toFixed(1)}s for its permit`);
    }
    say(`  permits in use at the end: ${semaphore?.status?.inUse ?? 0}`);
    say(`  total: ${((Date.now() - started) / 1000).toFixed(1)}s`);
    if (maxHolders > 2) throw new Error(`over-grant: ${maxHolders} holders > 2 permits`);
    if ((semaphore?.status?.inUse ?? 0) !== 0) throw new Error('permits did not return to 0');
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
