/**
 * The manager's Prometheus metrics, with prom-client (the process_* and nodejs_* default metrics included).
 *
 * Names and units follow the Prometheus conventions (konductor_ prefix, base units: seconds, `_total` for
 * counters). Label cardinality is bounded by construction:
 * - `kind` is one of the four primitive kinds; `reason`, `result` and `annotation` come from fixed
 *   vocabularies (docs/reasons.md, docs/metrics.md); no metric has a pod label;
 * - the per-primitive gauges (`primitive_namespace`, `primitive`: not `namespace`, which Prometheus sets to
 *   the scraped pod's) are computed at scrape time from the caches, for at most `maxPrimitiveSeries`
 *   primitives (the first by kind, namespace and name); the rest are summed into one series per kind with
 *   namespace and name `(other)` (oldest wait: their maximum). `konductor_primitives` counts them all.
 *
 * Recording is done by one-line calls at the call sites (controller, webhook route, agent API); what they
 * record is derived here from the objects, so the controller's decisions stay pure.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { AnnotationProblem } from '../api/annotations.ts';
import { HOLDING_KINDS, KINDS, PRIMITIVE_KINDS, type PrimitiveKind } from '../api/kinds.ts';
import type { Pod, Primitive } from '../api/types.ts';
import type { IndexedPod, PrimitiveKey } from './arbitration/podIndex.ts';
import { primitiveGauges } from './arbitration/queueFigures.ts';
import {
  capSeries,
  countByKind,
  deniedAnnotations,
  looksReleased,
  passChange,
  releaseReasonOf,
  toView,
  waitingOf,
} from './metricsFigures.ts';
export const DEFAULT_MAX_PRIMITIVE_SERIES = 1000;
export const OTHER = '(other)';
/** The per-primitive figures are recomputed at most this often (scrapes in between see the last ones). */
export const FIGURES_MIN_INTERVAL_MS = 1000;
/** Release signals kept for handoff times (the oldest is dropped beyond). */
export const MAX_RELEASE_SIGNALS = 4096;

/** Why a holder's grant went back (konductor_releases_total's `reason`). */
const RELEASE_REASONS = ['PodFinished', 'PodDeleted'] as const;
export type ReleaseReason = (typeof RELEASE_REASONS)[number];

/** What the scrape-time gauges read from the controller. */
export interface MetricsSource {
  readonly isLeader: boolean;
  readonly queueDepth: number;
  readonly podIndexSize: number;
  /** Every cached primitive. */
  primitives(): Iterable<{ kind: PrimitiveKind; primitive: Primitive }>;
  /** Every managed pod in the index. */
  pods(): Iterable<IndexedPod>;
  primitive(key: PrimitiveKey): Primitive | undefined;
}

/** One status write that succeeded, as the controller made it. */
export interface WriteRecord {
  kind: PrimitiveKind;
  key: PrimitiveKey;
  before: Primitive;
  after: Primitive;
  /** The managed pods that reference the primitive. */
  pods: readonly IndexedPod[];
  /** performance.now() when the write was sent. */
  writeStartedAt: number;
}

export interface MetricsOptions {
  maxPrimitiveSeries?: number;
  /** Wall clock (ms); injectable for tests. */
  now?: () => number;
  /** Monotonic clock (ms) for durations; injectable for tests. */
  monotonic?: () => number;
  /** Add the process_* and nodejs_* metrics (default true). */
  defaultMetrics?: boolean;
}

export type ControllerMetrics = ReturnType<typeof createMetrics>;

export function createMetrics(opts: MetricsOptions = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const now = opts.now ?? Date.now;
  const monotonic = opts.monotonic ?? (() => performance.now());
  const maxSeries = opts.maxPrimitiveSeries ?? DEFAULT_MAX_PRIMITIVE_SERIES;
  const registers = [registry];
  let source: MetricsSource | undefined;
  /** When the per-primitive figures were last computed (monotonic ms). */
  let figuresAt: number | undefined;

  const kindLabel = ['kind'] as const;
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter({ name, help, labelNames, registers });
  const histogram = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets: number[],
  ) => new Histogram({ name, help, labelNames, buckets, registers });
  const grants = counter(
    'konductor_grants_total',
    'Grants of Semaphore permits and Leases (a pod granted several permits at once counts once).',
    kindLabel,
  );
  const releases = counter(
    'konductor_releases_total',
    'Grants given back, by kind and reason (PodFinished, PodDeleted); expiries are konductor_expiries_total.',
    ['kind', 'reason'] as const,
  );
  const expiries = counter(
    'konductor_expiries_total',
    'Holders that lost their grant because they held it longer than spec.ttl.',
    kindLabel,
  );
  const statusWrites = counter(
    'konductor_status_writes_total',
    'Status writes of primitives, by kind.',
    kindLabel,
  );
  const conflicts = counter(
    'konductor_status_conflicts_total',
    'Status writes lost to a resourceVersion conflict (another writer was first), by kind.',
    kindLabel,
  );
  const admissions = counter(
    'konductor_admission_reviews_total',
    'AdmissionReviews answered, by result (allowed, denied).',
    ['result'] as const,
  );
  const denials = counter(
    'konductor_admission_denials_total',
    'Admission denials, by the konductor.io/ annotation at fault (unknown: a key konductor does not know; empty: no annotation at fault).',
    ['annotation'] as const,
  );
  const agentWaits = counter('konductor_agent_waits_total', 'Wait streams opened by konductor-wait.');
  const waitSeconds = histogram(
    'konductor_wait_duration_seconds',
    "Time from a pod's admission to its grant (Semaphore, Lease) or to the opening it waited for (Barrier, Gate).",
    kindLabel,
    [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
  );
  const handoffSeconds = histogram(
    'konductor_handoff_duration_seconds',
    'Time from the moment the manager saw a holder release (pod finished or deleted, hold sidecar) to the status write that granted the next waiter.',
    kindLabel,
    [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  );
  const admissionSeconds = histogram(
    'konductor_admission_duration_seconds',
    'Time to answer one AdmissionReview, by result.',
    ['result'] as const,
    [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
  );
  const writeSeconds = histogram(
    'konductor_status_write_duration_seconds',
    'Round trip of one status write (PUT .../status) to the API server, by kind.',
    kindLabel,
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );
  const reconcileSeconds = histogram(
    'konductor_reconcile_duration_seconds',
    'Time to arbitrate and write one primitive.',
    kindLabel,
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
  );

  // ---- scrape-time gauges -------------------------------------------------------------------------
  // Not `namespace`: Prometheus attaches the scraped pod's namespace under that name.
  const primitiveLabels = ['kind', 'primitive_namespace', 'primitive'] as const;
  /** `read`, at scrape time, sets the gauge's values. */
  const gauge = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    read?: (g: Gauge<L>) => void,
  ) =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers,
      collect() {
        read?.(this);
      },
    });
  gauge('konductor_primitives', 'Primitives in the cache, by kind.', kindLabel, (count) => {
    // Registered before the four per-primitive gauges (the registry collects in order): computed once per
    // scrape for all five, and at most once a second (the figures walk every managed pod).
    if (!source) return;
    const t = monotonic();
    if (figuresAt !== undefined && t - figuresAt < FIGURES_MIN_INTERVAL_MS) return;
    figuresAt = t;
    const rows = primitiveGauges(source, now());
    for (const g of [capacity, inUse, waiting, oldestWait, count]) g.reset();
    for (const [kind, n] of countByKind(rows)) count.set({ kind }, n);
    for (const row of capSeries(rows, maxSeries)) {
      const labels = { kind: row.kind, primitive_namespace: row.namespace, primitive: row.name };
      capacity.set(labels, row.capacity);
      inUse.set(labels, row.inUse);
      waiting.set(labels, row.waiting);
      oldestWait.set(labels, row.oldestWaitSeconds);
    }
  });
  const capacity = gauge(
    'konductor_primitive_capacity',
    'Capacity of a primitive: Semaphore spec.permits, Lease 1, Barrier the arrivals it opens at, Gate its conditions.',
    primitiveLabels,
  );
  const inUse = gauge(
    'konductor_primitive_in_use',
    'Semaphore permits held, Lease held (1) or not (0), Barrier arrivals, Gate conditions met.',
    primitiveLabels,
  );
  const waiting = gauge(
    'konductor_primitive_waiting_pods',
    'Pods waiting at a primitive (bound, not finished, every earlier primitive of the pod passed).',
    primitiveLabels,
  );
  const oldestWait = gauge(
    'konductor_primitive_oldest_wait_seconds',
    'How long the longest-waiting pod at a primitive has waited, since its arrival (0 when none waits).',
    primitiveLabels,
  );
  gauge('konductor_leader', '1 when this manager is the leader (it grants), else 0.', [], (g) =>
    g.set(source?.isLeader ? 1 : 0),
  );
  gauge('konductor_workqueue_depth', 'Primitives waiting in the work queue to be reconciled.', [], (g) =>
    g.set(source?.queueDepth ?? 0),
  );
  gauge(
    'konductor_pod_index_pods',
    "Managed pods in the manager's pod index (equals the live pods labelled konductor.io/managed when the cache is in sync).",
    [],
    (g) => g.set(source?.podIndexSize ?? 0),
  );

  // Every bounded label combination starts at 0, so rate() has a series before the first event.
  for (const kind of PRIMITIVE_KINDS) {
    statusWrites.inc({ kind }, 0);
    conflicts.inc({ kind }, 0);
  }
  for (const kind of HOLDING_KINDS) {
    grants.inc({ kind }, 0);
    expiries.inc({ kind }, 0);
    for (const reason of RELEASE_REASONS) releases.inc({ kind, reason }, 0);
  }
  for (const result of ['allowed', 'denied'] as const) admissions.inc({ result }, 0);

  // ---- handoff bookkeeping --------------------------------------------------------------------------
  /** When the manager first saw each pod's release signal (monotonic ms), until a write consumes it. */
  const releaseSeen = new Map<string, number>();
  /** Primitives whose holders were released while pods waited, but whose next grant came later. */
  const pendingHandoff = new Map<PrimitiveKey, number>();
  const seen = (uid: string) => {
    if (releaseSeen.has(uid)) return;
    // Signals of pods that held nothing are never consumed: keep the newest MAX_RELEASE_SIGNALS only.
    if (releaseSeen.size >= MAX_RELEASE_SIGNALS) releaseSeen.delete(releaseSeen.keys().next().value!);
    releaseSeen.set(uid, monotonic());
  };

  return {
    registry,
    contentType: registry.contentType,
    grants,
    releases,
    expiries,
    statusWrites,
    conflicts,
    admissions,
    denials,
    agentWaits,
    waitSeconds,
    handoffSeconds,
    admissionSeconds,
    writeSeconds,
    reconcileSeconds,

    /** The controller whose caches the scrape-time gauges read. */
    observe(s: MetricsSource): void {
      source = s;
    },

    /** Prometheus text exposition of every metric. */
    render(): Promise<string> {
      return registry.metrics();
    },

    /** A managed pod changed: note when it first looked released (finished or deleted), for handoffs. */
    podChanged(type: 'added' | 'updated' | 'deleted', pod: Pod): void {
      if (type === 'deleted' || looksReleased(pod)) seen(pod.metadata.uid ?? '');
      else if (type === 'added') releaseSeen.delete(pod.metadata.uid ?? '');
    },

    /** The hold sidecar asked to release this pod's grants. */
    releaseRequested(uid: string): void {
      seen(uid);
    },

    /** A status write succeeded: grants, releases, expiries, wait and handoff times, write latency. */
    written(w: WriteRecord): void {
      const t = monotonic();
      statusWrites.inc({ kind: w.kind });
      writeSeconds.observe({ kind: w.kind }, (t - w.writeStartedAt) / 1000);
      const change = passChange(w);
      const wall = now();
      for (const pod of change.passed) {
        if (KINDS[w.kind].holds !== 'nothing') grants.inc({ kind: w.kind });
        const admitted = toView(pod, w.kind).admittedAt;
        if (admitted < Number.MAX_SAFE_INTEGER)
          waitSeconds.observe({ kind: w.kind }, Math.max(0, wall - admitted) / 1000);
      }
      let signalAt: number | undefined;
      for (const uid of change.removed) {
        const pod = w.pods.find((p) => p.pod.metadata.uid === uid);
        const reason = releaseReasonOf(pod && toView(pod, w.kind));
        if (reason === undefined) expiries.inc({ kind: w.kind });
        else releases.inc({ kind: w.kind, reason });
        const at = releaseSeen.get(uid);
        releaseSeen.delete(uid);
        if (at !== undefined) signalAt = signalAt === undefined ? at : Math.min(signalAt, at);
      }
      const pending = pendingHandoff.get(w.key);
      if (change.grantedWaiters > 0) {
        const from = signalAt ?? pending;
        if (from !== undefined) handoffSeconds.observe({ kind: w.kind }, Math.max(0, t - from) / 1000);
        pendingHandoff.delete(w.key);
      } else if (signalAt !== undefined && waitingOf(w.kind, w.after) > 0) {
        pendingHandoff.set(w.key, Math.min(signalAt, pending ?? signalAt));
      } else if (waitingOf(w.kind, w.after) === 0) {
        pendingHandoff.delete(w.key);
      }
    },

    /** One AdmissionReview answered: latency, result, and the annotations at fault of a denial. */
    admitted(
      response: { allowed?: boolean } | undefined,
      seconds: number,
      problems: readonly Pick<AnnotationProblem, 'annotation'>[],
    ): void {
      const result = response?.allowed === false ? 'denied' : 'allowed';
      admissions.inc({ result });
      admissionSeconds.observe({ result }, seconds);
      if (result === 'denied')
        for (const annotation of deniedAnnotations(problems)) denials.inc({ annotation });
    },
  };
}
