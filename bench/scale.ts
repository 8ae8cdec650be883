/**
 * Manager memory and reconcile latency at scale (DESIGN §8: RSS <= 150 MiB with 10,000 managed pods and
 * 1,000 primitives).
 *
 * Method: a fresh devcluster and the manager (one namespace, no kubelet, webhook configuration removed).
 * 1,000 primitives (800 Semaphores of 5 permits, 200 Leases) are created, then 10,000 pods directly on the
 * API server in their injected form, bound to a Node without a kubelet, 10 per primitive (concurrency 32,
 * keep-alive). Waits until the manager has granted everything it can (konductor_grants_total = 800 x 5 +
 * 200 x 1) and its status writes have stopped, then reads /proc/<pid>/status of the manager (VmRSS now,
 * VmHWM = peak so far, RssAnon). Then a few grant round trips: one holder pod of a Semaphore is patched to
 * Succeeded (as the kubelet would) and the time until the Semaphore's watch shows the next holder is taken;
 * plus the manager's konductor_reconcile_duration_seconds histogram. Finally the manager is restarted
 * (SIGTERM, start, /readyz) so that it lists all 10,000 pods at once, and its memory is read again once
 * it has reconciled every primitive.
 *
 * Floors, in the same run: for memory, an idle node with the manager's flags (MANAGER_NODE_ARGS), sampled
 * alternately with the manager; for each grant round trip, one control-plane probe right before it (a pod
 * status PATCH and a status PUT, each until a watch delivers it: controlPlaneFloor.ts).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Informer } from '../api/informer.ts';
import type { Semaphore } from '../api/types.ts';
import { MANAGER_NODE_ARGS } from '../devcluster/konductor.ts';
import { getFreePorts } from '../devcluster/ports.ts';
import { buildManager } from '../scripts/build.ts';
import type { BenchCluster } from './cluster.ts';
import { startBenchCluster } from './cluster.ts';
import {
  BENCH_NODE,
  type BenchOptions,
  byMode,
  describeEnvironment,
  ensureBenchNode,
  environment,
  type Figure,
  fmtSummary,
  histogramQuantile,
  managerMetrics,
  mapConcurrent,
  type ProcSample,
  printFigures,
  procSample,
  round,
  sleep,
  sumMetric,
  summarize,
  waitUntil,
  writeResult,
} from './common.ts';
import { type ControlPlaneProbe, startControlPlaneFloor } from './controlPlaneFloor.ts';
import { createPods, finishPod, injectedPod } from './fakePods.ts';
import {
  alternate,
  flooredFigure,
  type IdleNodeSample,
  idleNodeSample,
  median,
  pairedRatio,
} from './floors.ts';
import { type HeapUsage, heapUsage, type ProfileSummary, profileProcess } from './profile.ts';

/** The manager's node flags (devcluster/konductor.ts): the memory floor is an idle node with the same. */
const managerFlags = () =>
  (process.env.KONDUCTOR_MANAGER_NODE_ARGS ?? MANAGER_NODE_ARGS).split(' ').filter(Boolean);

const CONCURRENCY = 32;
const PODS_PER_PRIMITIVE = 10;
const SEMAPHORE_PERMITS = 5;

/**
 * Idle RSS of the manager as the image runs it (the esbuild bundle dist/konductor.js) next to the one the
 * devcluster runs (cmd/konductor.ts from the sources, type-stripped by node): same flags, an empty
 * namespace, read once /readyz answers and a second has passed.
 */
async function idleBundleRss(bc: BenchCluster): Promise<ProcSample | undefined> {
  const bundle = await buildManager();
  if (!bundle) return undefined;
  const [port, health] = await getFreePorts(2);
  const child = spawn(
    process.execPath,
    [
      bundle.path,
      `--kubeconfig=${bc.cluster.kubeconfigPath}`,
      `--webhook-port=${port}`,
      '--bind-address=127.0.0.1',
      `--cert-dir=${bc.konductor.certDir}`,
      `--health-probe-bind-address=127.0.0.1:${health}`,
      '--metrics-bind-address=0',
      '--namespace=kube-node-lease',
      '--service-namespace=kube-node-lease',
    ],
    { stdio: 'ignore', env: { PATH: process.env.PATH, HOME: process.env.HOME } },
  );
  try {
    await waitUntil(
      'the bundled manager to be ready',
      () =>
        fetch(`http://127.0.0.1:${health}/readyz`).then(
          (r) => r.ok,
          () => false,
        ),
      30_000,
      100,
    );
    await sleep(1000);
    return procSample(child.pid ?? 0);
  } finally {
    child.kill('SIGKILL');
  }
}

async function settled(metricsUrl: string, expectedGrants: number, timeoutMs: number): Promise<void> {
  await waitUntil(
    `${expectedGrants} grants`,
    async () => sumMetric(await managerMetrics(metricsUrl), 'konductor_grants_total') >= expectedGrants,
    timeoutMs,
    250,
  );
  let writes = -1;
  for (;;) {
    const w = sumMetric(await managerMetrics(metricsUrl), 'konductor_status_writes_total');
    if (w === writes) return;
    writes = w;
    await sleep(1000);
  }
}

export async function runScale(opts: BenchOptions): Promise<void> {
  const env = environment();
  const started = Date.now();
  const log = opts.log;
  const semaphores = byMode(opts.mode, { full: 800, quick: 80, tiny: 8 });
  const leases = byMode(opts.mode, { full: 200, quick: 20, tiny: 2 });
  const roundTrips = byMode(opts.mode, { full: 50, quick: 10, tiny: 3 });
  const samples = byMode(opts.mode, { full: 3, quick: 2, tiny: 1 });
  const primitives = semaphores + leases;
  const podCount = primitives * PODS_PER_PRIMITIVE;
  const expectedGrants = semaphores * SEMAPHORE_PERMITS + leases;
  log(
    `scale: ${primitives} primitives (${semaphores} Semaphores, ${leases} Leases), ${podCount} managed pods`,
  );
  const bc = await startBenchCluster({ name: 'scale', webhook: false, log });
  const { client } = bc.cluster;
  const ns = bc.namespace;
  const tag = `scale-${randomBytes(2).toString('hex')}`;
  let details: Record<string, unknown> = {};
  let figures: Figure[] = [];
  try {
    await ensureBenchNode(client, BENCH_NODE);
    const idle = procSample(bc.managerPid());
    const idleFloor = await idleNodeSample(managerFlags());
    const idleBundle = await idleBundleRss(bc);
    log(
      `    idle manager: VmRSS ${idle.vmRssMiB} MiB from sources (cmd/konductor.ts), ${idleBundle?.vmRssMiB ?? '?'} MiB as the bundle (dist/konductor.js)`,
    );
    const names = [
      ...Array.from({ length: semaphores }, (_, i) => ({
        kind: 'semaphores',
        name: `sem-${String(i).padStart(4, '0')}`,
      })),
      ...Array.from({ length: leases }, (_, i) => ({
        kind: 'leases',
        name: `lease-${String(i).padStart(4, '0')}`,
      })),
    ];
    const t0 = Date.now();
    await mapConcurrent(names, CONCURRENCY, (p) =>
      client.create(`/apis/sync.konductor.io/v1/namespaces/${ns}/${p.kind}`, {
        apiVersion: 'sync.konductor.io/v1',
        kind: p.kind === 'semaphores' ? 'Semaphore' : 'Lease',
        metadata: { name: p.name },
        spec: p.kind === 'semaphores' ? { permits: SEMAPHORE_PERMITS } : { ttl: '1h' },
      }),
    );
    const primitivesSeconds = (Date.now() - t0) / 1000;
    const pods = names.flatMap((p) =>
      Array.from({ length: PODS_PER_PRIMITIVE }, (_, i) =>
        injectedPod(
          `${p.name}-${i}`,
          { [p.kind === 'semaphores' ? 'konductor.io/semaphore' : 'konductor.io/lease']: p.name },
          tag,
        ),
      ),
    );
    const t1 = Date.now();
    let done = 0;
    const progress = setInterval(() => log(`    ${done}/${podCount} pods created`), 10_000);
    try {
      await mapConcurrent(pods, CONCURRENCY, async (pod) => {
        await createPods(client, ns, [pod], 1);
        done++;
      });
    } finally {
      clearInterval(progress);
    }
    const podsSeconds = (Date.now() - t1) / 1000;
    log(
      `    created ${primitives} primitives in ${round(primitivesSeconds, 1)} s, ${podCount} pods in ${round(podsSeconds, 1)} s`,
    );
    await settled(bc.konductor.metricsUrl, expectedGrants, 600_000);
    const settledAfterSeconds = (Date.now() - t1) / 1000;
    await sleep(2000);
    // A/B: the manager's memory, then an idle node with the same flags, `samples` times.
    const steadyAB = await alternate(
      samples,
      async () => {
        await sleep(500);
        return procSample(bc.managerPid());
      },
      () => idleNodeSample(managerFlags()),
    );
    const steady = steadyAB.ours[steadyAB.ours.length - 1] as ProcSample;
    const steadyHeap = await heapUsage(bc.managerPid(), bc.managerLog(), true);
    await sleep(500);
    const steadyAfterGc = procSample(bc.managerPid());
    log(
      `    steady: VmRSS ${steady.vmRssMiB} MiB, VmHWM ${steady.vmHwmMiB} MiB (idle before: ${idle.vmRssMiB} MiB); ` +
        `after a full GC: V8 heap used ${steadyHeap.usedMiB} MiB of ${steadyHeap.totalMiB} MiB, VmRSS ${steadyAfterGc.vmRssMiB} MiB`,
    );

    // Grant round trips: a holder finishes -> the next waiter shows as holder in the Semaphore's watch.
    const sems = new Map<string, Semaphore>();
    const waiters = new Map<string, () => void>();
    const informer = new Informer<Semaphore>(client, {
      path: `/apis/sync.konductor.io/v1/namespaces/${ns}/semaphores`,
      onEvent: (ev) => {
        if (ev.type === 'deleted') return;
        sems.set(ev.object.metadata.name ?? '', ev.object);
        waiters.get(ev.object.metadata.name ?? '')?.();
      },
    }).start();
    const rtts: number[] = [];
    const probes: ControlPlaneProbe[] = [];
    const floor = await startControlPlaneFloor(client, 'Semaphore');
    const m0 = await managerMetrics(bc.konductor.metricsUrl);
    const trips = async () => {
      await informer.synced;
      for (let i = 0; i < roundTrips; i++) {
        // A/B: one control-plane floor probe (PATCH -> watch, PUT -> watch) before each round trip.
        probes.push(
          await floor.probe(
            i,
            sems.get(`sem-${String(i).padStart(4, '0')}`)?.status as Record<string, unknown> | undefined,
          ),
        );
        const name = `sem-${String(i).padStart(4, '0')}`;
        const before = sems.get(name);
        const holder = before?.status?.holders?.[0];
        if (!holder) throw new Error(`semaphore ${name} has no holder`);
        const holdersBefore = new Set((before?.status?.holders ?? []).map((h) => h.uid));
        const granted = new Promise<number>((resolve) => {
          waiters.set(name, () => {
            const hs = sems.get(name)?.status?.holders ?? [];
            if (!hs.some((h) => h.uid === holder.uid) && hs.some((h) => !holdersBefore.has(h.uid))) {
              waiters.delete(name);
              resolve(performance.now());
            }
          });
        });
        const sent = performance.now();
        await finishPod(client, ns, holder.pod);
        rtts.push((await granted) - sent);
        await sleep(50);
      }
    };
    let profile: ProfileSummary | undefined;
    try {
      if (opts.profile) {
        profile = (
          await profileProcess(
            bc.managerPid(),
            bc.managerLog(),
            `${opts.resultsDir}/scale-manager.cpuprofile`,
            trips,
          )
        ).profile;
      } else {
        await trips();
      }
    } finally {
      informer.stop();
      floor.stop();
    }
    const m1 = await managerMetrics(bc.konductor.metricsUrl);
    const reconcileCount =
      sumMetric(m1, 'konductor_reconcile_duration_seconds_count') -
      sumMetric(m0, 'konductor_reconcile_duration_seconds_count');
    const reconcile = {
      p50UpperBoundMs: histogramQuantile(m1, 'konductor_reconcile_duration_seconds', 0.5) * 1000,
      p99UpperBoundMs: histogramQuantile(m1, 'konductor_reconcile_duration_seconds', 0.99) * 1000,
      meanMs: round(
        (sumMetric(m1, 'konductor_reconcile_duration_seconds_sum') /
          sumMetric(m1, 'konductor_reconcile_duration_seconds_count')) *
          1000,
        3,
      ),
      totalReconciles: sumMetric(m1, 'konductor_reconcile_duration_seconds_count'),
      reconcilesDuringRoundTrips: reconcileCount,
    };
    const rtt = summarize(rtts);
    log(
      `    grant round trip: ${fmtSummary(rtt)}; reconcile (histogram) p50 <= ${reconcile.p50UpperBoundMs} ms, p99 <= ${reconcile.p99UpperBoundMs} ms`,
    );

    // Restart: the manager lists everything at once.
    await bc.konductor.stopManager('SIGTERM');
    const tr = Date.now();
    await bc.konductor.startManager();
    const readyAfterSeconds = (Date.now() - tr) / 1000;
    await waitUntil(
      'the restarted manager to reconcile every primitive',
      async () =>
        sumMetric(
          await managerMetrics(bc.konductor.metricsUrl),
          'konductor_reconcile_duration_seconds_count',
        ) >= primitives,
      300_000,
      250,
    );
    const reconciledAfterSeconds = (Date.now() - tr) / 1000;
    await sleep(2000);
    const restarted: ProcSample = procSample(bc.managerPid());
    const restartedFloor = await idleNodeSample(managerFlags());
    const restartedHeap: HeapUsage = await heapUsage(bc.managerPid(), bc.managerLog(), true);
    log(
      `    after restart: ready in ${round(readyAfterSeconds, 1)} s, all reconciled in ${round(reconciledAfterSeconds, 1)} s; ` +
        `VmRSS ${restarted.vmRssMiB} MiB, VmHWM ${restarted.vmHwmMiB} MiB; V8 heap after full GC ${restartedHeap.usedMiB} MiB`,
    );

    const floorName = `an idle node with the manager's flags (${managerFlags().join(' ')})`;
    const rssOf = (x: { vmRssMiB: number }) => x.vmRssMiB;
    const floorProbe = summarize(probes.map((p) => p.floorMs));
    figures = [
      flooredFigure({
        name: `manager RSS, ${podCount} pods + ${primitives} primitives (steady, VmRSS)`,
        value: round(median(steadyAB.ours.map(rssOf)), 1),
        floor: round(median(steadyAB.floor.map(rssOf)), 1),
        ratio: pairedRatio(steadyAB.ours.map(rssOf), steadyAB.floor.map(rssOf)),
        unit: 'MiB',
        floorName,
        target: '<= 150 MiB',
        meetsTarget: median(steadyAB.ours.map(rssOf)) <= 150,
      }),
      flooredFigure({
        name: 'manager peak RSS while they were created (VmHWM)',
        value: steady.vmHwmMiB,
        floor: round(median(steadyAB.floor.map((f) => f.vmHwmMiB)), 1),
        unit: 'MiB',
        floorName: `${floorName}, VmHWM`,
        target: '<= 150 MiB',
        meetsTarget: steady.vmHwmMiB <= 150,
      }),
      flooredFigure({
        name: 'manager peak RSS after a restart (initial list of everything; VmHWM)',
        value: restarted.vmHwmMiB,
        floor: restartedFloor.vmHwmMiB,
        unit: 'MiB',
        floorName: `${floorName}, VmHWM`,
        target: '<= 150 MiB',
        meetsTarget: restarted.vmHwmMiB <= 150,
      }),
      flooredFigure({
        name: 'manager V8 heap in use after a full GC (steady)',
        value: steadyHeap.usedMiB,
        floor: round(median(steadyAB.floor.map((f: IdleNodeSample) => f.heapUsedMiB)), 1),
        unit: 'MiB',
        floorName: `${floorName}, heap in use after a full GC`,
      }),
      flooredFigure({
        name: 'manager idle RSS, from sources (as the devcluster runs it)',
        value: idle.vmRssMiB,
        floor: idleFloor.vmRssMiB,
        unit: 'MiB',
        floorName,
      }),
      flooredFigure({
        name: 'manager idle RSS, bundle dist/konductor.js (as the image runs it)',
        value: idleBundle?.vmRssMiB ?? Number.NaN,
        floor: idleFloor.vmRssMiB,
        unit: 'MiB',
        floorName,
      }),
      flooredFigure({
        name: 'grant round trip at scale p50',
        value: rtt.p50,
        floor: floorProbe.p50,
        ratio: pairedRatio(
          rtts,
          probes.map((p) => p.floorMs),
        ),
        unit: 'ms',
        floorName: 'PATCH pods/status -> watch + PUT status -> watch (same run, alternated)',
      }),
      flooredFigure({
        name: 'grant round trip at scale p99',
        value: rtt.p99,
        floor: floorProbe.p99,
        unit: 'ms',
        floorName: 'PATCH pods/status -> watch + PUT status -> watch, p99',
      }),
    ];
    details = {
      idle,
      idleFloor,
      idleBundle,
      steady,
      steadySamples: steadyAB,
      restartedFloor,
      controlPlaneFloorMs: floorProbe,
      probes,
      steadyHeapAfterFullGc: steadyHeap,
      steadyAfterFullGc: steadyAfterGc,
      restarted,
      restartedHeapAfterFullGc: restartedHeap,
      creation: {
        primitivesSeconds: round(primitivesSeconds, 1),
        podsSeconds: round(podsSeconds, 1),
        settledAfterSeconds: round(settledAfterSeconds, 1),
      },
      roundTripMs: rtt,
      reconcile,
      restart: {
        readyAfterSeconds: round(readyAfterSeconds, 1),
        reconciledAfterSeconds: round(reconciledAfterSeconds, 1),
      },
      ...(profile ? { profile } : {}),
    };
  } finally {
    await bc.stop();
  }
  const method =
    'fresh devcluster + manager (one namespace), no kubelet, webhook off; primitives created first, then pods directly ' +
    `in injected form (${PODS_PER_PRIMITIVE} per primitive, bound to a kubelet-less Node, concurrency ${CONCURRENCY}); ` +
    'wait for konductor_grants_total = every grantable permit and status writes to stop; memory from /proc/<pid>/status ' +
    '(VmRSS, VmHWM), then the V8 heap after a full GC over the inspector (SIGUSR1); grant round trip = patch a holder pod to Succeeded -> the Semaphore watch shows the next holder; ' +
    'then the manager restarted (lists everything at once) and its memory read again after it reconciled every primitive. ' +
    "Floors: an idle node with the manager's flags, sampled alternately with the manager; before each round trip a " +
    'control-plane probe (PATCH pods/status -> watch + PUT status -> watch).';
  log(`method: ${method}`);
  log(`machine: ${describeEnvironment(env)}`);
  printFigures(log, figures);
  const path = await writeResult(opts, {
    benchmark: 'scale',
    mode: opts.mode,
    environment: env,
    method,
    parameters: {
      primitives,
      semaphores,
      leases,
      pods: podCount,
      semaphorePermits: SEMAPHORE_PERMITS,
      roundTrips,
      concurrency: CONCURRENCY,
      warmup: 'none',
    },
    figures,
    details,
    durationSeconds: round((Date.now() - started) / 1000, 1),
  });
  log(`wrote ${path}`);
}
