/**
 * Controller grant throughput (DESIGN §8: >= 1,000 grants/s, <= 0.1 status writes per grant).
 *
 * Method: a fresh devcluster and the manager (one namespace, no kubelet, webhook configuration removed).
 * Pods are created directly in their injected form, bound to a Node without a kubelet (bench/fakePods.ts),
 * BEFORE their Semaphore exists, so nothing is granted while they are created. A sentinel pod on a
 * sentinel Semaphore, created last, is granted only once the manager's pod watch has delivered every
 * earlier pod. Then the Semaphore(s) are created (t0) and a fake kubelet in this process watches them:
 * whenever a status lists a pod as holder, it patches that pod's status to Succeeded (main container
 * terminated, exit 0) at once; the controller then releases it and grants the next. The run ends when
 * every pod has been seen as a holder. Figures: grants/s = pods / (last grant seen - t0); status writes
 * per grant from the API server's own counters (apiserver_request_total, semaphores/status PUT+PATCH,
 * cross-checked with the manager's konductor_status_writes_total); API requests per grant of the manager
 * = the API server's total request delta minus this process's own requests (counted here); the manager's
 * CPU seconds (/proc/<pid>/stat utime+stime) per 1,000 grants; the API server's and etcd's CPU alongside.
 *
 * Phase 1: N pods on one Semaphore of 50 permits. Phase 2: 200 Semaphores of 2 permits with 10 pods each,
 * created together, to show unrelated primitives do not slow each other down.
 *
 * Floor (apiserverFloor.ts), alternated: each drain is followed by the API server alone absorbing the same
 * writes (as many pod status PATCHes, status PUTs and Event POSTs, same concurrency) in a namespace nobody
 * watches; ratio = grants/s / (grants / the time the PATCHes and PUTs took; the Events run alongside). Each phase runs twice (drain, floor, drain,
 * floor); figures are medians, ratios the median of each drain over its own floor. The manager's CPU is
 * set beside the API server's for the same drain.
 */
import { randomBytes } from 'node:crypto';
import { Informer } from '../api/informer.ts';
import type { Semaphore } from '../api/types.ts';
import { type ApiserverFloor, type ReplayResult, startApiserverFloor } from './apiserverFloor.ts';
import { type BenchCluster, startBenchCluster } from './cluster.ts';
import {
  apiserverStats,
  BENCH_NODE,
  type BenchOptions,
  byMode,
  cpuByProcess,
  describeEnvironment,
  diffRecords,
  ensureBenchNode,
  environment,
  type Figure,
  managerMetrics,
  mapConcurrent,
  printFigures,
  procSample,
  RequestCounter,
  round,
  sleep,
  sumMetric,
  waitUntil,
  writeResult,
} from './common.ts';
import { createPods, finishPod, injectedPod } from './fakePods.ts';
import { flooredFigure, median, pairedRatio } from './floors.ts';
import { type ProfileSummary, profileProcess } from './profile.ts';

const CREATE_CONCURRENCY = 32;

export interface DrainSpec {
  label: string;
  semaphores: { name: string; permits: number; pods: number }[];
}

export interface DrainResult {
  label: string;
  semaphores: number;
  pods: number;
  grants: number;
  seconds: number;
  grantsPerSecond: number;
  statusWrites: number;
  statusWritesPerGrant: number;
  managerStatusWrites: number;
  managerRequests: number;
  managerRequestsPerGrant: number;
  managerRequestsByKind: Record<string, number>;
  /** Seconds the API server spent serving each kind of request during the drain (WATCH excluded). */
  apiserverSecondsByRequest: Record<string, number>;
  ownRequests: Record<string, number>;
  managerCpuSeconds: number;
  managerCpuSecondsPer1000Grants: number;
  cpuSecondsByProcess: Record<string, number>;
  conflicts: number;
  /** Time to create the pods beforehand (not part of the figure). */
  podCreateSeconds: number;
  profile?: ProfileSummary;
  /** The API server alone replaying this drain's writes right after it (apiserverFloor.ts). */
  floor?: ReplayResult & { grantsPerSecond: number };
}

/** The largest status the drain's Semaphores had (the floor's PUTs copy it: same size, same validation). */
const largestStatus = new WeakMap<DrainSpec, Record<string, unknown>>();

const semaphorePath = (ns: string) => `/apis/sync.konductor.io/v1/namespaces/${ns}/semaphores`;

function semaphoreObject(name: string, permits: number) {
  return { apiVersion: 'sync.konductor.io/v1', kind: 'Semaphore', metadata: { name }, spec: { permits } };
}

/** Waits until the manager has seen every pod created so far: a sentinel pod created last gets granted. */
async function managerCaughtUp(bc: BenchCluster, tag: string): Promise<void> {
  const { client } = bc.cluster;
  const ns = bc.namespace;
  const name = `sentinel-${tag}`;
  await client.create(semaphorePath(ns), semaphoreObject(name, 1));
  await client.create(
    `/api/v1/namespaces/${ns}/pods`,
    injectedPod(name, { 'konductor.io/semaphore': name }, name),
  );
  await waitUntil(
    `the manager to grant ${name}`,
    async () => {
      const s = await client.get<Semaphore>(`${semaphorePath(ns)}/${name}`);
      return (s.status?.holders ?? []).some((h) => h.pod === name);
    },
    120_000,
    100,
  );
}

export async function drain(bc: BenchCluster, spec: DrainSpec, opts: BenchOptions): Promise<DrainResult> {
  const { client } = bc.cluster;
  const ns = bc.namespace;
  const log = opts.log;
  const tag = `${spec.label}-${randomBytes(2).toString('hex')}`;
  const total = spec.semaphores.reduce((a, s) => a + s.pods, 0);
  const pods = spec.semaphores.flatMap((s) =>
    Array.from({ length: s.pods }, (_, i) =>
      injectedPod(`${s.name}-${String(i).padStart(4, '0')}`, { 'konductor.io/semaphore': s.name }, tag),
    ),
  );
  const createStart = Date.now();
  await createPods(client, ns, pods, CREATE_CONCURRENCY);
  const podCreateSeconds = (Date.now() - createStart) / 1000;
  log(`    ${spec.label}: created ${total} pods in ${round(podCreateSeconds, 1)} s`);
  await managerCaughtUp(bc, tag);

  const own = new RequestCounter();
  const granted = new Set<string>();
  const finishing = new Set<string>();
  let lastGrantAt = 0;
  let failure: Error | undefined;
  const names = new Set(spec.semaphores.map((s) => s.name));
  const informer = new Informer<Semaphore>(client, {
    path: semaphorePath(ns),
    onEvent: (ev) => {
      if (ev.type === 'deleted' || !names.has(ev.object.metadata.name ?? '')) return;
      const holders = ev.object.status?.holders ?? [];
      const largest = largestStatus.get(spec) as { holders?: unknown[] } | undefined;
      if (holders.length > (largest?.holders?.length ?? -1))
        largestStatus.set(spec, ev.object.status as unknown as Record<string, unknown>);
      for (const h of holders) {
        if (finishing.has(h.uid)) continue;
        finishing.add(h.uid);
        granted.add(h.uid);
        lastGrantAt = performance.now();
        finishPod(client, ns, h.pod, own).catch((err: unknown) => {
          failure ??= err as Error;
        });
      }
    },
  }).start();
  await informer.synced;

  const managerPid = bc.managerPid();
  const measure = async () => {
    const m0 = await managerMetrics(bc.konductor.metricsUrl);
    const api0 = await apiserverStats(client);
    const cpu0 = procSample(managerPid).cpuSeconds;
    const procs0 = cpuByProcess(bc.cluster.pids);
    const t0 = performance.now();
    await mapConcurrent(spec.semaphores, CREATE_CONCURRENCY, async (s) => {
      await client.create(semaphorePath(ns), semaphoreObject(s.name, s.permits));
      own.add('POST semaphores');
    });
    await waitUntil(
      `${total} grants`,
      () => {
        if (failure) throw failure;
        return granted.size >= total;
      },
      600_000,
      20,
    );
    const seconds = (lastGrantAt - t0) / 1000;
    // Let the last releases (writes with no grant) land before reading the counters.
    let writes = -1;
    for (;;) {
      await sleep(500);
      const w = sumMetric(await managerMetrics(bc.konductor.metricsUrl), 'konductor_status_writes_total');
      if (w === writes) break;
      writes = w;
    }
    const cpu1 = procSample(managerPid).cpuSeconds;
    const procs1 = cpuByProcess(bc.cluster.pids);
    const api1 = await apiserverStats(client);
    own.add('GET /metrics'); // the first read; the second is not counted in its own delta
    const m1 = await managerMetrics(bc.konductor.metricsUrl);
    return { m0, m1, api0, api1, cpu0, cpu1, procs0, procs1, seconds };
  };
  let profile: ProfileSummary | undefined;
  let r: Awaited<ReturnType<typeof measure>>;
  try {
    if (opts.profile) {
      const p = await profileProcess(
        managerPid,
        bc.managerLog(),
        `${opts.resultsDir}/throughput-${spec.label}-manager.cpuprofile`,
        measure,
      );
      r = p.result;
      profile = p.profile;
    } else {
      r = await measure();
    }
  } finally {
    informer.stop();
  }
  const apiDelta = diffRecords(r.api1.requests, r.api0.requests);
  const apiSeconds = Object.fromEntries(
    Object.entries(diffRecords(r.api1.seconds, r.api0.seconds))
      .filter(([k, v]) => v > 0.005 && !k.startsWith('WATCH'))
      .sort((a, b) => b[1] - a[1]),
  );
  const statusWrites = (apiDelta['PUT semaphores/status'] ?? 0) + (apiDelta['PATCH semaphores/status'] ?? 0);
  const byKind: Record<string, number> = {};
  let managerRequests = 0;
  for (const [k, v] of Object.entries(apiDelta)) {
    if (k.startsWith('WATCH')) continue; // long-running: counted when they end, not per request
    const m = v - (own.counts[k] ?? 0);
    if (m > 0) {
      byKind[k] = m;
      managerRequests += m;
    }
  }
  const grants = granted.size;
  const managerCpu = r.cpu1 - r.cpu0;
  const managerWrites =
    sumMetric(r.m1, 'konductor_status_writes_total') - sumMetric(r.m0, 'konductor_status_writes_total');
  return {
    label: spec.label,
    semaphores: spec.semaphores.length,
    pods: total,
    grants,
    seconds: round(r.seconds, 3),
    grantsPerSecond: round(grants / r.seconds, 0),
    statusWrites,
    statusWritesPerGrant: round(statusWrites / grants, 3),
    managerStatusWrites: managerWrites,
    managerRequests,
    managerRequestsPerGrant: round(managerRequests / grants, 3),
    managerRequestsByKind: byKind,
    apiserverSecondsByRequest: apiSeconds,
    ownRequests: own.counts,
    managerCpuSeconds: round(managerCpu),
    managerCpuSecondsPer1000Grants: round((managerCpu / grants) * 1000, 3),
    cpuSecondsByProcess: diffRecords(r.procs1, r.procs0),
    conflicts:
      sumMetric(r.m1, 'konductor_status_conflicts_total') -
      sumMetric(r.m0, 'konductor_status_conflicts_total'),
    podCreateSeconds: round(podCreateSeconds, 1),
    ...(profile ? { profile } : {}),
  };
}

function describeDrain(d: DrainResult): string {
  return (
    `${d.grants} grants in ${d.seconds} s = ${d.grantsPerSecond} grants/s; ${d.statusWrites} status writes ` +
    `(${d.statusWritesPerGrant}/grant); manager ${d.managerRequests} API requests (${d.managerRequestsPerGrant}/grant: ` +
    `${Object.entries(d.managerRequestsByKind)
      .map(([k, v]) => `${k} ${v}`)
      .join(
        ', ',
      )}); manager CPU ${d.managerCpuSeconds} s (${d.managerCpuSecondsPer1000Grants} s/1000 grants); ` +
    `CPU s by process ${JSON.stringify(d.cpuSecondsByProcess)}; API server time by request ${JSON.stringify(d.apiserverSecondsByRequest)}`
  );
}

/** Grant throughput as a share of the API server's own rate for the same writes (docs/benchmarks.md). */
export const THROUGHPUT_RATIO_TARGET = 0.5;

const apiserverCpuPer1000 = (d: DrainResult) =>
  round(((d.cpuSecondsByProcess['kube-apiserver'] ?? Number.NaN) / d.grants) * 1000, 3);

export async function runThroughput(opts: BenchOptions): Promise<void> {
  const env = environment();
  const started = Date.now();
  const log = opts.log;
  const onePods = byMode(opts.mode, { full: 2000, quick: 500, tiny: 40 });
  const onePermits = byMode(opts.mode, { full: 50, quick: 50, tiny: 5 });
  const manyCount = byMode(opts.mode, { full: 200, quick: 50, tiny: 4 });
  const manyPods = byMode(opts.mode, { full: 10, quick: 10, tiny: 5 });
  const manyPermits = 2;
  const rounds = byMode(opts.mode, { full: 2, quick: 2, tiny: 1 });
  log(
    `throughput: ${onePods} pods on 1 Semaphore (${onePermits} permits); ${manyCount} Semaphores (${manyPermits} permits) x ${manyPods} pods`,
  );
  const bc = await startBenchCluster({ name: 'throughput', webhook: false, log });
  const phases: DrainResult[] = [];
  const ones: DrainResult[] = [];
  const manys: DrainResult[] = [];
  let floor: ApiserverFloor | undefined;
  // A/B: each drain is followed by its floor, the API server alone replaying the drain's writes.
  const drainThenFloor = async (spec: DrainSpec, permitsInFlight: number) => {
    const d = await drain(bc, spec, opts);
    floor ??= await startApiserverFloor(bc.cluster.client, Math.max(onePods, manyCount * manyPods));
    const f = await floor.replay({
      patches: d.ownRequests['PATCH pods/status'] ?? d.grants,
      puts: d.statusWrites,
      events: d.managerRequestsByKind['POST events'] ?? 0,
      // At most 50 in flight: more only slows the API server down (400 for 200 Semaphores x 2 permits did).
      patchConcurrency: Math.min(50, permitsInFlight),
      putConcurrency: 16,
      eventConcurrency: 4,
      status: largestStatus.get(spec),
    });
    d.floor = { ...f, grantsPerSecond: round(d.grants / f.seconds, 0) };
    phases.push(d);
    log(
      `    floor: the API server alone, the same writes in ${f.seconds} s = ${d.floor.grantsPerSecond} grants/s`,
    );
    return d;
  };
  try {
    await ensureBenchNode(bc.cluster.client, BENCH_NODE);
    for (let r = 0; r < rounds; r++) {
      const d = await drainThenFloor(
        { label: `one${r}`, semaphores: [{ name: `tp${r}`, permits: onePermits, pods: onePods }] },
        onePermits,
      );
      ones.push(d);
      log(`  one Semaphore, round ${r + 1}: ${describeDrain(d)}`);
    }
    for (let r = 0; r < rounds; r++) {
      const d = await drainThenFloor(
        {
          label: `many${r}`,
          semaphores: Array.from({ length: manyCount }, (_, i) => ({
            name: `tp${r}-${String(i).padStart(3, '0')}`,
            permits: manyPermits,
            pods: manyPods,
          })),
        },
        manyCount * manyPermits,
      );
      manys.push(d);
      log(`  ${manyCount} Semaphores, round ${r + 1}: ${describeDrain(d)}`);
    }
  } finally {
    floor?.stop();
    await bc.stop();
  }
  const one = ones[ones.length - 1] as DrainResult;
  const many = manys[manys.length - 1] as DrainResult;
  const med = (runs: DrainResult[], f: (d: DrainResult) => number) => round(median(runs.map(f)), 3);
  const grantsPerSecond = (d: DrainResult) => d.grantsPerSecond;
  const floorGrantsPerSecond = (d: DrainResult) => d.floor?.grantsPerSecond ?? Number.NaN;
  const floorName =
    'the API server alone absorbing the same writes (pod PATCHes, status PUTs, Events), alternated';
  const countNote = 'a count of requests per grant: it does not depend on the machine';
  const figures: Figure[] = [
    flooredFigure({
      name: `grants/s, ${one.pods} pods on 1 Semaphore (${onePermits} permits)`,
      value: med(ones, grantsPerSecond),
      floor: med(ones, floorGrantsPerSecond),
      ratio: pairedRatio(ones.map(grantsPerSecond), ones.map(floorGrantsPerSecond)),
      unit: 'grants/s',
      floorName,
      target: '>= 1,000 grants/s',
      meetsTarget: med(ones, grantsPerSecond) >= 1000,
      ratioTarget: { min: THROUGHPUT_RATIO_TARGET },
    }),
    {
      name: 'status writes per grant (1 Semaphore)',
      value: med(ones, (d) => d.statusWritesPerGrant),
      unit: 'writes/grant',
      target: '<= 0.1',
      meetsTarget: med(ones, (d) => d.statusWritesPerGrant) <= 0.1,
      noFloor: countNote,
    },
    {
      name: 'manager API requests per grant (1 Semaphore)',
      value: med(ones, (d) => d.managerRequestsPerGrant),
      unit: 'requests/grant',
      noFloor: countNote,
    },
    flooredFigure({
      name: 'manager CPU per 1,000 grants (1 Semaphore)',
      value: med(ones, (d) => d.managerCpuSecondsPer1000Grants),
      floor: med(ones, apiserverCpuPer1000),
      ratio: pairedRatio(
        ones.map((d) => d.managerCpuSecondsPer1000Grants),
        ones.map(apiserverCpuPer1000),
      ),
      unit: 'CPU s',
      floorName: 'kube-apiserver CPU per 1,000 grants in the same drain',
    }),
    flooredFigure({
      name: `grants/s, ${many.semaphores} Semaphores x ${manyPods} pods`,
      value: med(manys, grantsPerSecond),
      floor: med(manys, floorGrantsPerSecond),
      ratio: pairedRatio(manys.map(grantsPerSecond), manys.map(floorGrantsPerSecond)),
      unit: 'grants/s',
      floorName,
    }),
    {
      name: `status writes per grant (${many.semaphores} Semaphores)`,
      value: med(manys, (d) => d.statusWritesPerGrant),
      unit: 'writes/grant',
      noFloor: countNote,
    },
    {
      name: `manager API requests per grant (${many.semaphores} Semaphores)`,
      value: med(manys, (d) => d.managerRequestsPerGrant),
      unit: 'requests/grant',
      noFloor: countNote,
    },
    flooredFigure({
      name: `manager CPU per 1,000 grants (${many.semaphores} Semaphores)`,
      value: med(manys, (d) => d.managerCpuSecondsPer1000Grants),
      floor: med(manys, apiserverCpuPer1000),
      ratio: pairedRatio(
        manys.map((d) => d.managerCpuSecondsPer1000Grants),
        manys.map(apiserverCpuPer1000),
      ),
      unit: 'CPU s',
      floorName: 'kube-apiserver CPU per 1,000 grants in the same drain',
    }),
  ];
  const method =
    'fresh devcluster + manager (one namespace), no kubelet, webhook off; pods created directly in injected form, ' +
    `bound to a kubelet-less Node, before their Semaphore exists (concurrency ${CREATE_CONCURRENCY}); a sentinel pod ` +
    'proves the manager has seen them all; t0 = Semaphore creation; a fake kubelet watching the Semaphores patches ' +
    'each holder to Succeeded at once; end = every pod seen as holder. Status writes and requests from the API ' +
    "server's apiserver_request_total (manager = total delta - this process's own, WATCH excluded); CPU from /proc. " +
    `Floor, after each drain (${rounds} rounds of drain, floor): the API server alone absorbing the same pod status ` +
    'PATCHes (one per pod, as many in flight as permits, at most 50), status PUTs (over 16 primitives in parallel) and Event POSTs in an unwatched namespace; floor ' +
    'grants/s = grants / the time its PATCHes and PUTs took, the Events loading it meanwhile (bench/apiserverFloor.ts).';
  log(`method: ${method}`);
  log(`machine: ${describeEnvironment(env)}`);
  printFigures(log, figures);
  const path = await writeResult(opts, {
    benchmark: 'throughput',
    mode: opts.mode,
    environment: env,
    method,
    parameters: {
      rounds,
      onePods,
      onePermits,
      manySemaphores: manyCount,
      manyPodsEach: manyPods,
      manyPermits,
      createConcurrency: CREATE_CONCURRENCY,
      warmup: 'none (the sentinel grant warms the write path)',
    },
    figures,
    details: { phases },
    durationSeconds: round((Date.now() - started) / 1000, 1),
  });
  log(`wrote ${path}`);
}
