/**
 * One campaign round: a namespace of its own, the planned primitives and workload, the fault schedule, then
 * heal (every fault undone), drain (every pod finished, every permit back), and the checks: the status
 * invariants (checked as each version arrives), the ground truth from the pods' own clocks, and liveness.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlreadyExists, isNotFound } from '../api/kubeClient.ts';
import type { Barrier, Gate, Lease, Pod, Semaphore } from '../api/types.ts';
import { managerMetrics, procSample, sumMetric } from '../bench/common.ts';
import type { CampaignEnv } from './environment.ts';
import { MANAGER_MEMORY_LIMIT_BYTES } from './environment.ts';
import { type FaultContext, type FaultRecord, injectFault, Locks, nowUs, retryApi } from './faults.ts';
import { checkGroundTruth, type PodRuns, parseStamps } from './groundTruth.ts';
import { podFinished, podStoppedAtFailed, RoundHistory, waitExitCode } from './history.ts';
import { planRound, type RoundPlan, type RoundShape } from './plan.ts';
import { createRng, seedOf } from './random.ts';
import { type StaleGrant, StatusChecker, type Violation } from './statusChecks.ts';
import { podManifest, primitiveManifests } from './workload.ts';

/** A finished pod's permit must be back within this once the faults stopped (the issue's bound). */
export const PERMIT_RETURN_BOUND_MS = 10_000;
/** Reconciles per second at most while nothing happens (no hot loop). */
export const IDLE_RECONCILE_BOUND_PER_S = 2;
const IDLE_WINDOW_MS = 5000;

export interface RoundResult {
  seed: string;
  round: number;
  topology: RoundPlan['topology'];
  namespace: string;
  podsPlanned: number;
  podsCreated: number;
  faults: FaultRecord[];
  versionsChecked: number;
  intervalsChecked: number;
  violations: Violation[];
  /** Versions the etcd watcher missed (the checks' own integrity). */
  watchGaps: string[];
  /** The round's history as the watcher saw it, written when it has violations. */
  historyPath?: string;
  /** Holders still listed after the drain deadline although their pod was done. */
  leakedPermits: number;
  /** From the end of the last fault to every pod done and every permit back. */
  drainMs: number;
  /** Longest time a finished pod's permit took to return, counted from max(finish, heal). */
  permitReturnMaxMs: number;
  permitReturns: number;
  staleGrants: StaleGrant[];
  maxRssMiB: number;
  idleReconcilesPerSecond: number;
  podIndex: { metric: number[]; live: number };
  durationMs: number;
}

export interface RoundOptions {
  seed: string;
  round: number;
  shape: RoundShape;
  env: CampaignEnv;
  log: (line: string) => void;
  /** Drain deadline after the heal (default 240 s). */
  drainTimeoutMs?: number;
  /** Where a round with violations writes its history (every version the watcher saw); none when undefined. */
  debugDir?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SYNC = '/apis/sync.konductor.io/v1/namespaces';

/** Creates an object, retrying through outages; an existing one is fine. */
async function ensureCreated(env: CampaignEnv, path: string, body: unknown): Promise<void> {
  await retryApi(() => env.client.create(path, body), 60_000).catch((err) => {
    if (!isAlreadyExists(err)) throw err;
  });
}

async function readRuns(stampsDir: string): Promise<PodRuns[]> {
  const out: PodRuns[] = [];
  for (const file of await readdir(stampsDir).catch(() => [] as string[])) {
    const m = /^(.+)\.([0-9a-f-]{36})$/.exec(file);
    if (!m) continue;
    out.push({
      pod: m[1] as string,
      uid: m[2] as string,
      runs: parseStamps(await readFile(join(stampsDir, file), 'utf8')),
    });
  }
  return out;
}

async function podIndexMetrics(env: CampaignEnv): Promise<{ metric: number[]; live: number }> {
  const live = (await env.client.list('/api/v1/pods', { labelSelector: 'konductor.io/managed=true' })).items
    .length;
  const metric: number[] = [];
  for (const m of env.fleet.members())
    metric.push(sumMetric(await managerMetrics(m.metricsUrl), 'konductor_pod_index_pods'));
  return { metric, live };
}

async function reconcileCount(env: CampaignEnv): Promise<number> {
  let total = 0;
  for (const m of env.fleet.members())
    total += sumMetric(await managerMetrics(m.metricsUrl), 'konductor_reconcile_duration_seconds_count');
  return total;
}

export async function runRound(opts: RoundOptions): Promise<RoundResult> {
  const { env, log } = opts;
  const started = Date.now();
  const plan = planRound(opts.seed, opts.round, opts.shape);
  const rng = createRng(seedOf(opts.seed, opts.round, 'targets'));
  const ns = `campaign-r${opts.round}-${(seedOf(opts.seed, opts.round, Date.now()) % 0xffffff).toString(16)}`;
  const stampsDir = join(env.workDir, ns);
  await mkdir(stampsDir, { recursive: true });
  log(
    `round ${opts.round} (seed ${opts.seed}): ${plan.topology}, ${plan.pods.length} pods, ${plan.faults.length} faults, namespace ${ns}`,
  );

  const history = new RoundHistory(ns);
  const checker = new StatusChecker(history);
  const watchGaps: string[] = [];
  env.route.accept = (key) => history.accept(key);
  env.route.onVersion = (v) => {
    const update = history.add(v);
    if (update?.resource === 'primitive') checker.onVersion(update.kind, update.version);
  };
  env.route.onGap = (what) => watchGaps.push(what);

  await env.fleet.setTopology(plan.topology);
  await env.fleet.heal();
  await retryApi(() =>
    env.client.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }),
  );
  const m = primitiveManifests(plan, env.node.shellImage);
  for (const s of m.semaphores) await ensureCreated(env, `${SYNC}/${ns}/semaphores`, s);
  await ensureCreated(env, `${SYNC}/${ns}/leases`, m.lease);
  await ensureCreated(env, `${SYNC}/${ns}/barriers`, m.barrier);
  await ensureCreated(env, `${SYNC}/${ns}/gates`, m.gate);
  await ensureCreated(env, `/apis/batch/v1/namespaces/${ns}/jobs`, m.job);

  const t0 = Date.now();
  const ctx: FaultContext = {
    env,
    ns,
    plan,
    history,
    stampsDir,
    shellImage: env.node.shellImage,
    forceDeleted: new Map(),
    unguarded: new Set(),
    violations: [],
    t0,
    log,
  };
  const locks = new Locks();
  const creationDeadline = t0 + opts.shape.faultPhaseMs + 30_000;
  let created = 0;
  const creators = plan.pods.map(async (pod) => {
    await sleep(pod.createAtMs);
    for (;;) {
      try {
        await env.client.create(
          `/api/v1/namespaces/${ns}/pods`,
          podManifest(pod, stampsDir, env.node.shellImage),
        );
        created++;
        return;
      } catch (err) {
        // Refused while the webhook (failurePolicy Fail) or the API server is down: retry, as a controller would.
        if (isAlreadyExists(err)) {
          created++;
          return;
        }
        if (Date.now() > creationDeadline) {
          log(`  pod ${pod.name} never created: ${(err as Error).message.split('\n')[0]}`);
          return;
        }
        await sleep(300);
      }
    }
  });
  let maxRssMiB = 0;
  const sampler = setInterval(() => {
    for (const mgr of env.fleet.all()) {
      const pid = mgr.process()?.pid;
      if (!pid) continue;
      try {
        // A process that just exited (not reaped yet) has no VmRSS: NaN, skipped.
        const rss = procSample(pid).vmRssMiB;
        if (Number.isFinite(rss)) maxRssMiB = Math.max(maxRssMiB, rss);
      } catch {
        /* exited meanwhile */
      }
    }
  }, 500);
  const faults = await Promise.all(
    plan.faults.map(async (f) => {
      await sleep(Math.max(0, t0 + f.atMs - Date.now()));
      return injectFault(ctx, f, rng.fork(f.index), locks);
    }),
  );
  await Promise.all(creators);
  const lastFaultEnd = t0 + Math.max(0, ...faults.map((f) => f.endedAtMs));

  // Heal: every process resumed and running, connections restored, specs back to the plan.
  env.apiProxy.restore();
  env.agentProxy.restore();
  await env.fleet.heal();
  const p = plan.primitives;
  for (const [name, spec] of [
    ['slots', { permits: p.slots.permits, ttl: p.slots.ttl }],
    ['pool', { permits: p.pool.permits }],
  ] as const)
    await retryApi(() => env.client.patchMerge(`${SYNC}/${ns}/semaphores/${name}`, { spec })).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
  await retryApi(() =>
    env.client.patchMerge(`${SYNC}/${ns}/leases/lock`, { spec: { ttl: p.lock.ttl } }),
  ).catch((err) => {
    if (!isNotFound(err)) throw err;
  });
  if (plan.topology === 'ha') {
    const deadline = Date.now() + 60_000;
    while (!(await env.fleet.leader()) && Date.now() < deadline) await sleep(250);
  }
  const healedAt = Date.now();

  // Drain: every pod done (finished or gone), every permit back, nobody waiting.
  const drainDeadline = healedAt + (opts.drainTimeoutMs ?? 240_000);
  const drained = () => {
    for (const [uid, versions] of history.pods) {
      if (!versions.length || !history.podNow(uid)?.object) continue;
      if (!podDone(history, history.podNow(uid)?.object)) return false;
    }
    for (const name of ['slots', 'pool'] as const) {
      const s = history.primitiveNow('Semaphore', name) as Semaphore | undefined;
      if ((s?.status?.holders?.length ?? 0) > 0 || (s?.status?.waiting ?? 0) > 0) return false;
    }
    const l = history.primitiveNow('Lease', 'lock') as Lease | undefined;
    return !l?.status?.holder && (l?.status?.waiting ?? 0) === 0;
  };
  while (!drained() && Date.now() < drainDeadline) await sleep(200);
  const drainedAt = Date.now();
  const isDrained = drained();

  // Liveness.
  const violations: Violation[] = [...ctx.violations];
  if (!isDrained) violations.push({ check: 'drain', message: describeStuck(history) });
  const idleFrom = await reconcileCount(env).catch(() => Number.NaN);
  const idleStart = Date.now();
  let podIndex = await podIndexMetrics(env).catch(() => ({ metric: [] as number[], live: -1 }));
  for (let i = 0; i < 40 && podIndex.metric.some((x) => x !== podIndex.live); i++) {
    await sleep(250);
    podIndex = await podIndexMetrics(env).catch(() => podIndex);
  }
  if (podIndex.metric.some((x) => x !== podIndex.live))
    violations.push({
      check: 'pod-index',
      message: `konductor_pod_index_pods ${podIndex.metric.join(', ')} but ${podIndex.live} live managed pods`,
    });
  await sleep(Math.max(0, IDLE_WINDOW_MS - (Date.now() - idleStart)));
  const idleReconcilesPerSecond =
    ((await reconcileCount(env).catch(() => Number.NaN)) - idleFrom) / ((Date.now() - idleStart) / 1000);
  if (idleReconcilesPerSecond > IDLE_RECONCILE_BOUND_PER_S)
    violations.push({
      check: 'reconcile-rate',
      message: `${idleReconcilesPerSecond.toFixed(1)} reconciles/s while idle`,
    });
  clearInterval(sampler);
  if (maxRssMiB * 1024 * 1024 > MANAGER_MEMORY_LIMIT_BYTES)
    violations.push({
      check: 'manager-rss',
      message: `manager RSS reached ${maxRssMiB} MiB (limit 128 MiB)`,
    });

  // Every finished pod's permit back within the bound, counted from its finish or the heal, whichever is later.
  let permitReturnMaxMs = 0;
  let permitReturns = 0;
  let leakedPermits = 0;
  for (const key of new Set([...checker.grants.keys(), ...checker.adoptions.keys()])) {
    const holders = new Map([...(checker.adoptions.get(key) ?? []), ...(checker.grants.get(key) ?? [])]);
    for (const [uid, grant] of holders) {
      const done = history.pods.get(uid)?.find((v) => !v.object || podFinished(v.object));
      if (!done) continue;
      const removal = checker.removals.get(key)?.get(uid);
      if (!removal || removal.rev < done.rev) {
        if (!removal) {
          leakedPermits++;
          violations.push({
            check: 'leaked-permit',
            message: `${grant.pod} finished (rev ${done.rev}) but still holds ${key}`,
          });
        }
        continue;
      }
      const from = Math.max(done.observedAt, healedAt);
      const latency = removal.observedAt - from;
      if (removal.observedAt >= healedAt) {
        permitReturns++;
        permitReturnMaxMs = Math.max(permitReturnMaxMs, latency);
        if (latency > PERMIT_RETURN_BOUND_MS)
          violations.push({
            check: 'permit-return',
            message: `${grant.pod}'s permit of ${key} came back ${latency} ms after it finished (or the heal)`,
            versions: [`${key}@${removal.rev}`, `Pod/${grant.pod}@${done.rev}`],
          });
      }
    }
  }

  // Ground truth.
  const opened = new Map<string, number>();
  for (const kind of ['Barrier', 'Gate'] as const) {
    const name = kind === 'Barrier' ? 'start' : 'ready';
    const open = history
      .versionsOf(kind, name)
      .map((v) => v.object as Barrier | Gate | undefined)
      .find((o) => o?.status?.phase === 'Open');
    if (open?.status?.openedAt) opened.set(`${kind}/${name}`, Date.parse(open.status.openedAt));
  }
  const expired = new Set<string>();
  for (const e of history.events) {
    const ev = e.object;
    if (ev?.reason !== 'Expired' || ev.involvedObject.kind !== 'Pod') continue;
    const m2 = /lost (?:\d+ permits? of )?(semaphore|lease) [^/]+\/(\S+) \(token/.exec(ev.message);
    if (m2) expired.add(`${m2[1] === 'lease' ? 'Lease' : 'Semaphore'}/${m2[2]}/${ev.involvedObject.uid}`);
  }
  const runs = await readRuns(stampsDir);
  violations.push(...podOutcomes(plan, history, runs, ctx.forceDeleted));
  const truth = checkGroundTruth({
    pods: new Map(plan.pods.map((pp) => [pp.name, pp])),
    runs,
    forceDeleted: ctx.forceDeleted,
    grants: checker.grants,
    adoptions: checker.adoptions,
    allGrants: checker.allGrants,
    removals: checker.removals,
    allRemovals: checker.allRemovals,
    expired,
    openedAt: opened,
    observedUntil: nowUs(),
  });
  violations.push(...checker.violations, ...truth.violations);
  for (const g of watchGaps) violations.push({ check: 'watch-gap', message: g });

  let historyPath: string | undefined;
  if (violations.length > 0 && opts.debugDir) {
    historyPath = join(opts.debugDir, `${opts.seed}-r${opts.round}-history.json`);
    await mkdir(opts.debugDir, { recursive: true });
    await writeFile(historyPath, JSON.stringify(historyDump(history, t0, faults), null, 1));
  }

  // The namespace goes (its pods are done); nothing waits for it.
  env.route.accept = () => false;
  void env.client.delete(`/api/v1/namespaces/${ns}`).catch(() => undefined);

  return {
    seed: opts.seed,
    round: opts.round,
    topology: plan.topology,
    namespace: ns,
    podsPlanned: plan.pods.length,
    podsCreated: created,
    faults,
    versionsChecked: checker.versionsChecked,
    intervalsChecked: truth.intervalsChecked,
    violations,
    watchGaps,
    ...(historyPath ? { historyPath } : {}),
    leakedPermits,
    drainMs: drainedAt - lastFaultEnd,
    permitReturnMaxMs,
    permitReturns,
    staleGrants: checker.staleGrants,
    maxRssMiB,
    idleReconcilesPerSecond: Math.round(idleReconcilesPerSecond * 100) / 100,
    podIndex,
    durationMs: Date.now() - started,
  };
}

/**
 * Every planned pod ran its main container, or has a reason it did not: it was deleted first, or its wait
 * failed because its Barrier or Gate failed. And no wait container gave up (exit 2): every wait-timeout in
 * the workload is 596h or more, so one that fires is a timer that overflowed.
 */
export function podOutcomes(
  plan: RoundPlan,
  history: RoundHistory,
  runs: readonly PodRuns[],
  forceDeleted: ReadonlyMap<string, number>,
): Violation[] {
  const out: Violation[] = [];
  const failed = new Set<string>(
    (['Barrier', 'Gate'] as const).flatMap((kind) =>
      history
        .versionsOf(kind, kind === 'Barrier' ? 'start' : 'ready')
        .some((v) => (v.object as Barrier | Gate | undefined)?.status?.phase === 'Failed')
        ? [kind]
        : [],
    ),
  );
  const ran = new Set(runs.filter((r) => r.runs.length > 0).map((r) => r.uid));
  for (const pod of plan.pods) {
    for (const uid of history.podUids.get(pod.name) ?? []) {
      const versions = history.pods.get(uid) ?? [];
      // Each version's last exit of konductor-wait (a restarted one's is in its lastState).
      const waits = versions.map((v) => {
        const code = waitExitCode(v.object);
        return code === undefined ? undefined : { exitCode: code };
      });
      if (waits.some((t) => t?.exitCode === 2))
        out.push({
          check: 'wait-timeout',
          message: `${pod.name}'s konductor-wait gave up (exit 2) with wait-timeout ${pod.annotations['konductor.io/wait-timeout'] ?? 'none'}`,
        });
      if (ran.has(uid)) continue;
      const deleted =
        forceDeleted.has(uid) ||
        versions.some((v) => !v.object || v.object.metadata.deletionTimestamp !== undefined);
      const excused = waits.some((t) => t?.exitCode === 1) && pod.refs.some((r) => failed.has(r.kind));
      if (!deleted && !excused)
        out.push({
          check: 'never-ran',
          message: `${pod.name} (${uid.slice(0, 8)}) never started its main container (last phase ${versions.at(-1)?.object?.status?.phase ?? 'gone'}, wait ${JSON.stringify(waits.filter(Boolean).at(-1) ?? 'not terminated')})`,
        });
    }
  }
  return out;
}

/** Every version the watcher saw, compact, with times relative to the round's start (a violation's evidence). */
function historyDump(history: RoundHistory, t0: number, faults: FaultRecord[]) {
  const at = (ms: number) => `${((ms - t0) / 1000).toFixed(3)}s ${new Date(ms).toISOString().slice(11, 23)}`;
  const state = (s: { state?: object } | undefined) => (s?.state ? Object.keys(s.state).join('') : undefined);
  return {
    t0: new Date(t0).toISOString(),
    faults,
    primitives: Object.fromEntries(
      [...history.primitives].map(([key, versions]) => [
        key,
        versions.map((v) => {
          const o = v.object as
            | {
                spec: unknown;
                status?: {
                  phase?: string;
                  holders?: unknown[];
                  holder?: unknown;
                  waiting?: number;
                  nextToken?: number;
                };
              }
            | undefined;
          const holders = (o?.status?.holders ?? (o?.status?.holder ? [o.status.holder] : [])) as {
            pod: string;
            token: number;
            permits?: number;
            grantedAt?: string;
            acquiredAt?: string;
            adopted?: boolean;
          }[];
          return {
            rev: v.rev,
            at: at(v.observedAt),
            uid: v.uid.slice(0, 8),
            ...(o
              ? {
                  spec: o.spec,
                  phase: o.status?.phase,
                  holders: holders.map(
                    (h) =>
                      `${h.pod}:${h.adopted ? 'adopted' : h.token}:${h.permits ?? 1}@${(h.grantedAt ?? h.acquiredAt)?.slice(11, 23)}`,
                  ),
                  waiting: o.status?.waiting,
                  nextToken: o.status?.nextToken,
                }
              : { deleted: true }),
          };
        }),
      ]),
    ),
    pods: [...history.pods].map(([uid, versions]) => ({
      name: versions[0]?.name,
      uid: uid.slice(0, 8),
      versions: versions.map((v) => {
        const p = v.object;
        const init = (n: string) => p?.status?.initContainerStatuses?.find((c) => c.name === n);
        return {
          rev: v.rev,
          at: at(v.observedAt),
          ...(p
            ? {
                phase: p.status?.phase,
                deleting: p.metadata.deletionTimestamp !== undefined,
                managed: p.metadata.labels?.['konductor.io/managed'],
                wait: state(init('konductor-wait')),
                hold: state(init('konductor-hold')),
                main: p.status?.containerStatuses
                  ?.map(
                    (c) =>
                      `${state(c)}${c.state?.terminated ? `(${c.state.terminated.exitCode})` : ''}/${c.restartCount}`,
                  )
                  .join(','),
              }
            : { deleted: true }),
        };
      }),
    })),
    events: history.events.map((e) => ({
      at: at(e.observedAt),
      reason: e.object?.reason,
      object: `${e.object?.involvedObject.kind}/${e.object?.involvedObject.name}`,
      message: e.object?.message,
    })),
  };
}

/** Finished, or stopped for good at a Failed Barrier or Gate (a pod the drain waits for no longer). */
function podDone(history: RoundHistory, pod: Pod | undefined): boolean {
  return (
    podFinished(pod) ||
    podStoppedAtFailed(
      pod,
      (kind, name) =>
        (history.primitiveNow(kind, name) as Barrier | Gate | undefined)?.status?.phase === 'Failed',
    )
  );
}

function describeStuck(history: RoundHistory): string {
  const stuck: string[] = [];
  for (const [uid] of history.pods) {
    const v = history.podNow(uid);
    if (v?.object && !podDone(history, v.object))
      stuck.push(`${v.name} (${v.object.status?.phase ?? 'no phase'})`);
  }
  const holders: string[] = [];
  for (const name of ['slots', 'pool'] as const) {
    const s = history.primitiveNow('Semaphore', name) as Semaphore | undefined;
    for (const h of s?.status?.holders ?? []) holders.push(`${name}:${h.pod}`);
    if (s?.status?.waiting) holders.push(`${name}: ${s.status.waiting} waiting`);
  }
  const l = history.primitiveNow('Lease', 'lock') as Lease | undefined;
  if (l?.status?.holder) holders.push(`lock:${l.status.holder.pod}`);
  if (l?.status?.waiting) holders.push(`lock: ${l.status.waiting} waiting`);
  return `not drained: pods not done: ${stuck.join(', ') || 'none'}; still held or waiting: ${holders.join(', ') || 'none'}`;
}
