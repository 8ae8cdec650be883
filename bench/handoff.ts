/**
 * Handoff latency (DESIGN §8: p50 <= 20 ms, p99 <= 100 ms): the time from a holder's main container
 * exit to the next waiter's `konductor-wait` exit, on the devcluster with the process kubelet, the
 * webhook and the manager, for a Semaphore of 1 permit and for a Lease.
 *
 * Method. Pods are created through the API (the webhook injects them) in a sliding window of 3 alive at
 * once: one holds, two wait; when a pod completes, its measurements are read and it is deleted, and the
 * next pod is created. The main container runs `sh -c 'sleep 0.3; date +%s%N'`: the nanosecond wall-clock
 * time it prints (read from its container log file) is its exit. The agent image is wrapped for the wait
 * mode only (`sh -c 'node konductor-agent.js wait; date +%s%N > /var/run/konductor/wait-exit-ns'`): the
 * first instant after the agent process has exited, in the same clock (the `date` fork adds ~1 ms to each
 * handoff, so the figure is pessimistic by that). grant.json's mtime is recorded as a cross-check only:
 * ext4 stamps new files with the coarse kernel clock (one timer tick, 4 ms here), too coarse for this.
 * A handoff is counted only if the next waiter had already printed its `waiting for ...` line (it was
 * queued, connected to the manager) before the holder exited; the first handoffs are a warm-up.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SHARED_MOUNT_PATH, SHARED_VOLUME } from '../api/constants.ts';
import { Informer } from '../api/informer.ts';
import type { Pod } from '../api/types.ts';
import { agentImageHandler, type ImageHandler } from '../devcluster/kubelet/index.ts';
import { AGENT_BUNDLE, buildAgent } from '../scripts/build.ts';
import { type BenchCluster, startBenchCluster } from './cluster.ts';
import {
  apiserverStats,
  type BenchOptions,
  byMode,
  describeEnvironment,
  diffRecords,
  environment,
  type Figure,
  fmtSummary,
  printFigures,
  round,
  type Summary,
  summarize,
  waitUntil,
  writeResult,
} from './common.ts';

const TARGET_P50_MS = 20;
const TARGET_P99_MS = 100;
const WINDOW = 3;
const HOLD_SECONDS = 0.3;
const WAIT_EXIT_FILE = 'wait-exit-ns';

/** The agent, with the wait mode wrapped to stamp its exit time into the shared emptyDir. */
function timedAgentImage(): ImageHandler {
  const inner = agentImageHandler({
    nodePath: process.execPath,
    agentScript: AGENT_BUNDLE,
    exists: () => true,
  });
  return {
    description: 'konductor-agent, wait mode timed (bench/handoff.ts)',
    matches: (ref) => inner.matches(ref),
    resolve(cmd, ref) {
      const r = inner.resolve(cmd, ref);
      if (!r.ok || !r.argv.includes('wait')) return r;
      const script = `"$@"; rc=$?; date +%s%N > ${SHARED_MOUNT_PATH}/${WAIT_EXIT_FILE}; exit $rc`;
      return { ...r, argv: ['sh', '-c', script, 'konductor-wait', ...r.argv] };
    },
  };
}

interface PodRecord {
  name: string;
  index: number;
  /** Wall clock (ns) the main container printed right before exiting. */
  mainExitNs: bigint;
  /** Wall clock (ns) right after konductor-wait exited. */
  waitExitNs: bigint;
  /** grant.json mtime (coarse clock). */
  grantMtimeNs: bigint;
  /** When konductor-wait printed its first `waiting for` line (ms, the kubelet's log stamp), if ever. */
  queuedAtMs: number | undefined;
  /** The grant's grantedAt (ms precision): when the controller decided it (the `now` of its reconcile). */
  grantedAtMs: number;
  /** When konductor-hold printed `released ...` after SIGTERM (ms, log stamp): its release call answered. */
  holdReleasedAtMs: number | undefined;
}

function readRecord(rootDir: string, pod: Pod, index: number): PodRecord {
  const dir = join(rootDir, 'pods', pod.metadata.uid ?? '');
  const logText = (container: string) => readFileSync(join(dir, 'logs', `${container}-0.log`), 'utf8');
  const mainLine = logText('main')
    .split('\n')
    .map((l) => /^\S+ stdout F (\d{15,})$/.exec(l)?.[1])
    .find((v) => v !== undefined);
  if (!mainLine) throw new Error(`pod ${pod.metadata.name}: no timestamp in the main container's log`);
  const queuedLine = logText('konductor-wait')
    .split('\n')
    .find((l) => / waiting for /.test(l));
  const volume = join(dir, 'volumes', SHARED_VOLUME);
  const grant = JSON.parse(readFileSync(join(volume, 'grant.json'), 'utf8')) as { grantedAt?: string };
  const releasedLine = logText('konductor-hold')
    .split('\n')
    .find((l) => / released /.test(l));
  return {
    name: pod.metadata.name ?? '',
    index,
    mainExitNs: BigInt(mainLine),
    waitExitNs: BigInt(readFileSync(join(volume, WAIT_EXIT_FILE), 'utf8').trim()),
    grantMtimeNs: statSync(join(volume, 'grant.json'), { bigint: true }).mtimeNs,
    queuedAtMs: queuedLine ? Date.parse(queuedLine.split(' ')[0] ?? '') : undefined,
    grantedAtMs: Date.parse(grant.grantedAt ?? ''),
    holdReleasedAtMs: releasedLine ? Date.parse(releasedLine.split(' ')[0] ?? '') : undefined,
  };
}

interface Series {
  primitive: 'Semaphore' | 'Lease';
  handoffMs: Summary;
  grantMtimeHandoffMs: Summary;
  /** Holder main exit -> the controller's decision to grant the next (grantedAt, ms precision). */
  exitToDecisionMs: Summary;
  /** Decision -> next waiter's konductor-wait exit: status write, notification, stream, agent exit. */
  decisionToWaitExitMs: Summary;
  /** Holder main exit -> its konductor-hold has its release answered (the SIGTERM path, ms log stamp). */
  exitToHoldReleasedMs: Summary;
  /**
   * Mean time the API server took per request during the series (apiserver_request_duration_seconds
   * sum / count): the status write in the decision -> wait-exit segment, the kubelet's pod status patch in
   * the exit -> decision one.
   */
  apiserverMeanMs: Record<string, number>;
  counted: number;
  warmup: number;
  excludedNotQueued: number;
  seconds: number;
}

async function runSeries(
  bc: BenchCluster,
  primitive: 'Semaphore' | 'Lease',
  handoffs: number,
  warmup: number,
  log: (l: string) => void,
): Promise<Series> {
  const { client } = bc.cluster;
  const ns = bc.namespace;
  const rootDir = bc.kubelet?.rootDir ?? '';
  const name = `handoff-${primitive.toLowerCase()}`;
  if (primitive === 'Semaphore') {
    await client.create(`/apis/sync.konductor.io/v1/namespaces/${ns}/semaphores`, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Semaphore',
      metadata: { name },
      spec: { permits: 1 },
    });
  } else {
    await client.create(`/apis/sync.konductor.io/v1/namespaces/${ns}/leases`, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Lease',
      metadata: { name },
      spec: { ttl: '10m' },
    });
  }
  const annotation = primitive === 'Semaphore' ? 'konductor.io/semaphore' : 'konductor.io/lease';
  const total = handoffs + warmup + 1;
  const prefix = `${primitive === 'Semaphore' ? 's' : 'l'}-${randomBytes(2).toString('hex')}`;
  const podName = (i: number) => `${prefix}-${String(i).padStart(4, '0')}`;
  const records: PodRecord[] = [];
  const seen = new Set<string>();
  let created = 0;
  let failure: Error | undefined;
  const started = Date.now();
  const api0 = await apiserverStats(client);

  const createNext = async () => {
    if (created >= total) return;
    const i = created++;
    await client.create(`/api/v1/namespaces/${ns}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: podName(i),
        labels: { 'konductor.io/bench': name },
        annotations: { [annotation]: name },
      },
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 5,
        containers: [
          { name: 'main', image: 'busybox', command: ['sh', '-c', `sleep ${HOLD_SECONDS}; date +%s%N`] },
        ],
      },
    });
  };

  const informer = new Informer<Pod>(client, {
    path: `/api/v1/namespaces/${ns}/pods`,
    labelSelector: `konductor.io/bench=${name}`,
    onEvent: (ev) => {
      if (ev.type === 'deleted') return;
      const pod = ev.object;
      const podNameNow = pod.metadata.name ?? '';
      const phase = pod.status?.phase;
      if ((phase !== 'Succeeded' && phase !== 'Failed') || seen.has(podNameNow)) return;
      seen.add(podNameNow);
      try {
        if (phase === 'Failed') throw new Error(`pod ${podNameNow} failed: ${JSON.stringify(pod.status)}`);
        records.push(readRecord(rootDir, pod, Number(podNameNow.slice(prefix.length + 1))));
      } catch (err) {
        failure ??= err as Error;
      }
      void client
        .delete(`/api/v1/namespaces/${ns}/pods/${podNameNow}`, {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          gracePeriodSeconds: 0,
        })
        .catch(() => undefined);
      if (records.length % 25 === 0) log(`    ${primitive}: ${records.length}/${total} pods done`);
      createNext().catch((err: unknown) => {
        failure ??= err as Error;
      });
    },
  }).start();
  try {
    await informer.synced;
    for (let i = 0; i < WINDOW; i++) await createNext();
    await waitUntil(
      `${total} ${primitive} pods to complete`,
      () => {
        if (failure) throw failure;
        return records.length >= total;
      },
      total * 5_000 + 60_000,
      100,
    );
  } finally {
    informer.stop();
  }
  const seconds = (Date.now() - started) / 1000;
  const api1 = await apiserverStats(client);
  const count = diffRecords(api1.requests, api0.requests);
  const secs = diffRecords(api1.seconds, api0.seconds);
  const apiserverMeanMs: Record<string, number> = {};
  for (const key of ['PUT semaphores/status', 'PUT leases/status', 'PATCH pods/status', 'POST events']) {
    const n = count[key] ?? 0;
    if (n > 0) apiserverMeanMs[key] = round(((secs[key] ?? 0) / n) * 1000, 2);
  }

  // Grant order = handoff order: consecutive pods in the order their waits ended.
  records.sort((a, b) => (a.waitExitNs < b.waitExitNs ? -1 : a.waitExitNs > b.waitExitNs ? 1 : 0));
  const latencies: number[] = [];
  const mtimeLatencies: number[] = [];
  const toDecision: number[] = [];
  const toWaitExit: number[] = [];
  const toHoldReleased: number[] = [];
  let excluded = 0;
  for (let i = 1; i < records.length; i++) {
    const holder = records[i - 1] as PodRecord;
    const next = records[i] as PodRecord;
    if (i <= warmup) continue;
    const holderExitMs = Number(holder.mainExitNs / 1_000_000n);
    if (next.queuedAtMs === undefined || next.queuedAtMs > holderExitMs) {
      excluded++;
      continue;
    }
    latencies.push(Number(next.waitExitNs - holder.mainExitNs) / 1e6);
    mtimeLatencies.push(Number(next.grantMtimeNs - holder.mainExitNs) / 1e6);
    const exitMs = Number(holder.mainExitNs) / 1e6;
    toDecision.push(next.grantedAtMs - exitMs);
    toWaitExit.push(Number(next.waitExitNs) / 1e6 - next.grantedAtMs);
    if (holder.holdReleasedAtMs !== undefined) toHoldReleased.push(holder.holdReleasedAtMs - exitMs);
  }
  return {
    primitive,
    handoffMs: summarize(latencies),
    grantMtimeHandoffMs: summarize(mtimeLatencies),
    exitToDecisionMs: summarize(toDecision),
    decisionToWaitExitMs: summarize(toWaitExit),
    exitToHoldReleasedMs: summarize(toHoldReleased),
    apiserverMeanMs,
    counted: latencies.length,
    warmup,
    excludedNotQueued: excluded,
    seconds: round(seconds, 1),
  };
}

export async function runHandoff(opts: BenchOptions): Promise<void> {
  const env = environment();
  const started = Date.now();
  const handoffs = byMode(opts.mode, { full: 200, quick: 20, tiny: 3 });
  const warmup = byMode(opts.mode, { full: 5, quick: 3, tiny: 1 });
  const log = opts.log;
  log(`handoff: ${handoffs} handoffs each on a Semaphore (1 permit) and a Lease, after ${warmup} warm-up`);
  await buildAgent();
  const bc = await startBenchCluster({ name: 'handoff', kubelet: { images: [timedAgentImage()] }, log });
  const series: Series[] = [];
  try {
    for (const primitive of ['Semaphore', 'Lease'] as const) {
      const s = await runSeries(bc, primitive, handoffs, warmup, log);
      series.push(s);
      log(
        `  ${primitive}: ${fmtSummary(s.handoffMs)}; excluded (next not yet queued): ${s.excludedNotQueued}`,
      );
      log(`    exit -> grant decision: ${fmtSummary(s.exitToDecisionMs)}`);
      log(`    decision -> wait exit:  ${fmtSummary(s.decisionToWaitExitMs)}`);
      log(`    exit -> hold's release answered: ${fmtSummary(s.exitToHoldReleasedMs)}`);
      log(`    API server mean time per request: ${JSON.stringify(s.apiserverMeanMs)}`);
    }
  } finally {
    await bc.stop();
  }
  const method =
    'devcluster with the process kubelet, webhook and manager (one namespace). Pods created through the API in a ' +
    `sliding window of ${WINDOW} (1 holds, 2 wait); main container \`sleep ${HOLD_SECONDS}; date +%s%N\` = its exit ` +
    'time (ns, from its log file); konductor-wait wrapped as `agent wait; date +%s%N > /var/run/konductor/wait-exit-ns` ' +
    '= the first instant after it exited (+~1 ms for the date fork). Handoff = next waiter wait-exit - holder main-exit, ' +
    'pairs taken in wait-exit order; counted only if the waiter had printed `waiting for` before the holder exited. ' +
    'grant.json mtime (coarse 4 ms kernel clock) kept as a cross-check.';
  const figures: Figure[] = series.flatMap((s) => [
    {
      name: `handoff p50 (${s.primitive})`,
      value: s.handoffMs.p50,
      unit: 'ms',
      target: `<= ${TARGET_P50_MS} ms`,
      meetsTarget: s.handoffMs.p50 <= TARGET_P50_MS,
    },
    {
      name: `handoff p99 (${s.primitive})`,
      value: s.handoffMs.p99,
      unit: 'ms',
      target: `<= ${TARGET_P99_MS} ms`,
      meetsTarget: s.handoffMs.p99 <= TARGET_P99_MS,
    },
  ]);
  log(`method: ${method}`);
  log(`machine: ${describeEnvironment(env)}`);
  printFigures(log, figures);
  const path = await writeResult(opts, {
    benchmark: 'handoff',
    mode: opts.mode,
    environment: env,
    method,
    parameters: { handoffs, warmup, window: WINDOW, holdSeconds: HOLD_SECONDS },
    figures,
    details: { series },
    durationSeconds: round((Date.now() - started) / 1000, 1),
  });
  log(`wrote ${path}`);
}
