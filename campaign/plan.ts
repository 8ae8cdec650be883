/**
 * The plan of one campaign round, a pure function of (seed, round, shape): the manager topology, the
 * primitives, the workload (about 50 pods of mixed priorities and annotations, each with its own work
 * time) and the fault schedule (one fault every 1–3 s). Targets that depend on the live state (which
 * holder to delete, which manager leads) are picked at injection time from a generator of the same seed.
 *
 * Fault kinds are dealt from shuffled cycles of all kinds across the whole campaign, so every kind is
 * injected about equally often and a short campaign of a few rounds still injects each one.
 */
import { createRng, type Rng, seedOf } from './random.ts';

export const FAULT_KINDS = [
  'manager-sigkill',
  'manager-sigstop',
  'second-manager',
  'apiserver-sigkill',
  'apiserver-sigkill-compacted',
  'etcd-restart',
  'pod-recreated-during-outage',
  'force-delete-manager-down',
  'graceful-delete',
  'hold-killed',
  'foreign-token-release',
  'metadata-edit-refused',
  'metadata-edit-unguarded',
  'status-write-refused',
  'primitive-recreate',
  'permits-change',
  'durations-near-limits',
  'agent-connection-cut',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** What each kind does, for reports. */
export const FAULT_DESCRIPTIONS: Record<FaultKind, string> = {
  'manager-sigkill':
    'a manager (the leader when there is one) killed with SIGKILL; its supervisor restarts it',
  'manager-sigstop':
    'a manager (the leader when there is one) stopped with SIGSTOP for longer than its 15 s lease, then SIGCONT',
  'second-manager': 'a second manager WITHOUT leader election arbitrating next to the others for 3–8 s',
  'apiserver-sigkill': 'kube-apiserver killed with SIGKILL and started again',
  'apiserver-sigkill-compacted':
    'etcd compacted, then kube-apiserver killed with SIGKILL and started again (watches resume into 410 Gone)',
  'etcd-restart': 'etcd stopped (SIGKILL or SIGTERM) and started again on its data',
  'pod-recreated-during-outage':
    "the managers' connection to the API server cut; a running holder force-deleted and recreated under the same name; etcd compacted; connection restored (re-list after 410 Gone)",
  'force-delete-manager-down':
    'every manager stopped; a running holder force-deleted; managers started again',
  'graceful-delete':
    'a running holder deleted gracefully; its main container traps SIGTERM and finishes its work within the grace period',
  'hold-killed':
    "a running holder's konductor-hold sidecar killed (SIGKILL), or sent SIGTERM (a release hint while the pod runs)",
  'foreign-token-release':
    'POST /v1/release with a token minted for a running holder (audience konductor), and one without the audience',
  'metadata-edit-refused':
    "a running holder's konductor.io/managed label removed or konductor.io/ annotation edited: must be refused",
  'metadata-edit-unguarded':
    'the same edit with the immutable-metadata policy unbound and the webhook not matching UPDATE: it gets through; nothing may break',
  'status-write-refused': "a holder forged into a primitive's status by the cluster admin: must be refused",
  'primitive-recreate': 'a Semaphore or the Lease deleted and recreated while its holders run',
  'permits-change': "a Semaphore's spec.permits lowered or raised",
  'durations-near-limits':
    "a ttl set near Node's timer limit (596h31m, 597h) or at the bound (8760h) for a while; a pod and a ttl beyond the bound refused",
  'agent-connection-cut':
    'every connection between agents and the manager cut (TCP proxy), new ones refused for 0.5–3 s',
};

export type Topology = 'single' | 'ha';

/** How big a round is. */
export interface RoundShape {
  /** Workload pods per round (the Job's pod comes on top). */
  pods: number;
  /** Faults are injected from 1 s to this (ms after the round's start). */
  faultPhaseMs: number;
  /** Pods are created at random times in [0, podWindowMs]. */
  podWindowMs: number;
  /** Gap between two faults, ms (uniform). */
  faultGapMs: readonly [number, number];
  /** The fault kinds dealt (default: every kind). */
  faultKinds?: readonly FaultKind[];
}

/** ~50 pods, ~20 faults over 40 s. */
export const FULL_SHAPE: RoundShape = {
  pods: 50,
  faultPhaseMs: 40_000,
  podWindowMs: 30_000,
  faultGapMs: [1000, 3000],
};

/** The short campaign of `npm test`. */
export const SHORT_SHAPE: RoundShape = {
  pods: 22,
  faultPhaseMs: 14_000,
  podWindowMs: 10_000,
  faultGapMs: [1000, 2000],
};

export type SemaphoreName = 'slots' | 'pool';

export interface PlannedPrimitives {
  /** A Semaphore with a ttl (some holders work longer than it: Expired). */
  slots: { permits: number; ttl: string };
  /** A Semaphore without ttl; some pods ask for 2 permits. */
  pool: { permits: number };
  /** The Lease. */
  lock: { ttl: string };
  /** The Barrier (quorum below expected). */
  start: { expected: number; quorum: number; timeout: string };
  /** The Gate: the Job `prep` Complete and Semaphore `pool` Available. */
  ready: { timeout: string };
  /** How long the Job `prep` runs, ms. */
  prepMs: number;
}

/** A primitive a pod references. */
export interface PrimitiveRef {
  kind: 'Semaphore' | 'Lease' | 'Barrier' | 'Gate';
  name: string;
  /** Permits asked for (Semaphore; 1 otherwise). */
  permits: number;
}

export interface PlannedPod {
  name: string;
  annotations: Record<string, string>;
  refs: PrimitiveRef[];
  /** The main container's work, ms. */
  workMs: number;
  restartPolicy: 'Never' | 'OnFailure';
  /** OnFailure pods: the first run exits 1, the restarted one 0. */
  failFirstRun: boolean;
  /** Exit code of the (last) run. */
  exitCode: 0 | 1;
  createAtMs: number;
}

export interface FaultParams {
  durationMs?: number;
  signal?: 'SIGKILL' | 'SIGTERM';
  semaphore?: SemaphoreName;
  permits?: number;
  ttl?: string;
  /** metadata edits */
  edit?: 'remove-label' | 'edit-annotation' | 'add-annotation';
  /** primitive-recreate, durations-near-limits: which primitive */
  primitive?: 'slots' | 'pool' | 'lock';
}

export interface PlannedFault {
  /** Index in the round. */
  index: number;
  atMs: number;
  kind: FaultKind;
  params: FaultParams;
}

export interface RoundPlan {
  seed: string;
  round: number;
  topology: Topology;
  primitives: PlannedPrimitives;
  pods: PlannedPod[];
  faults: PlannedFault[];
}

/** Fault times of one round (ms after its start). */
function faultTimes(seed: string, round: number, shape: RoundShape): number[] {
  const rng = createRng(seedOf(seed, round, 'fault-times'));
  const times: number[] = [];
  for (let t = 1000; t <= shape.faultPhaseMs; t += rng.int(shape.faultGapMs[0], shape.faultGapMs[1]))
    times.push(t);
  return times;
}

/** The kind of the campaign's n-th fault: shuffled cycles of every kind dealt, one cycle after another. */
export function faultKindAt(seed: string, n: number, dealt: readonly FaultKind[] = FAULT_KINDS): FaultKind {
  const cycle = Math.floor(n / dealt.length);
  const kinds = createRng(seedOf(seed, 'kinds', cycle)).shuffle(dealt);
  return kinds[n % dealt.length] as FaultKind;
}

function faultParams(kind: FaultKind, rng: Rng): FaultParams {
  switch (kind) {
    case 'manager-sigstop':
      return { durationMs: rng.int(16_000, 19_000) };
    case 'second-manager':
      return { durationMs: rng.int(3000, 8000), signal: rng.pick(['SIGKILL', 'SIGTERM'] as const) };
    case 'etcd-restart':
      return { signal: rng.pick(['SIGKILL', 'SIGTERM'] as const) };
    case 'pod-recreated-during-outage':
      return { durationMs: rng.int(1500, 4000) };
    case 'force-delete-manager-down':
      return { durationMs: rng.int(1000, 3000) };
    case 'hold-killed':
      return { signal: rng.pick(['SIGKILL', 'SIGTERM'] as const) };
    case 'metadata-edit-refused':
    case 'metadata-edit-unguarded':
      return { edit: rng.pick(['remove-label', 'edit-annotation', 'add-annotation'] as const) };
    case 'status-write-refused':
      return { semaphore: rng.pick(['slots', 'pool'] as const) };
    case 'primitive-recreate':
      return { primitive: rng.pick(['slots', 'pool', 'lock'] as const) };
    case 'permits-change':
      return { semaphore: rng.pick(['slots', 'pool'] as const), permits: rng.int(1, 5) };
    case 'durations-near-limits':
      return {
        primitive: rng.pick(['slots', 'lock'] as const),
        ttl: rng.pick(['596h31m', '596h32m', '597h', '8760h']),
        durationMs: rng.int(2000, 5000),
      };
    case 'agent-connection-cut':
      return { durationMs: rng.int(500, 3000) };
    default:
      return {};
  }
}

function plannedPrimitives(rng: Rng, pods: number): PlannedPrimitives {
  const expected = Math.max(3, Math.min(6, Math.round(pods / 8)));
  return {
    slots: { permits: rng.int(2, 3), ttl: rng.pick(['6s', '8s', '10s']) },
    pool: { permits: rng.int(3, 4) },
    lock: { ttl: rng.pick(['10s', '15s', '20s']) },
    start: { expected, quorum: Math.max(2, expected - rng.int(1, 2)), timeout: '60s' },
    ready: { timeout: '120s' },
    prepMs: rng.int(2000, 8000),
  };
}

type Category = 'slots' | 'pool' | 'lock' | 'lock+slots' | 'gate' | 'gate+lock' | 'barrier' | 'barrier+pool';
const WEIGHTED: readonly [Category, number][] = [
  ['slots', 30],
  ['pool', 24],
  ['lock', 18],
  ['lock+slots', 10],
  ['gate', 12],
  ['gate+lock', 6],
];

function pickCategory(rng: Rng): Category {
  const total = WEIGHTED.reduce((s, [, w]) => s + w, 0);
  let x = rng.next() * total;
  for (const [c, w] of WEIGHTED) {
    x -= w;
    if (x < 0) return c;
  }
  return 'slots';
}

function plannedPod(rng: Rng, index: number, category: Category, shape: RoundShape): PlannedPod {
  const annotations: Record<string, string> = {};
  const refs: PrimitiveRef[] = [];
  const add = (kind: PrimitiveRef['kind'], name: string, permits = 1) => {
    annotations[`konductor.io/${kind.toLowerCase()}`] = name;
    refs.push({ kind, name, permits });
  };
  if (category.includes('gate')) add('Gate', 'ready');
  if (category.includes('barrier')) add('Barrier', 'start');
  if (category.includes('lock')) add('Lease', 'lock');
  if (category.includes('slots')) add('Semaphore', 'slots');
  if (category.includes('pool')) {
    const permits = rng.chance(0.3) ? 2 : 1;
    add('Semaphore', 'pool', permits);
    if (permits > 1) annotations['konductor.io/permits'] = String(permits);
  }
  if (rng.chance(0.4)) annotations['konductor.io/priority'] = String(rng.pick([-5, 0, 3, 10, 1_000_000_000]));
  // Near Node's timer limit (2^31 ms is 596.5h) and at the bound: must wait, not time out at once.
  if (rng.chance(0.15)) annotations['konductor.io/wait-timeout'] = rng.pick(['596h', '597h', '8760h']);
  // Holders of `slots` sometimes work past its ttl (they keep running: Expired, not killed).
  const long = category.includes('slots') && !category.includes('lock') && rng.chance(0.2);
  const workMs = long
    ? rng.int(8000, 13_000)
    : category.includes('lock')
      ? rng.int(200, 2500)
      : rng.int(300, 4000);
  const onFailure = rng.chance(0.1);
  const prefix = category.replace('+', '-');
  return {
    name: `${prefix}-${String(index).padStart(2, '0')}`,
    annotations,
    refs,
    workMs,
    restartPolicy: onFailure ? 'OnFailure' : 'Never',
    failFirstRun: onFailure,
    exitCode: !onFailure && rng.chance(0.05) ? 1 : 0,
    createAtMs: rng.int(0, shape.podWindowMs),
  };
}

export function planRound(seed: string, round: number, shape: RoundShape): RoundPlan {
  const rng = createRng(seedOf(seed, round, 'plan'));
  const topology: Topology = rng.chance(0.5) ? 'single' : 'ha';
  const primitives = plannedPrimitives(rng.fork('primitives'), shape.pods);
  const podRng = rng.fork('pods');
  const pods: PlannedPod[] = [];
  const barrierPods = primitives.start.expected;
  for (let i = 0; i < shape.pods; i++) {
    const category: Category =
      i < barrierPods ? (i % 2 === 0 ? 'barrier' : 'barrier+pool') : pickCategory(podRng);
    pods.push(plannedPod(podRng, i, category, shape));
  }
  let before = 0;
  for (let r = 0; r < round; r++) before += faultTimes(seed, r, shape).length;
  const faults = faultTimes(seed, round, shape).map((atMs, index) => {
    const kind = faultKindAt(seed, before + index, shape.faultKinds);
    return { index, atMs, kind, params: faultParams(kind, rng.fork(`fault-${index}`)) };
  });
  return { seed, round, topology, primitives, pods, faults };
}
