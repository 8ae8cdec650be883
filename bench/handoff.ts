/**
 * Handoff latency (DESIGN §8: p50 <= 20 ms, p99 <= 100 ms): the time from a holder's main container
 * exit to the next waiter's `konductor-wait` exit, on the devcluster with the process kubelet, the
 * webhook and the manager, for a Semaphore of 1 permit and for a Lease; beside the control plane's own
 * floor measured in the same run, and split into its parts.
 *
 * Method. Pods are created through the API (the webhook injects them) in a sliding window of 3 alive at
 * once: one holds, two wait; when a pod completes, its measurements are read and it is deleted, and the
 * next pod is created. The main container runs `sh -c 'sleep 0.3; date +%s%N'`: the nanosecond wall-clock
 * time it prints (read from its container log file) is its exit. The agent's wait mode is wrapped as
 * `bash -c '"$@"; echo $EPOCHREALTIME > /var/run/konductor/wait-exit'`: the first instant after the agent
 * process has exited, same clock, no fork (bash's builtin clock, µs). A handoff is counted only if the
 * next waiter had already printed its `waiting for ...` line (it was queued, connected to the manager)
 * before the holder exited; the first handoffs are a warm-up.
 *
 * Floor (controlPlaneFloor.ts), alternated with the handoffs: after each pod completes, once the next
 * holder runs, one pod status PATCH and one primitive status PUT are each timed until a watch delivers
 * them (the kubelet's report and the manager's grant, without anything of ours).
 *
 * Scheduling-gate mode (a third series, Semaphore): the waiters carry `konductor.io/wait-mode: scheduling-gate`
 * and name a profile of the real kube-scheduler (kubeScheduler.ts), which binds them to the process kubelet's
 * node once the manager has removed their gate. Its handoff is the holder's main exit -> the next pod's main
 * container starts (its first `date +%s%N`), so it includes the grant, the gate removal, kube-scheduler's
 * binding, the kubelet starting the pod and `konductor-wait` confirming the grant. Its floor adds to the
 * control plane's a bare pod's gate removal -> main container start through the same scheduler and kubelet
 * (ungateFloor.ts), probed while a holder holds (holders sleep longer in this series, so the probe does not
 * overlap a handoff). Every series also reports the release -> next main container start, for the comparison.
 *
 * Parts. Without changing the product's code, marks are taken by preloads: the manager
 * (bench/trace-manager.ts: its watch seeing the holder's main container terminated, the status PUT,
 * the `granted` line written to the waiter's stream), the agent (bench/trace-agent.mjs: `granted`
 * received, grant.json renamed into place, process.exit called) and this process (the process kubelet's
 * status PATCH, diagnostics_channel), all on the wall clock. The holder's release call (SIGTERM path) is
 * the manager's other trigger; its time is the hold sidecar's log stamp.
 */
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ANNOTATIONS, SHARED_MOUNT_PATH, SHARED_VOLUME } from '../api/constants.ts';
import { Informer } from '../api/informer.ts';
import type { Pod } from '../api/types.ts';
import { MANAGER_NODE_ARGS } from '../devcluster/konductor.ts';
import { agentImageHandler, type ImageHandler } from '../devcluster/kubelet/index.ts';
import { PROCESS_KUBELET_LABEL } from '../devcluster/kubelet/node.ts';
import { AGENT_BUNDLE, buildAgent, ROOT } from '../scripts/build.ts';
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
import { type ControlPlaneProbe, startControlPlaneFloor } from './controlPlaneFloor.ts';
import { flooredFigure, median, pairedRatio, pairRatios } from './floors.ts';
import { BENCH_SCHEDULER, startKubeScheduler, untaintNode } from './kubeScheduler.ts';
import { startUngateFloor } from './ungateFloor.ts';

const TARGET_P50_MS = 20;
const TARGET_P99_MS = 100;
const WINDOW = 3;
const HOLD_SECONDS = 0.3;
/** Scheduling-gate holders hold longer: the floor probe (a pod start) runs while one holds. */
const GATE_HOLD_SECONDS = 1.5;
/** Scheduling-gate pods go to the process kubelet's node (not the floor's kubelet-less one). */
const GATE_NODE_SELECTOR = { [PROCESS_KUBELET_LABEL]: 'true' };
const WAIT_EXIT_FILE = 'wait-exit';
const AGENT_TRACE_FILE = 'agent-trace.json';
/** Our added latency (handoff - the floor's share of it) should stay within this multiple of the floor. */
export const HANDOFF_RATIO_TARGETS = { oursToFloor: 2, handoffToFloor: 3 };

/** The agent, with the wait mode traced (trace-agent.mjs) and its exit stamped into the shared emptyDir. */
/** Variant B of the agent (an A/B in one run): other node flags, or another agent bundle (a before/after). */
interface AgentVariantB {
  nodeArgs: readonly string[];
  script?: string;
}

function timedAgentImage(variantB: AgentVariantB): ImageHandler {
  const inner = agentImageHandler({
    nodePath: process.execPath,
    agentScript: AGENT_BUNDLE,
    exists: () => true,
  });
  const trace = (variant: string) =>
    `${pathToFileURL(join(ROOT, 'bench', 'trace-agent.mjs')).href}?out=${SHARED_MOUNT_PATH}/${AGENT_TRACE_FILE}&variant=${variant}`;
  const waits = { count: 0 };
  return {
    description: 'konductor-agent, wait mode traced and timed (bench/handoff.ts)',
    matches: (ref) => inner.matches(ref),
    resolve(cmd, ref) {
      const r = inner.resolve(cmd, ref);
      if (!r.ok || !r.argv.includes('wait')) return r;
      const [node, ...rest] = r.argv;
      const script = `"$@"; rc=$?; echo "$EPOCHREALTIME" > ${SHARED_MOUNT_PATH}/${WAIT_EXIT_FILE}; exit $rc`;
      // A/B (KONDUCTOR_BENCH_AGENT_B_ARGS, KONDUCTOR_BENCH_AGENT_B_SCRIPT): every other waiter runs B.
      const ab = variantB.nodeArgs.length > 0 || variantB.script !== undefined;
      const b = ab && waits.count++ % 2 === 1;
      const flags = b ? [...variantB.nodeArgs] : [];
      const [agentScript, ...args] = rest;
      return {
        ...r,
        argv: [
          'bash',
          '-c',
          script,
          'konductor-wait',
          node as string,
          ...flags,
          `--import=${trace(b ? 'B' : 'A')}`,
          (b ? variantB.script : undefined) ?? (agentScript as string),
          ...args,
        ],
      };
    },
  };
}

interface AgentTrace {
  received?: number;
  doneReceived?: number;
  writeStart?: number;
  written?: number;
  exitCalled?: number;
  /** A or B: which node flags this agent ran with (KONDUCTOR_BENCH_AGENT_B_ARGS). */
  variant?: string;
}

interface PodRecord {
  name: string;
  index: number;
  /** Wall clock (ms, µs precision) the main container printed first thing. */
  mainStartMs: number;
  /** Wall clock (ms, µs precision) the main container printed right before exiting. */
  mainExitMs: number;
  /** Wall clock (ms) right after konductor-wait exited (bash $EPOCHREALTIME, µs). */
  waitExitMs: number;
  /** grant.json mtime (coarse clock), ms. */
  grantMtimeMs: number;
  /** When konductor-wait printed its first `waiting for` line (ms, the kubelet's log stamp), if ever. */
  queuedAtMs: number | undefined;
  /** The grant's grantedAt (ms precision): when the controller decided it (the `now` of its reconcile). */
  grantedAtMs: number;
  /** When konductor-hold printed `released ...` after SIGTERM (ms, log stamp): its release call answered. */
  holdReleasedAtMs: number | undefined;
  agent: AgentTrace;
}

const nsToMs = (ns: string) => Number(BigInt(ns) / 1000n) / 1000;

function readRecord(rootDir: string, pod: Pod, index: number): PodRecord {
  const dir = join(rootDir, 'pods', pod.metadata.uid ?? '');
  const logText = (container: string) => readFileSync(join(dir, 'logs', `${container}-0.log`), 'utf8');
  const mainStamps = logText('main')
    .split('\n')
    .map((l) => /^\S+ stdout F (\d{15,})$/.exec(l)?.[1])
    .filter((v) => v !== undefined);
  const [startLine, mainLine] = [mainStamps[0], mainStamps[mainStamps.length - 1]];
  if (mainStamps.length < 2 || !startLine || !mainLine)
    throw new Error(`pod ${pod.metadata.name}: no start and end timestamps in the main container's log`);
  const queuedLine = logText('konductor-wait')
    .split('\n')
    .find((l) => / waiting for /.test(l));
  const volume = join(dir, 'volumes', SHARED_VOLUME);
  const grant = JSON.parse(readFileSync(join(volume, 'grant.json'), 'utf8')) as { grantedAt?: string };
  const releasedLine = logText('konductor-hold')
    .split('\n')
    .find((l) => / released /.test(l));
  const tracePath = join(volume, AGENT_TRACE_FILE);
  return {
    name: pod.metadata.name ?? '',
    index,
    mainStartMs: nsToMs(startLine),
    mainExitMs: nsToMs(mainLine),
    waitExitMs: Number(readFileSync(join(volume, WAIT_EXIT_FILE), 'utf8').trim()) * 1000,
    grantMtimeMs: Number(statSync(join(volume, 'grant.json'), { bigint: true }).mtimeNs / 1000n) / 1000,
    queuedAtMs: queuedLine ? Date.parse(queuedLine.split(' ')[0] ?? '') : undefined,
    grantedAtMs: Date.parse(grant.grantedAt ?? ''),
    holdReleasedAtMs: releasedLine ? Date.parse(releasedLine.split(' ')[0] ?? '') : undefined,
    agent: existsSync(tracePath) ? (JSON.parse(readFileSync(tracePath, 'utf8')) as AgentTrace) : {},
  };
}

/** The manager's marks (trace-manager.ts). */
interface ManagerTrace {
  mainTerminatedSeen: Map<string, number>;
  statusPuts: { path: string; created: number; start: number; end: number }[];
  grantedWritten: Map<string, number>;
  grantedFlushed: Map<string, number>;
}

function readManagerTrace(path: string): ManagerTrace {
  const t: ManagerTrace = {
    mainTerminatedSeen: new Map(),
    statusPuts: [],
    grantedWritten: new Map(),
    grantedFlushed: new Map(),
  };
  if (!existsSync(path)) return t;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line) continue;
    const m = JSON.parse(line) as {
      mark: string;
      pod?: string;
      at?: number;
      path?: string;
      created?: number;
      start?: number;
      end?: number;
    };
    if (m.mark === 'podMainTerminatedSeen' && m.pod && !t.mainTerminatedSeen.has(m.pod))
      t.mainTerminatedSeen.set(m.pod, m.at ?? Number.NaN);
    else if (m.mark === 'grantedWritten' && m.pod && !t.grantedWritten.has(m.pod))
      t.grantedWritten.set(m.pod, m.at ?? Number.NaN);
    else if (m.mark === 'grantedFlushed' && m.pod && !t.grantedFlushed.has(m.pod))
      t.grantedFlushed.set(m.pod, m.at ?? Number.NaN);
    else if (m.mark === 'statusPut')
      t.statusPuts.push({
        path: m.path ?? '',
        created: m.created ?? Number.NaN,
        start: m.start ?? Number.NaN,
        end: m.end ?? Number.NaN,
      });
  }
  return t;
}

/** The process kubelet's pod status PATCHes (in this process), by pod name: diagnostics_channel. */
function traceKubeletPatches() {
  const patches = new Map<string, { start: number; end: number }[]>();
  const started = new WeakMap<ClientRequest, number>();
  const now = () => performance.timeOrigin + performance.now();
  const onStart = (msg: unknown) => {
    const { request } = msg as { request: ClientRequest };
    if (request.method === 'PATCH' && /\/pods\/[^/]+\/status/.test(request.path)) started.set(request, now());
  };
  const onEnd = (msg: unknown) => {
    const { request } = msg as { request: ClientRequest };
    const start = started.get(request);
    if (start === undefined) return;
    const pod = /\/pods\/([^/?]+)\/status/.exec(request.path)?.[1] ?? '';
    const list = patches.get(pod) ?? [];
    list.push({ start, end: now() });
    patches.set(pod, list);
  };
  subscribe('http.client.request.start', onStart);
  subscribe('http.client.response.finish', onEnd);
  return {
    patches,
    stop: () => {
      unsubscribe('http.client.request.start', onStart);
      unsubscribe('http.client.response.finish', onEnd);
    },
  };
}

/** One handoff split into its parts (ms). Each part is NaN where a mark is missing. */
export interface HandoffParts {
  /** Holder's main exit -> the process kubelet sends the pod status PATCH (the kubelet's, not ours). */
  kubeletNotices: number;
  /** PATCH sent -> the manager's watch shows the main container terminated (control plane). */
  patchToManagerWatch: number;
  /** The manager saw it (watch, or the hold sidecar's release, whichever first) -> grant decided. */
  managerDecides: number;
  /** Decision -> the status PUT request is made (the rest of the reconcile, serializing the object). */
  decisionToPut: number;
  /** PUT request made -> sent on a keep-alive connection. */
  putDispatch: number;
  /** Status PUT sent -> its response (control plane). */
  statusPut: number;
  /** PUT response -> `granted` written to the waiter's stream. */
  putToStreamWrite: number;
  /** `granted` written to the response -> flushed to its socket (the response corks until the next tick). */
  streamFlush: number;
  /** Flushed -> the agent received it (TLS over loopback, the agent's process woken). */
  streamToAgent: number;
  /** `granted` received -> `done` received (the same chunk when both were written in one go). */
  agentWaitsDone: number;
  /** `done` received -> the agent starts writing grant.json (prints its line, closes the stream). */
  agentReads: number;
  /** Writing grant.json (temporary file, then rename). */
  fileWrite: number;
  /** grant.json in place -> process.exit called. */
  fileToExitCall: number;
  /** process.exit called -> the process is gone (bash's stamp). */
  processExit: number;
}

const PART_OWNER: Record<keyof HandoffParts, 'kubelet' | 'control plane' | 'konductor'> = {
  kubeletNotices: 'kubelet',
  patchToManagerWatch: 'control plane',
  managerDecides: 'konductor',
  decisionToPut: 'konductor',
  putDispatch: 'konductor',
  statusPut: 'control plane',
  putToStreamWrite: 'konductor',
  streamFlush: 'konductor',
  streamToAgent: 'konductor',
  agentWaitsDone: 'konductor',
  agentReads: 'konductor',
  fileWrite: 'konductor',
  fileToExitCall: 'konductor',
  processExit: 'konductor',
};

function handoffParts(
  holder: PodRecord,
  next: PodRecord,
  primitiveName: string,
  manager: ManagerTrace,
  kubelet: Map<string, { start: number; end: number }[]>,
): HandoffParts {
  const exit = holder.mainExitMs;
  const patch = (kubelet.get(holder.name) ?? []).find((p) => p.start >= exit - 0.5);
  const seenWatch = manager.mainTerminatedSeen.get(holder.name) ?? Number.NaN;
  const trigger = Math.min(seenWatch, holder.holdReleasedAtMs ?? Number.POSITIVE_INFINITY);
  const decision = next.grantedAtMs;
  const put = manager.statusPuts.find(
    (p) => p.path.includes(`/${primitiveName}/`) && p.start >= decision - 1,
  );
  const written = manager.grantedWritten.get(next.name) ?? Number.NaN;
  const flushed = manager.grantedFlushed.get(next.name) ?? Number.NaN;
  const a = next.agent;
  const nan = (v: number | undefined) => v ?? Number.NaN;
  return {
    kubeletNotices: nan(patch?.start) - exit,
    patchToManagerWatch: seenWatch - nan(patch?.start),
    managerDecides: decision - trigger,
    decisionToPut: nan(put?.created) - decision,
    putDispatch: nan(put?.start) - nan(put?.created),
    statusPut: nan(put?.end) - nan(put?.start),
    putToStreamWrite: written - nan(put?.end),
    streamFlush: flushed - written,
    streamToAgent: nan(a.received) - flushed,
    agentWaitsDone: nan(a.doneReceived) - nan(a.received),
    agentReads: nan(a.writeStart) - nan(a.doneReceived),
    fileWrite: nan(a.written) - nan(a.writeStart),
    fileToExitCall: nan(a.exitCalled) - nan(a.written),
    processExit: next.waitExitMs - nan(a.exitCalled),
  };
}

/** The agent's parts of a handoff (the ones an A/B of the agent can move). */
const AGENT_PARTS = [
  'streamToAgent',
  'agentWaitsDone',
  'agentReads',
  'fileWrite',
  'fileToExitCall',
  'processExit',
] as const;

/** One scheduling-gate handoff's parts (ms), from the records and the benchmark's own watch of the pods. */
export interface GateHandoffParts {
  /** Holder's main exit -> the controller's decision to grant the next (grantedAt). */
  exitToDecision: number;
  /** Decision -> a watch shows the next pod without its gate (status PUT, the gate's JSON patch). */
  decisionToUngated: number;
  /** Gate gone -> a watch shows the pod bound (kube-scheduler: queue, filters, Binding). */
  ungatedToBound: number;
  /** Bound -> konductor-wait exited (the kubelet starts the pod; the agent starts, confirms its grant, exits). */
  boundToWaitExit: number;
  /** konductor-wait exited -> the main container's first instruction (the hold sidecar starts first). */
  waitExitToMainStart: number;
}

type WaitMode = 'init-container' | 'scheduling-gate';

const GATE_PART_KEYS = [
  'exitToDecision',
  'decisionToUngated',
  'ungatedToBound',
  'boundToWaitExit',
  'waitExitToMainStart',
] as const satisfies readonly (keyof GateHandoffParts)[];

const summarizeGateParts = (parts: readonly GateHandoffParts[]) =>
  Object.fromEntries(
    GATE_PART_KEYS.map((k) => [k, summarize(parts.map((p) => p[k]).filter(Number.isFinite))]),
  ) as Record<keyof GateHandoffParts, Summary>;

interface Series {
  primitive: 'Semaphore' | 'Lease';
  mode: WaitMode;
  handoffMs: Summary;
  /** Holder main exit -> the next pod's main container started (its first clock reading). */
  handoffToMainStartMs: Summary;
  /** konductor-wait exit -> the same pod's main container starts (the kubelet starts konductor-hold first). */
  waitExitToMainStartMs: Summary;
  /**
   * Scheduling-gate mode: the handoff's parts (GateHandoffParts). There `parts` and `oursMs` (the init-container
   * split) fold the scheduling and the pod's start into putToStreamWrite: read these instead.
   */
  gateParts?: Record<keyof GateHandoffParts, Summary>;
  grantMtimeHandoffMs: Summary;
  /** Holder main exit -> the controller's decision to grant the next (grantedAt, ms precision). */
  exitToDecisionMs: Summary;
  /** Decision -> next waiter's konductor-wait exit: status write, notification, stream, agent exit. */
  decisionToWaitExitMs: Summary;
  /** Holder main exit -> its konductor-hold has its release answered (the SIGTERM path, ms log stamp). */
  exitToHoldReleasedMs: Summary;
  /** Each part of the handoff (see HandoffParts), p50 etc., with who owns it. */
  parts: Record<keyof HandoffParts, Summary & { owner: string }>;
  /** Sum of konductor's parts per handoff: our added latency. */
  oursMs: Summary;
  /** The control plane's floor (controlPlaneFloor.ts), alternated with the handoffs. */
  floor: {
    probes: number;
    patchResponseMs: Summary;
    patchWatchMs: Summary;
    putResponseMs: Summary;
    putWatchMs: Summary;
    /** Scheduling-gate mode: a bare pod's gate removed -> its main container starts (ungateFloor.ts). */
    ungateMs?: Summary;
    floorMs: Summary;
  };
  /** Scheduling-gate mode: median over pairs of (release -> main start) / floor. */
  pairedMainStartRatio?: number;
  /** Median over the pairs (handoff i, floor probe i) of handoff / floor, and of ours / floor. */
  pairedRatio: number;
  pairedOursRatio: number;
  /** With KONDUCTOR_BENCH_AGENT_B_ARGS: the agent's exit and our added latency per variant (alternated). */
  variants?: Record<
    string,
    {
      processExitMs: Summary;
      oursMs: Summary;
      agentPartsP50: Record<(typeof AGENT_PARTS)[number], number>;
      decisionToWaitExitMs: Summary;
    }
  >;
  /**
   * Mean time the API server took per request during the series (apiserver_request_duration_seconds
   * sum / count).
   */
  apiserverMeanMs: Record<string, number>;
  /** Per counted handoff, and per (handoff, floor probe) pair: what several rounds of a series are pooled from. */
  raw: {
    handoffMs: number[];
    oursMs: number[];
    toMainStartMs: number[];
    floorMs: number[];
    handoffRatios: number[];
    oursRatios: number[];
    mainStartRatios: number[];
    gateParts: GateHandoffParts[];
    /** Scheduling-gate mode: each floor probe's bare-pod part (ungateFloor.ts). */
    ungateMs: number[];
  };
  counted: number;
  warmup: number;
  excludedNotQueued: number;
  seconds: number;
}

async function runSeries(
  bc: BenchCluster,
  primitive: 'Semaphore' | 'Lease',
  mode: WaitMode,
  handoffs: number,
  warmup: number,
  managerTracePath: string,
  log: (l: string) => void,
  roundIndex = 0,
): Promise<Series> {
  const { client } = bc.cluster;
  const ns = bc.namespace;
  const rootDir = bc.kubelet?.rootDir ?? '';
  const gated = mode === 'scheduling-gate';
  const name = `handoff-${primitive.toLowerCase()}${gated ? '-gate' : ''}${roundIndex ? `-r${roundIndex}` : ''}`;
  const label = `${primitive} ${mode}`;
  const holdSeconds = gated ? GATE_HOLD_SECONDS : HOLD_SECONDS;
  const plural = primitive === 'Semaphore' ? 'semaphores' : 'leases';
  const primitivePath = `/apis/sync.konductor.io/v1/namespaces/${ns}/${plural}`;
  await client.create(primitivePath, {
    apiVersion: 'sync.konductor.io/v1',
    kind: primitive,
    metadata: { name },
    spec: primitive === 'Semaphore' ? { permits: 1 } : { ttl: '10m' },
  });
  const floor = await startControlPlaneFloor(client, primitive);
  const ungate = gated
    ? await startUngateFloor(client, {
        rootDir,
        schedulerName: BENCH_SCHEDULER,
        nodeSelector: GATE_NODE_SELECTOR,
      })
    : undefined;
  const annotation = primitive === 'Semaphore' ? 'konductor.io/semaphore' : 'konductor.io/lease';
  const total = handoffs + warmup + 1;
  const prefix = `${primitive === 'Semaphore' ? 's' : 'l'}${gated ? 'g' : ''}-${randomBytes(2).toString('hex')}`;
  const podName = (i: number) => `${prefix}-${String(i).padStart(4, '0')}`;
  const records: PodRecord[] = [];
  const probes: (ControlPlaneProbe & { ungateMs?: number })[] = [];
  // What this process's watch saw of each pod, on the wall clock: created (the API answered), gate gone, bound.
  const createdAt = new Map<string, number>();
  const ungatedSeen = new Map<string, number>();
  const boundSeen = new Map<string, number>();
  const wallNow = () => performance.timeOrigin + performance.now();
  const probedDuring = new Set<string>();
  const seen = new Set<string>();
  let created = 0;
  let probing = false;
  let failure: Error | undefined;
  const started = Date.now();
  const api0 = await apiserverStats(client);
  const kubelet = traceKubeletPatches();

  const createNext = async () => {
    if (created >= total) return;
    const i = created++;
    await client.create(`/api/v1/namespaces/${ns}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: podName(i),
        labels: { 'konductor.io/bench': name },
        annotations: { [annotation]: name, ...(gated ? { [ANNOTATIONS.waitMode]: mode } : {}) },
      },
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 5,
        ...(gated ? { schedulerName: BENCH_SCHEDULER, nodeSelector: GATE_NODE_SELECTOR } : {}),
        containers: [
          {
            name: 'main',
            image: 'busybox',
            command: ['sh', '-c', `date +%s%N; sleep ${holdSeconds}; date +%s%N`],
          },
        ],
      },
    });
    createdAt.set(podName(i), wallNow());
  };
  // A/B: after each pod completes (the handoff it took part in is over and the next holder sleeps), one
  // floor probe, on the same machine at the same moment of the cycle.
  const probeSoon = () => {
    if (probing) return;
    probing = true;
    setTimeout(() => {
      client
        .get<{ status?: Record<string, unknown> }>(`${primitivePath}/${name}`)
        .then((real) => floor.probe(probes.length, real.status))
        .then(async (p) => {
          if (!ungate) return probes.push(p);
          const ungateMs = await ungate.probe(probes.length);
          return probes.push({ ...p, ungateMs, floorMs: round(p.floorMs + ungateMs, 3) });
        })
        .catch((err: unknown) => {
          failure ??= err as Error;
        })
        .finally(() => {
          probing = false;
        });
    }, 50);
  };

  const informer = new Informer<Pod>(client, {
    path: `/api/v1/namespaces/${ns}/pods`,
    labelSelector: `konductor.io/bench=${name}`,
    onEvent: (ev) => {
      if (ev.type === 'deleted') return;
      const pod = ev.object;
      const podNameNow = pod.metadata.name ?? '';
      const phase = pod.status?.phase;
      if (!ungatedSeen.has(podNameNow) && !(pod.spec.schedulingGates ?? []).length)
        ungatedSeen.set(podNameNow, wallNow());
      if (!boundSeen.has(podNameNow) && pod.spec.nodeName) boundSeen.set(podNameNow, wallNow());
      // Scheduling-gate mode: the floor is probed while a holder holds (its main container runs), between
      // handoffs; the pod start it includes would otherwise compete with the handoff it is the floor of.
      const mainRunning = (pod.status?.containerStatuses ?? []).some(
        (c) => c.name === 'main' && c.state?.running !== undefined,
      );
      if (gated && mainRunning && phase === 'Running' && !probedDuring.has(podNameNow)) {
        probedDuring.add(podNameNow);
        probeSoon();
      }
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
      if (records.length % 25 === 0) log(`    ${label}: ${records.length}/${total} pods done`);
      createNext().catch((err: unknown) => {
        failure ??= err as Error;
      });
      if (!gated) probeSoon();
    },
  }).start();
  try {
    await informer.synced;
    for (let i = 0; i < WINDOW; i++) await createNext();
    await waitUntil(
      `${total} ${label} pods to complete`,
      () => {
        if (failure) throw failure;
        return records.length >= total && !probing;
      },
      total * 5_000 + 60_000,
      100,
    );
  } finally {
    informer.stop();
    kubelet.stop();
    floor.stop();
    ungate?.stop();
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
  await new Promise((r) => setTimeout(r, 300)); // the manager flushes its marks every 100 ms
  const manager = readManagerTrace(managerTracePath);

  // Grant order = handoff order: consecutive pods in the order their waits ended.
  records.sort((a, b) => a.waitExitMs - b.waitExitMs);
  const latencies: number[] = [];
  const toMainStart: number[] = [];
  const waitExitToMain: number[] = [];
  const gateParts: GateHandoffParts[] = [];
  const mtimeLatencies: number[] = [];
  const toDecision: number[] = [];
  const toWaitExit: number[] = [];
  const toHoldReleased: number[] = [];
  const parts: HandoffParts[] = [];
  const nexts: PodRecord[] = [];
  let excluded = 0;
  for (let i = 1; i < records.length; i++) {
    const holder = records[i - 1] as PodRecord;
    const next = records[i] as PodRecord;
    if (i <= warmup) continue;
    const exitMs = holder.mainExitMs;
    // Queued before the holder exited: in init-container mode its konductor-wait said so; a gated pod's
    // konductor-wait starts only once granted, so its creation (admission) is what counts.
    const queuedAt = gated ? createdAt.get(next.name) : next.queuedAtMs;
    if (queuedAt === undefined || queuedAt > exitMs) {
      excluded++;
      continue;
    }
    latencies.push(next.waitExitMs - exitMs);
    toMainStart.push(next.mainStartMs - exitMs);
    waitExitToMain.push(next.mainStartMs - next.waitExitMs);
    if (gated) {
      const ungated = ungatedSeen.get(next.name) ?? Number.NaN;
      const bound = boundSeen.get(next.name) ?? Number.NaN;
      gateParts.push({
        exitToDecision: next.grantedAtMs - exitMs,
        decisionToUngated: ungated - next.grantedAtMs,
        ungatedToBound: bound - ungated,
        boundToWaitExit: next.waitExitMs - bound,
        waitExitToMainStart: next.mainStartMs - next.waitExitMs,
      });
    }
    mtimeLatencies.push(next.grantMtimeMs - exitMs);
    toDecision.push(next.grantedAtMs - exitMs);
    toWaitExit.push(next.waitExitMs - next.grantedAtMs);
    if (holder.holdReleasedAtMs !== undefined) toHoldReleased.push(holder.holdReleasedAtMs - exitMs);
    parts.push(handoffParts(holder, next, name, manager, kubelet.patches));
    nexts.push(next);
  }
  const partKeys = Object.keys(PART_OWNER) as (keyof HandoffParts)[];
  const partSummaries = Object.fromEntries(
    partKeys.map((k) => [
      k,
      { ...summarize(parts.map((p) => p[k]).filter(Number.isFinite)), owner: PART_OWNER[k] },
    ]),
  ) as Series['parts'];
  const ours = parts.map((p) =>
    partKeys.filter((k) => PART_OWNER[k] === 'konductor').reduce((sum, k) => sum + p[k], 0),
  );
  const variantNames = [...new Set(nexts.map((r) => r.agent.variant ?? 'A'))];
  const variants =
    variantNames.length > 1
      ? Object.fromEntries(
          variantNames.map((v) => {
            const idx = nexts.flatMap((r, i) => ((r.agent.variant ?? 'A') === v ? [i] : []));
            const pick = (xs: readonly number[]) =>
              summarize(idx.map((i) => xs[i] as number).filter(Number.isFinite));
            return [
              v,
              {
                processExitMs: pick(parts.map((p) => p.processExit)),
                oursMs: pick(ours),
                agentPartsP50: Object.fromEntries(
                  AGENT_PARTS.map((k) => [k, pick(parts.map((p) => p[k])).p50]),
                ) as Record<(typeof AGENT_PARTS)[number], number>,
                decisionToWaitExitMs: pick(toWaitExit),
              },
            ];
          }),
        )
      : undefined;
  const floorMs = probes.map((p) => p.floorMs);
  const probeSummary = (f: (p: (typeof probes)[number]) => number) => summarize(probes.map(f));
  return {
    primitive,
    mode,
    handoffMs: summarize(latencies),
    handoffToMainStartMs: summarize(toMainStart),
    waitExitToMainStartMs: summarize(waitExitToMain),
    ...(gated
      ? {
          gateParts: summarizeGateParts(gateParts),
          pairedMainStartRatio: round(pairedRatio(toMainStart, floorMs.slice(warmup)), 3),
        }
      : {}),
    grantMtimeHandoffMs: summarize(mtimeLatencies),
    exitToDecisionMs: summarize(toDecision),
    decisionToWaitExitMs: summarize(toWaitExit),
    exitToHoldReleasedMs: summarize(toHoldReleased),
    parts: partSummaries,
    oursMs: summarize(ours.filter(Number.isFinite)),
    floor: {
      probes: probes.length,
      patchResponseMs: probeSummary((p) => p.patchResponseMs),
      patchWatchMs: probeSummary((p) => p.patchWatchMs),
      putResponseMs: probeSummary((p) => p.putResponseMs),
      putWatchMs: probeSummary((p) => p.putWatchMs),
      ...(gated ? { ungateMs: probeSummary((p) => p.ungateMs ?? Number.NaN) } : {}),
      floorMs: summarize(floorMs),
    },
    pairedRatio: round(pairedRatio(latencies, floorMs.slice(warmup)), 3),
    pairedOursRatio: round(pairedRatio(ours, floorMs.slice(warmup)), 3),
    raw: {
      handoffMs: latencies,
      oursMs: ours,
      toMainStartMs: toMainStart,
      floorMs,
      handoffRatios: pairRatios(latencies, floorMs.slice(warmup)),
      oursRatios: pairRatios(ours, floorMs.slice(warmup)),
      mainStartRatios: pairRatios(toMainStart, floorMs.slice(warmup)),
      gateParts,
      ungateMs: probes.flatMap((p) => (p.ungateMs === undefined ? [] : [p.ungateMs])),
    },
    ...(variants ? { variants } : {}),
    apiserverMeanMs,
    counted: latencies.length,
    warmup,
    excludedNotQueued: excluded,
    seconds: round(seconds, 1),
  };
}

/** Several rounds of one (primitive, mode) series as one: summaries of the pooled handoffs, median of all pairs. */
function poolSeries(rounds: readonly Series[]) {
  const cat = (f: (s: Series) => readonly number[]) => rounds.flatMap((s) => [...f(s)]);
  const med = (f: (s: Series) => readonly number[]) => round(median(cat(f)), 3);
  const first = rounds[0] as Series;
  return {
    primitive: first.primitive,
    mode: first.mode,
    rounds: rounds.length,
    handoffMs: summarize(cat((s) => s.raw.handoffMs)),
    oursMs: summarize(cat((s) => s.raw.oursMs).filter(Number.isFinite)),
    toMainStartMs: summarize(cat((s) => s.raw.toMainStartMs)),
    floorMs: summarize(cat((s) => s.raw.floorMs)),
    pairedRatio: med((s) => s.raw.handoffRatios),
    pairedOursRatio: med((s) => s.raw.oursRatios),
    pairedMainStartRatio: med((s) => s.raw.mainStartRatios),
    gateParts: summarizeGateParts(rounds.flatMap((s) => s.raw.gateParts)),
    ungateMs: summarize(cat((s) => s.raw.ungateMs)),
  };
}

export async function runHandoff(opts: BenchOptions): Promise<void> {
  const env = environment();
  const started = Date.now();
  const handoffs = byMode(opts.mode, { full: 200, quick: 20, tiny: 3 });
  // Each scheduling-gate handoff is a pod start plus a longer hold (and its floor probe a pod start).
  const gateHandoffs = byMode(opts.mode, { full: 100, quick: 16, tiny: 3 });
  const rounds = byMode(opts.mode, { full: 4, quick: 2, tiny: 1 });
  const warmup = byMode(opts.mode, { full: 5, quick: 3, tiny: 1 });
  const log = opts.log;
  log(
    `handoff: ${handoffs} handoffs each on a Semaphore (1 permit) and a Lease, ${gateHandoffs} on a Semaphore ` +
      `in scheduling-gate mode, after ${warmup} warm-up`,
  );
  await buildAgent();
  const traceDir = mkdtempSync(join(tmpdir(), 'konductor-bench-handoff-'));
  // An experiment, off by default: every other waiter's agent runs with these node flags (variant B).
  const agentVariantB: AgentVariantB = {
    nodeArgs: (process.env.KONDUCTOR_BENCH_AGENT_B_ARGS ?? '').split(' ').filter(Boolean),
    ...(process.env.KONDUCTOR_BENCH_AGENT_B_SCRIPT
      ? { script: process.env.KONDUCTOR_BENCH_AGENT_B_SCRIPT }
      : {}),
  };
  const describeB = [...agentVariantB.nodeArgs, agentVariantB.script ?? ''].join(' ').trim();
  if (describeB) log(`  agent A/B: every other waiter runs node ${describeB}`);
  const managerTrace = join(traceDir, 'manager-trace.ndjson');
  // The manager is started with the trace preload (its node flags otherwise as always).
  const savedArgs = process.env.KONDUCTOR_MANAGER_NODE_ARGS;
  process.env.KONDUCTOR_MANAGER_NODE_ARGS =
    `${savedArgs ?? MANAGER_NODE_ARGS} ` +
    `--import=${pathToFileURL(join(ROOT, 'bench', 'trace-manager.ts')).href}?out=${managerTrace}`;
  let bc: BenchCluster;
  try {
    bc = await startBenchCluster({
      name: 'handoff',
      kubelet: { images: [timedAgentImage(agentVariantB)] },
      log,
    });
  } finally {
    if (savedArgs === undefined) delete process.env.KONDUCTOR_MANAGER_NODE_ARGS;
    else process.env.KONDUCTOR_MANAGER_NODE_ARGS = savedArgs;
  }
  const series: Series[] = [];
  // The Semaphore's two wait modes alternate in rounds (init-container, scheduling-gate, init-container, ...), so
  // that the machine's load hits both alike; their figures pool the rounds. The Lease series follows.
  const plan: { primitive: 'Semaphore' | 'Lease'; mode: WaitMode; count: number; round: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    const count = (n: number) => Math.ceil(n / rounds);
    plan.push({ primitive: 'Semaphore', mode: 'init-container', count: count(handoffs), round: r });
    plan.push({ primitive: 'Semaphore', mode: 'scheduling-gate', count: count(gateHandoffs), round: r });
  }
  plan.push({ primitive: 'Lease', mode: 'init-container', count: handoffs, round: 0 });
  try {
    // kube-scheduler places the scheduling-gate series' pods (and its floor's) once ungated.
    await startKubeScheduler(bc.cluster, { schedulerName: BENCH_SCHEDULER, log });
    if (bc.kubelet) await untaintNode(bc.cluster.client, bc.kubelet.nodeName);
    for (const { primitive, mode, count, round: r } of plan) {
      const s = await runSeries(bc, primitive, mode, count, warmup, managerTrace, log, r);
      series.push(s);
      log(
        `  ${primitive} (${mode}${rounds > 1 && primitive === 'Semaphore' ? `, round ${r + 1}/${rounds}` : ''}): ` +
          `${fmtSummary(s.handoffMs)}; excluded (next not yet queued): ${s.excludedNotQueued}`,
      );
      log(`    release -> next main container starts: ${fmtSummary(s.handoffToMainStartMs)}`);
      for (const [k, v] of Object.entries(s.gateParts ?? {}))
        log(`      ${k.padEnd(20)} p50 ${v.p50} ms  p95 ${v.p95} ms (n=${v.n})`);
      if (s.floor.ungateMs)
        log(`    floor's bare pod ungated -> main starts: ${fmtSummary(s.floor.ungateMs)}`);
      log(
        `    floor (PATCH pods/status -> watch + PUT status -> watch, ${s.floor.probes} probes): ${fmtSummary(s.floor.floorMs)}`,
      );
      if (s.gateParts) {
        // The init-container parts fold scheduling and the pod's start into "PUT -> stream write" here.
        log(`    paired ratio release -> main start / floor ${s.pairedMainStartRatio}`);
        continue;
      }
      log(`    ours (konductor's parts summed): ${fmtSummary(s.oursMs)}`);
      log(`    paired ratio handoff / floor ${s.pairedRatio}; ours / floor ${s.pairedOursRatio}`);
      for (const [v, x] of Object.entries(s.variants ?? {}))
        log(
          `    agent variant ${v} (${v === 'B' ? describeB : 'this checkout'}): decision -> wait exit ${fmtSummary(x.decisionToWaitExitMs)}; ours ${fmtSummary(x.oursMs)}; agent parts p50 ${JSON.stringify(x.agentPartsP50)}`,
        );
      for (const [k, v] of Object.entries(s.parts))
        log(`      ${k.padEnd(20)} [${v.owner}] p50 ${v.p50} ms  p95 ${v.p95} ms (n=${v.n})`);
      log(`    exit -> hold's release answered: ${fmtSummary(s.exitToHoldReleasedMs)}`);
      log(`    API server mean time per request: ${JSON.stringify(s.apiserverMeanMs)}`);
    }
  } finally {
    await bc.stop();
    rmSync(traceDir, { recursive: true, force: true });
  }
  const method =
    'devcluster with the process kubelet, webhook and manager (one namespace). Pods created through the API in a ' +
    `sliding window of ${WINDOW} (1 holds, 2 wait); main container \`date +%s%N; sleep ${HOLD_SECONDS}; date +%s%N\` = its ` +
    'start and exit times (ns, from its log file); konductor-wait wrapped as `agent wait; echo $EPOCHREALTIME > /var/run/konductor/wait-exit` ' +
    '(bash builtin, no fork) = the first instant after it exited. Handoff = next waiter wait-exit - holder main-exit, ' +
    'pairs taken in wait-exit order; counted only if the waiter had printed `waiting for` before the holder exited. ' +
    'Floor, alternated with the handoffs (one probe after each pod completes): a pod status PATCH and a primitive ' +
    'status PUT, each timed until a watch delivers it (bench/controlPlaneFloor.ts). Parts from marks taken by preloads ' +
    '(bench/trace-manager.ts, bench/trace-agent.mjs) and diagnostics_channel (the kubelet PATCH); ours = the sum of ' +
    "konductor's parts. Ratios: median over pairs (handoff i, probe i). Scheduling-gate series (Semaphore): pods " +
    `annotated konductor.io/wait-mode: scheduling-gate, placed by the real kube-scheduler (profile ${BENCH_SCHEDULER}) ` +
    `on the process kubelet's node once ungated, holding ${GATE_HOLD_SECONDS} s; handoff = next main-start - holder ` +
    'main-exit (counted if the next pod was created before the holder exited); its floor adds to the control-plane ' +
    "probe a bare pod's gate removal (JSON patch) -> its main container's first clock reading, through the same " +
    "scheduler and kubelet (bench/ungateFloor.ts), probed while a holder's main container runs. The Semaphore's " +
    `two modes alternate in ${rounds} round(s) (init-container, scheduling-gate, ...), each with its warm-up; ` +
    'their figures pool the rounds (summaries of all handoffs, median of all pairs). The Lease series follows.';
  // One figure per (primitive, mode), pooled over its rounds.
  const pooled = [...new Set(series.map((x) => `${x.primitive}/${x.mode}`))].map((key) =>
    poolSeries(series.filter((x) => `${x.primitive}/${x.mode}` === key)),
  );
  const figures: Figure[] = pooled.flatMap((s) => {
    const floorName = 'PATCH pods/status -> watch + PUT status -> watch (same run, alternated)';
    if (s.mode === 'scheduling-gate') {
      const gateFloorName =
        'PATCH pods/status -> watch + PUT status -> watch + a bare pod: gate removed -> kube-scheduler binds -> ' +
        'main container starts (same run, alternated)';
      const name = `handoff in scheduling-gate mode, release -> next main container starts (${s.primitive})`;
      return [
        flooredFigure({
          name: `${name} p50`,
          value: s.toMainStartMs.p50,
          floor: s.floorMs.p50,
          ratio: s.pairedMainStartRatio ?? Number.NaN,
          unit: 'ms',
          floorName: gateFloorName,
        }),
        flooredFigure({
          name: `${name} p99`,
          value: s.toMainStartMs.p99,
          floor: s.floorMs.p99,
          unit: 'ms',
          floorName: `${gateFloorName}, p99`,
        }),
      ];
    }
    const toMain = flooredFigure({
      name: `handoff in init-container mode, release -> next main container starts (${s.primitive}) p50`,
      value: s.toMainStartMs.p50,
      floor: s.floorMs.p50,
      unit: 'ms',
      floorName: `${floorName} (the kubelet starting konductor-hold and main after konductor-wait exits is not in it)`,
    });
    return [
      flooredFigure({
        name: `handoff p50 (${s.primitive})`,
        value: s.handoffMs.p50,
        floor: s.floorMs.p50,
        ratio: s.pairedRatio,
        unit: 'ms',
        floorName,
        target: `<= ${TARGET_P50_MS} ms`,
        meetsTarget: s.handoffMs.p50 <= TARGET_P50_MS,
        ratioTarget: { max: HANDOFF_RATIO_TARGETS.handoffToFloor },
      }),
      flooredFigure({
        name: `handoff p99 (${s.primitive})`,
        value: s.handoffMs.p99,
        floor: s.floorMs.p99,
        unit: 'ms',
        floorName: `${floorName}, p99`,
        target: `<= ${TARGET_P99_MS} ms`,
        meetsTarget: s.handoffMs.p99 <= TARGET_P99_MS,
      }),
      flooredFigure({
        name: `handoff: konductor's added latency p50 (${s.primitive})`,
        value: s.oursMs.p50,
        floor: s.floorMs.p50,
        ratio: s.pairedOursRatio,
        unit: 'ms',
        floorName,
        ratioTarget: { max: HANDOFF_RATIO_TARGETS.oursToFloor },
      }),
      ...(s.primitive === 'Semaphore' ? [toMain] : []),
    ];
  });
  log(`method: ${method}`);
  log(`machine: ${describeEnvironment(env)}`);
  printFigures(log, figures);
  const path = await writeResult(opts, {
    benchmark: 'handoff',
    mode: opts.mode,
    environment: env,
    method,
    parameters: {
      handoffs,
      gateHandoffs,
      warmup,
      window: WINDOW,
      holdSeconds: HOLD_SECONDS,
      gateHoldSeconds: GATE_HOLD_SECONDS,
      scheduler: `kube-scheduler (profile ${BENCH_SCHEDULER}) for the scheduling-gate series`,
      agentVariantB,
    },
    figures,
    details: { pooled, series },
    durationSeconds: round((Date.now() - started) / 1000, 1),
  });
  log(`wrote ${path}`);
}
