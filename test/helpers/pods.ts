/**
 * Pods and Jobs for integration tests: busybox manifests whose one container runs a shell script, a
 * marker-file release for scripts that block until the test lets them go, the nanosecond clock readings
 * the scripts print, and per-namespace accessors (get, phase, logs, unique names).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { WAIT_CONTAINER } from '../../api/constants.ts';
import type { Pod } from '../../api/types.ts';
import { REPO_ROOT } from '../../devcluster/konductor.ts';
import { kubectl } from './kubectl.ts';
import type { TestNamespace } from './namespace.ts';
import { type WaitOptions, waitFor } from './waitFor.ts';

/** Where `release` creates its marker files (the process kubelet runs containers on this host). */
export const RELEASE_DIR = join(REPO_ROOT, '.tmp');

/** A shell loop that runs until `release(marker)` created the marker file. */
export const untilReleased = (marker: string) =>
  `while [ ! -f ${RELEASE_DIR}/${marker} ]; do sleep 0.05; done`;

/** Lets every script waiting in `untilReleased(marker)` go on. */
export async function release(marker: string): Promise<void> {
  await mkdir(RELEASE_DIR, { recursive: true });
  await writeFile(join(RELEASE_DIR, marker), 'x');
}

/**
 * Shell that ignores SIGTERM the way a workload finishing its work does: prints `term` when the kubelet
 * sends it (graceful deletion) and keeps going with `body`.
 */
export const trapsTerm = (body: string) => `trap 'echo term' TERM; ${body}`;

/** Shell that prints `start <ns since the epoch>`, then runs `body`. */
export const startStamped = (body: string) => `echo start $(date +%s%N); ${body}`;
/** Shell that prints `start <ns>`, runs `body`, then prints `end <ns>`. */
export const timed = (body: string) => `echo start $(date +%s%N); ${body}; echo end $(date +%s%N)`;

export interface PodOptions {
  annotations: Record<string, string>;
  /** The `sh -c` script of the one container, `main` (busybox). */
  script: string;
  /** Default 2. */
  terminationGracePeriodSeconds?: number;
  finalizers?: string[];
}

/** A bare pod (restartPolicy Never) whose one busybox container `main` runs `script`. */
export function podManifest(name: string, opts: PodOptions): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      annotations: opts.annotations,
      ...(opts.finalizers ? { finalizers: opts.finalizers } : {}),
    },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: opts.terminationGracePeriodSeconds ?? 2,
      containers: [{ name: 'main', image: 'busybox', command: ['sh', '-c', opts.script] }],
    },
  };
}

/** A plain (unannotated) Job, backoffLimit 0, whose one pod's container `job` runs `script`. */
export function jobManifest(name: string, script: string, terminationGracePeriodSeconds?: number) {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name },
    spec: {
      backoffLimit: 0,
      template: {
        spec: {
          restartPolicy: 'Never',
          ...(terminationGracePeriodSeconds !== undefined ? { terminationGracePeriodSeconds } : {}),
          containers: [{ name: 'job', image: 'busybox', command: ['sh', '-c', script] }],
        },
      },
    },
  };
}

/** The pod waits in its `konductor-wait` init container. */
export const waitingInInit = (p: Pod) =>
  p.status?.initContainerStatuses?.some((s) => s.name === WAIT_CONTAINER && s.state?.running) ?? false;
/** A main container runs or ran. */
export const mainStarted = (p: Pod) =>
  p.status?.containerStatuses?.some((c) => c.state?.running || c.state?.terminated) ?? false;
/** A main container runs. */
export const mainRunning = (p: Pod) => p.status?.containerStatuses?.some((c) => c.state?.running) ?? false;

/** Nanoseconds as printed by `date +%s%N`, in µs. */
const nsToUs = (ns: string) => Number(BigInt(ns) / 1000n);

export interface NamespacePods {
  /** The namespace's pod collection path. */
  PODS: string;
  /** The namespace's Job collection path. */
  JOBS: string;
  createPod(name: string, opts: PodOptions): Promise<Pod>;
  /** Creates `jobManifest(name, script, terminationGracePeriodSeconds)`. */
  createJob(name: string, script: string, terminationGracePeriodSeconds?: number): Promise<void>;
  getPod(name: string): Promise<Pod>;
  phaseOf(name: string): Promise<string | undefined>;
  /** Waits until every named pod is in `phase`. */
  waitForPhase(names: string | string[], phase: string, opts?: WaitOptions): Promise<void>;
  /** The log of one container of a pod. */
  containerLog(pod: string, container: string): Promise<string>;
  /** The log of the pod's `konductor-wait` container. */
  waitLog(pod: string): Promise<string>;
  /** `<prefix>-<namespace>-<random>`: a name (e.g. a release marker) unique to this run. */
  uniq(prefix: string): string;
  /** Creates Semaphore `name` with `permits`. */
  createSemaphore(name: string, permits: number): Promise<void>;
  /** A number printed as `<label> <ns>` in a container's log, in µs (expects the line to be there). */
  loggedUs(pod: string, container: string, label: string): Promise<number>;
  /** The `start <ns>` and `end <ns>` lines of a container's log, in µs (expects both to be there). */
  loggedIntervalUs(pod: string, container: string): Promise<[number, number]>;
}

/** Pod helpers bound to a test file's namespace. */
export function namespacePods(ns: TestNamespace): NamespacePods {
  const { client, name: namespace } = ns;
  const PODS = `/api/v1/namespaces/${namespace}/pods`;
  const JOBS = `/apis/batch/v1/namespaces/${namespace}/jobs`;
  const getPod = (name: string) => client.get<Pod>(`${PODS}/${name}`);
  const phaseOf = async (name: string) => (await getPod(name)).status?.phase;
  const containerLog = async (pod: string, container: string) =>
    (await kubectl(['logs', pod, '-c', container], { namespace })).stdout;
  return {
    PODS,
    JOBS,
    createPod: (name, opts) => client.create<Pod>(PODS, podManifest(name, opts)),
    createJob: async (name, script, terminationGracePeriodSeconds) => {
      await client.create(JOBS, jobManifest(name, script, terminationGracePeriodSeconds));
    },
    getPod,
    phaseOf,
    waitForPhase: async (names, phase, opts) => {
      const all = typeof names === 'string' ? [names] : names;
      await waitFor(async () => (await Promise.all(all.map(phaseOf))).every((p) => p === phase), opts);
    },
    containerLog,
    waitLog: (pod) => containerLog(pod, WAIT_CONTAINER),
    uniq: (prefix) => `${prefix}-${namespace}-${Math.random().toString(36).slice(2, 8)}`,
    createSemaphore: async (name, permits) => {
      await client.create(`/apis/sync.konductor.io/v1/namespaces/${namespace}/semaphores`, {
        apiVersion: 'sync.konductor.io/v1',
        kind: 'Semaphore',
        metadata: { name },
        spec: { permits },
      });
    },
    loggedUs: async (pod, container, label) => {
      const log = await containerLog(pod, container);
      const v = new RegExp(`^${label} (\\d+)$`, 'm').exec(log)?.[1];
      expect(v, `"${label}" line in the log of ${pod}/${container}: ${log}`).toBeTruthy();
      return nsToUs(v!);
    },
    loggedIntervalUs: async (pod, container) => {
      const log = await containerLog(pod, container);
      const start = /^start (\d+)$/m.exec(log)?.[1];
      const end = /^end (\d+)$/m.exec(log)?.[1];
      expect(start && end, `start/end lines in the log of ${pod}: ${log}`).toBeTruthy();
      return [nsToUs(start!), nsToUs(end!)];
    },
  };
}
