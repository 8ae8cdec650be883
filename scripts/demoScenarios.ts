/**
 * The stories `npm run demo` tells, one per primitive: what to apply, the live line of the primitive, and the
 * summary with what must hold at the end (checked against the containers' own timestamps on a real node).
 */
import { Informer } from '../api/informer.ts';
import type { KubeClient } from '../api/kubeClient.ts';
import type { Barrier, Gate, Job, Lease, Pod, Semaphore } from '../api/types.ts';
import { type Interval, maxConcurrent } from '../devcluster/intervals.ts';

export const NAMESPACE = 'default';

export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

export type Kubectl = (...args: string[]) => Promise<string>;

/** What every scenario shares: the pods of its Jobs, live, and when each main container was seen running. */
export interface DemoState {
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
export interface Scenario {
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

export const SCENARIOS: Record<string, () => Scenario> = {
  semaphore: semaphoreScenario,
  lease: leaseScenario,
  barrier: barrierScenario,
  gate: gateScenario,
};
