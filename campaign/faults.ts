/**
 * The fault injectors: one function per kind (plan.ts lists and describes them). Each does its fault against
 * the live system, undoes what it must (a paused process resumed, a cut connection restored, a policy
 * re-bound), and returns a record of what it did. Faults that must be refused (metadata edits, forged status
 * writes, a release with a foreign token, durations beyond the bound) add a violation when they are not.
 *
 * Faults on the same component (the control plane; the managers) take a lock, so two of them never race on
 * one process; everything else overlaps freely, as it would in a cluster.
 */

import { isAlreadyExists, isNotFound, KubeApiError, type KubeClient } from '../api/kubeClient.ts';
import type { Pod, Semaphore } from '../api/types.ts';
import type { DevCluster } from '../devcluster/controlPlane.ts';
import { compactEtcd, restartEtcd } from '../devcluster/etcd.ts';
import type { KonductorInstall } from '../devcluster/konductor.ts';
import { mintPodToken, postAgent } from '../test/helpers/agentApi.ts';
import type { TcpProxy } from '../test/helpers/tcpProxy.ts';
import { containerProcess } from './containerProcess.ts';
import type { EtcdWatcher } from './etcdWatch.ts';
import type { ManagerFleet } from './fleet.ts';
import { podFinished, podRunning, type RoundHistory } from './history.ts';
import type { FaultKind, PlannedFault, RoundPlan } from './plan.ts';
import type { Rng } from './random.ts';
import type { Violation } from './statusChecks.ts';
import { podManifest } from './workload.ts';

export interface FaultRecord {
  index: number;
  kind: FaultKind;
  plannedAtMs: number;
  /** ms after the round's start */
  startedAtMs: number;
  endedAtMs: number;
  /** What was done, in words (targets, refusals). */
  detail: string;
  /** False when there was nothing to do it to (no running holder): not counted as injected. */
  injected: boolean;
}

export interface FaultEnv {
  cluster: DevCluster;
  client: KubeClient;
  install: KonductorInstall;
  fleet: ManagerFleet;
  apiProxy: TcpProxy;
  agentProxy: TcpProxy;
  watcher: EtcdWatcher;
}

export interface FaultContext {
  env: FaultEnv;
  ns: string;
  plan: RoundPlan;
  history: RoundHistory;
  stampsDir: string;
  /** The workload's container image (the node's shell image). */
  shellImage: string;
  /** Pod UID -> when the API server answered its force deletion, µs. */
  forceDeleted: Map<string, number>;
  /** Pods whose konductor metadata was edited with the guards off. */
  unguarded: Set<string>;
  violations: Violation[];
  /** Round start (ms since the epoch). */
  t0: number;
  log: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** Retries an API call through outages (connection errors, 5xx, 429) for up to `timeoutMs`. */
export async function retryApi<T>(fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 100;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const status = err instanceof KubeApiError ? err.statusCode : 0;
      const transient = status === 0 || status >= 500 || status === 429;
      if (!transient || Date.now() > deadline) throw err;
      await sleep(delay);
      delay = Math.min(delay * 2, 1000);
    }
  }
}

/** Serializes faults on one component. */
export class Locks {
  private readonly tails = new Map<string, Promise<unknown>>();
  async with<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(name) ?? Promise.resolve();
    const run = before.then(fn, fn);
    this.tails.set(
      name,
      run.catch(() => undefined),
    );
    return run;
  }
}

interface RunningHolder {
  pod: string;
  uid: string;
  primitive: string;
}

/** Holders whose main container runs and that are not being deleted, from the watcher's latest versions. */
export function runningHolders(history: RoundHistory): RunningHolder[] {
  const out: RunningHolder[] = [];
  const seen = new Set<string>();
  const candidates: { primitive: string; uid: string; pod: string }[] = [];
  for (const name of ['slots', 'pool'] as const) {
    const s = history.primitiveNow('Semaphore', name) as Semaphore | undefined;
    for (const h of s?.status?.holders ?? [])
      candidates.push({ primitive: `Semaphore/${name}`, uid: h.uid, pod: h.pod });
  }
  const lease = history.primitiveNow('Lease', 'lock') as
    | { status?: { holder?: { uid: string; pod: string } } }
    | undefined;
  if (lease?.status?.holder)
    candidates.push({ primitive: 'Lease/lock', uid: lease.status.holder.uid, pod: lease.status.holder.pod });
  for (const c of candidates) {
    if (seen.has(c.uid)) continue;
    const pod = history.podNow(c.uid)?.object;
    if (!pod || pod.metadata.deletionTimestamp || podFinished(pod) || !podRunning(pod)) continue;
    seen.add(c.uid);
    out.push(c);
  }
  return out;
}

/** Running holders, waiting up to `timeoutMs` for one (pods may still be starting, or held up by an outage). */
async function holdersSoon(
  ctx: FaultContext,
  accept: (h: RunningHolder) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<RunningHolder[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = runningHolders(ctx.history).filter(accept);
    if (found.length > 0 || Date.now() > deadline) return found;
    await sleep(200);
  }
}

const podPath = (ns: string, name: string) => `/api/v1/namespaces/${ns}/pods/${name}`;

async function forceDelete(ctx: FaultContext, target: RunningHolder): Promise<void> {
  await retryApi(() =>
    ctx.env.client.delete(podPath(ctx.ns, target.pod), {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      gracePeriodSeconds: 0,
      preconditions: { uid: target.uid },
    }),
  ).catch((err) => {
    if (!isNotFound(err) && !(err instanceof KubeApiError && err.statusCode === 409)) throw err;
  });
  ctx.forceDeleted.set(target.uid, nowUs());
}

/** Creates a planned pod again under its name (after a force deletion), retrying through outages. */
async function recreatePod(ctx: FaultContext, name: string): Promise<void> {
  const planned = ctx.plan.pods.find((p) => p.name === name);
  if (!planned) return;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await ctx.env.client.create(
        `/api/v1/namespaces/${ctx.ns}/pods`,
        podManifest(planned, ctx.stampsDir, ctx.shellImage),
      );
      return;
    } catch (err) {
      if (isAlreadyExists(err) || Date.now() > deadline) return;
      await sleep(200);
    }
  }
}

/** A token bound to a running holder (audience konductor unless `audience` is false). */
const podToken = (ctx: FaultContext, pod: RunningHolder, audience: boolean) =>
  retryApi(() =>
    mintPodToken(
      ctx.env.client,
      ctx.ns,
      { name: pod.pod, uid: pod.uid },
      audience ? ['konductor'] : undefined,
    ),
  );

/** The API server's words of a refusal (without the request line). */
const refusedMessage = (err: unknown) =>
  err instanceof KubeApiError ? err.message.split(': ').slice(1).join(': ').slice(0, 200) : String(err);

type Injector = (ctx: FaultContext, f: PlannedFault, rng: Rng, locks: Locks) => Promise<string | undefined>;

const NOTHING = undefined;

const injectors: Record<FaultKind, Injector> = {
  'manager-sigkill': (ctx, _f, _rng, locks) =>
    locks.with('managers', async () => {
      const m = await ctx.env.fleet.leaderSoon();
      const pid = m ? ctx.env.fleet.crash(m) : undefined;
      return pid ? `SIGKILL ${m?.name} (pid ${pid})` : NOTHING;
    }),

  'manager-sigstop': async (ctx, f, _rng, locks) => {
    const stopped = await locks.with('managers', async () => {
      const m = await ctx.env.fleet.leaderSoon();
      const proc = m?.process();
      if (!m || !proc) return undefined;
      proc.child.kill('SIGSTOP');
      return { m, proc };
    });
    if (!stopped) return NOTHING;
    await sleep(f.params.durationMs ?? 16_000);
    if (!stopped.proc.exitInfo) stopped.proc.child.kill('SIGCONT');
    return `SIGSTOP ${stopped.m.name} (pid ${stopped.proc.pid}) for ${f.params.durationMs} ms, then SIGCONT`;
  },

  'second-manager': async (ctx, f) => {
    const extra = await ctx.env.fleet.startExtra();
    const pid = extra.process()?.pid;
    await sleep(f.params.durationMs ?? 5000);
    await ctx.env.fleet.stopExtra(extra, f.params.signal ?? 'SIGTERM');
    return `extra manager without leader election (pid ${pid}) for ${f.params.durationMs} ms, stopped with ${f.params.signal}`;
  },

  'apiserver-sigkill': (ctx, _f, _rng, locks) =>
    locks.with('control-plane', async () => {
      await ctx.env.cluster.restartApiserver('SIGKILL');
      return 'kube-apiserver SIGKILL and restarted';
    }),

  'apiserver-sigkill-compacted': (ctx, _f, _rng, locks) =>
    locks.with('control-plane', async () => {
      const at = await compactEtcd(ctx.env.cluster.etcdUrl, ctx.env.watcher.revision);
      await ctx.env.cluster.restartApiserver('SIGKILL');
      return `etcd compacted at ${at}; kube-apiserver SIGKILL and restarted`;
    }),

  'etcd-restart': (ctx, f, _rng, locks) =>
    locks.with('control-plane', async () => {
      await restartEtcd(ctx.env.cluster, f.params.signal ?? 'SIGKILL');
      return `etcd ${f.params.signal} and restarted`;
    }),

  'pod-recreated-during-outage': (ctx, f, rng, locks) =>
    locks.with('control-plane', async () => {
      const holders = await holdersSoon(ctx);
      if (holders.length === 0) return NOTHING;
      const target = rng.pick(holders);
      ctx.env.apiProxy.cut();
      try {
        await forceDelete(ctx, target);
        await recreatePod(ctx, target.pod);
        await sleep(200);
        const at = await compactEtcd(ctx.env.cluster.etcdUrl, ctx.env.watcher.revision);
        await sleep(f.params.durationMs ?? 2000);
        return `managers cut off the API server for ${f.params.durationMs} ms; holder ${target.pod} (${target.primitive}) force-deleted and recreated; etcd compacted at ${at}`;
      } finally {
        ctx.env.apiProxy.restore();
      }
    }),

  'force-delete-manager-down': (ctx, f, rng, locks) =>
    locks.with('managers', async () => {
      const holders = await holdersSoon(ctx);
      if (holders.length === 0) return NOTHING;
      const target = rng.pick(holders);
      await ctx.env.fleet.stopAll('SIGKILL');
      try {
        await forceDelete(ctx, target);
        await sleep(f.params.durationMs ?? 2000);
      } finally {
        await ctx.env.fleet.startAll();
      }
      return `managers stopped; holder ${target.pod} (${target.primitive}) force-deleted; managers started after ${f.params.durationMs} ms`;
    }),

  'graceful-delete': async (ctx, _f, rng) => {
    const holders = await holdersSoon(ctx);
    if (holders.length === 0) return NOTHING;
    const target = rng.pick(holders);
    // What the DELETE did, in the schedule: a graceful deletion answers the pod with its deletionTimestamp.
    const outcome = await retryApi(() =>
      ctx.env.client.delete<Pod>(podPath(ctx.ns, target.pod), {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        preconditions: { uid: target.uid },
      }),
    ).then(
      (pod) =>
        pod?.metadata?.deletionTimestamp
          ? `deletionTimestamp ${pod.metadata.deletionTimestamp}`
          : 'answered without a deletionTimestamp',
      (err) => {
        if (isNotFound(err)) return 'already gone (404)';
        if (err instanceof KubeApiError && err.statusCode === 409) return 'uid precondition failed (409)';
        throw err;
      },
    );
    return `holder ${target.pod} (${target.primitive}) deleted with its 30 s grace period (it finishes its work): ${outcome}`;
  },

  'hold-killed': async (ctx, f, rng) => {
    const holders = await holdersSoon(ctx);
    const withPid = holders.flatMap((h) => {
      const pod = ctx.history.podNow(h.uid)?.object as Pod | undefined;
      const id = pod?.status?.initContainerStatuses?.find((s) => s.name === 'konductor-hold')?.containerID;
      // process://<pid> (process kubelet) or containerd://<id> (real node): the agent's host process.
      const pid = containerProcess(id, 'konductor-agent');
      return pid ? [{ ...h, pid }] : [];
    });
    if (withPid.length === 0) return NOTHING;
    const target = rng.pick(withPid);
    try {
      process.kill(target.pid, f.params.signal ?? 'SIGKILL');
    } catch {
      return NOTHING;
    }
    return `konductor-hold of ${target.pod} (${target.primitive}, pid ${target.pid}) sent ${f.params.signal}`;
  },

  'foreign-token-release': async (ctx, _f, rng) => {
    // The victim may be gone by the time its token is asked for (another fault deleted it): pick another.
    let tokens: { victim: RunningHolder; token: string; plain: string } | undefined;
    for (let attempt = 0; attempt < 3 && !tokens; attempt++) {
      const holders = await holdersSoon(ctx);
      if (holders.length === 0) return NOTHING;
      const victim = rng.pick(holders);
      try {
        tokens = {
          victim,
          token: await podToken(ctx, victim, true),
          plain: await podToken(ctx, victim, false),
        };
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    if (!tokens) return NOTHING;
    const { victim, token, plain } = tokens;
    const call = async (t: string) => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          return await postAgent(ctx.env.install.url, ctx.env.install.caPem, '/v1/release', t, {
            timeoutMs: 5000,
          });
        } catch (err) {
          if (Date.now() > deadline) return { status: 0, body: String(err) };
          await sleep(300);
        }
      }
    };
    const minted = await call(token);
    const unaudienced = await call(plain);
    if (minted.status === 200) {
      const released = (JSON.parse(minted.body) as { released?: unknown[] }).released ?? [];
      if (released.length > 0 && !podFinished(ctx.history.podNow(victim.uid)?.object))
        ctx.violations.push({
          check: 'foreign-release',
          message: `a token minted for running holder ${victim.pod} released ${JSON.stringify(released)}`,
        });
    }
    if (unaudienced.status !== 401 && unaudienced.status !== 0)
      ctx.violations.push({
        check: 'foreign-release',
        message: `a token without audience konductor got ${unaudienced.status}: ${unaudienced.body.slice(0, 200)}`,
      });
    return `release for running holder ${victim.pod} with a minted token: ${minted.status} ${minted.body.slice(0, 160)}; without the audience: ${unaudienced.status}`;
  },

  'metadata-edit-refused': async (ctx, f, rng) => {
    const holders = await holdersSoon(ctx, (h) => !ctx.unguarded.has(h.uid));
    if (holders.length === 0) return NOTHING;
    const target = rng.pick(holders);
    try {
      await retryApi(
        () => ctx.env.client.patchMerge(podPath(ctx.ns, target.pod), editPatch(f.params.edit, target)),
        10_000,
      );
    } catch (err) {
      if (isNotFound(err) || otherPod(err))
        return `${f.params.edit} on holder ${target.pod}: not sent (the holder was deleted or replaced)`;
      if (err instanceof KubeApiError && err.statusCode >= 400 && err.statusCode < 500)
        return `${f.params.edit} on holder ${target.pod}: refused (${refusedMessage(err)})`;
      return `${f.params.edit} on holder ${target.pod}: not sent (${refusedMessage(err)})`;
    }
    ctx.unguarded.add(target.uid);
    ctx.violations.push({
      check: 'metadata-immutable',
      message: `${f.params.edit} on running holder ${target.pod} was accepted`,
    });
    return `${f.params.edit} on holder ${target.pod}: ACCEPTED`;
  },

  'metadata-edit-unguarded': (ctx, f, rng, locks) =>
    locks.with('admission', async () => {
      const holders = await holdersSoon(ctx, (h) => !ctx.unguarded.has(h.uid));
      if (holders.length === 0) return NOTHING;
      const target = rng.pick(holders);
      const restore = await unguard(ctx);
      let outcome: string;
      try {
        const deadline = Date.now() + 10_000;
        for (;;) {
          try {
            await ctx.env.client.patchMerge(podPath(ctx.ns, target.pod), editPatch(f.params.edit, target));
            outcome = 'got through';
            ctx.unguarded.add(target.uid);
            break;
          } catch (err) {
            if (isNotFound(err) || otherPod(err) || Date.now() > deadline) {
              outcome = `still refused (${refusedMessage(err)})`;
              break;
            }
            await sleep(200); // the policy's removal reaches the API server's admission a moment later
          }
        }
      } finally {
        await restore();
      }
      return `${f.params.edit} on holder ${target.pod} with the guards off: ${outcome}; guards restored`;
    }),

  'status-write-refused': async (ctx, f) => {
    const name = f.params.semaphore ?? 'slots';
    const path = `/apis/sync.konductor.io/v1/namespaces/${ctx.ns}/semaphores/${name}`;
    const sem = await retryApi(() => ctx.env.client.get<Semaphore>(path)).catch(() => undefined);
    if (!sem?.status) return NOTHING;
    const forged = {
      ...sem,
      status: {
        ...sem.status,
        holders: [
          ...(sem.status.holders ?? []),
          {
            pod: 'forged',
            uid: '00000000-0000-4000-8000-000000000000',
            permits: 1,
            token: 1,
            grantedAt: new Date().toISOString(),
          },
        ],
      },
    };
    try {
      await retryApi(() => ctx.env.client.replace(`${path}/status`, forged), 10_000);
    } catch (err) {
      if (err instanceof KubeApiError && err.statusCode >= 400 && err.statusCode < 500)
        return `forged holder in Semaphore ${name}'s status by the admin: refused (${refusedMessage(err)})`;
      return `forged status write not sent (${refusedMessage(err)})`;
    }
    ctx.violations.push({
      check: 'status-writer',
      message: `the admin's forged status of Semaphore ${name} was accepted`,
    });
    return `forged holder in Semaphore ${name}'s status: ACCEPTED`;
  },

  'primitive-recreate': async (ctx, f) => {
    const which = f.params.primitive ?? 'slots';
    const plural = which === 'lock' ? 'leases' : 'semaphores';
    const path = `/apis/sync.konductor.io/v1/namespaces/${ctx.ns}/${plural}/${which}`;
    const current = await retryApi(() =>
      ctx.env.client.get<{ kind: string; apiVersion: string; spec: unknown; metadata: { uid: string } }>(
        path,
      ),
    ).catch(() => undefined);
    if (!current) return NOTHING;
    const holders = runningHolders(ctx.history).filter((h) => h.primitive.endsWith(`/${which}`)).length;
    await retryApi(() => ctx.env.client.delete(path)).catch((err) => {
      if (!isNotFound(err)) throw err;
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await ctx.env.client.create(path.slice(0, path.lastIndexOf('/')), {
          apiVersion: current.apiVersion,
          kind: current.kind,
          metadata: { name: which },
          spec: current.spec,
        });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(100); // still being deleted, or an outage
      }
    }
    return `${current.kind} ${which} deleted and recreated with ${holders} running holder(s)`;
  },

  'permits-change': async (ctx, f) => {
    const name = f.params.semaphore ?? 'slots';
    await retryApi(() =>
      ctx.env.client.patchMerge(`/apis/sync.konductor.io/v1/namespaces/${ctx.ns}/semaphores/${name}`, {
        spec: { permits: f.params.permits },
      }),
    );
    return `Semaphore ${name} spec.permits set to ${f.params.permits}`;
  },

  'durations-near-limits': async (ctx, f) => {
    const which = f.params.primitive ?? 'slots';
    const plural = which === 'lock' ? 'leases' : 'semaphores';
    const path = `/apis/sync.konductor.io/v1/namespaces/${ctx.ns}/${plural}/${which}`;
    const planned = which === 'lock' ? ctx.plan.primitives.lock.ttl : ctx.plan.primitives.slots.ttl;
    await retryApi(() => ctx.env.client.patchMerge(path, { spec: { ttl: f.params.ttl } }));
    const refusals: string[] = [];
    try {
      await retryApi(() =>
        ctx.env.client.create(`/apis/sync.konductor.io/v1/namespaces/${ctx.ns}/semaphores`, {
          apiVersion: 'sync.konductor.io/v1',
          kind: 'Semaphore',
          metadata: { name: 'beyond-bound' },
          spec: { permits: 1, ttl: '8761h' },
        }),
      );
      ctx.violations.push({ check: 'duration-bound', message: 'a Semaphore with ttl 8761h was accepted' });
    } catch (err) {
      refusals.push(`ttl 8761h: ${refusedMessage(err)}`);
    }
    const pod = podManifest(
      {
        ...ctx.plan.pods[0]!,
        name: 'beyond-bound',
        annotations: { 'konductor.io/semaphore': 'pool', 'konductor.io/wait-timeout': '8761h' },
      },
      ctx.stampsDir,
      ctx.shellImage,
    );
    try {
      await retryApi(() => ctx.env.client.create(`/api/v1/namespaces/${ctx.ns}/pods`, pod));
      ctx.violations.push({ check: 'duration-bound', message: 'a pod with wait-timeout 8761h was admitted' });
    } catch (err) {
      refusals.push(`wait-timeout 8761h: ${refusedMessage(err)}`);
    }
    await sleep(f.params.durationMs ?? 3000);
    await retryApi(() => ctx.env.client.patchMerge(path, { spec: { ttl: planned } }));
    return `${plural} ${which} ttl ${f.params.ttl} for ${f.params.durationMs} ms, then ${planned}; refused: ${refusals.join('; ')}`;
  },

  'agent-connection-cut': async (ctx, f) => {
    const before = ctx.env.agentProxy.stats().cut;
    ctx.env.agentProxy.cut();
    const severed = ctx.env.agentProxy.stats().cut - before;
    await sleep(f.params.durationMs ?? 1000);
    ctx.env.agentProxy.restore();
    return `${severed} agent connection(s) cut; new ones refused for ${f.params.durationMs} ms`;
  },
};

/**
 * The edit of one holder, as a merge patch bound to its UID: on a pod recreated under the name meanwhile the
 * API server refuses it (422, metadata.uid is immutable) instead of editing a pod the fault did not pick.
 */
export function editPatch(edit: string | undefined, target: Pick<RunningHolder, 'uid' | 'primitive'>) {
  const uid = target.uid;
  if (edit === 'remove-label') return { metadata: { uid, labels: { 'konductor.io/managed': null } } };
  if (edit === 'add-annotation') return { metadata: { uid, annotations: { 'konductor.io/priority': '7' } } };
  const kind = target.primitive.startsWith('Lease') ? 'lease' : 'semaphore';
  return { metadata: { uid, annotations: { [`konductor.io/${kind}`]: 'elsewhere' } } };
}

/** The edit was refused because the pod under the name is another one (see editPatch). */
const otherPod = (err: unknown) =>
  err instanceof KubeApiError && err.statusCode === 422 && err.message.includes('metadata.uid');

const ADMISSION = '/apis/admissionregistration.k8s.io/v1';

/**
 * Turns the metadata guards off: the immutable-metadata policy binding deleted, the webhook's pod rule narrowed
 * to CREATE. Returns the function that turns them back on (and waits until a guarded edit is refused again).
 */
async function unguard(ctx: FaultContext): Promise<() => Promise<void>> {
  const { client, install } = ctx.env;
  const bindingPath = `${ADMISSION}/validatingadmissionpolicybindings/${install.webhookConfigurationName}-immutable-metadata`;
  const webhookPath = `${ADMISSION}/mutatingwebhookconfigurations/${install.webhookConfigurationName}`;
  const binding = await retryApi(() =>
    client.get<{ apiVersion: string; kind: string; metadata: Record<string, unknown>; spec: unknown }>(
      bindingPath,
    ),
  );
  await retryApi(() => client.delete(bindingPath));
  await retryApi(() =>
    client.patchJson(webhookPath, [
      { op: 'replace', path: '/webhooks/0/rules/0/operations', value: ['CREATE'] },
    ]),
  );
  return async () => {
    await retryApi(() =>
      client.patchJson(webhookPath, [
        { op: 'replace', path: '/webhooks/0/rules/0/operations', value: ['CREATE', 'UPDATE'] },
      ]),
    );
    await retryApi(() =>
      client.create(`${ADMISSION}/validatingadmissionpolicybindings`, {
        apiVersion: binding.apiVersion,
        kind: binding.kind,
        metadata: { name: binding.metadata.name, labels: binding.metadata.labels },
        spec: binding.spec,
      }),
    ).catch((err) => {
      if (!isAlreadyExists(err)) throw err;
    });
  };
}

/** Injects one planned fault; never throws (a failed injection is recorded as such). */
export async function injectFault(
  ctx: FaultContext,
  f: PlannedFault,
  rng: Rng,
  locks: Locks,
): Promise<FaultRecord> {
  const startedAtMs = Date.now() - ctx.t0;
  let detail: string | undefined;
  let failed = false;
  try {
    detail = await injectors[f.kind](ctx, f, rng, locks);
  } catch (err) {
    failed = true;
    detail = `injection failed: ${(err as Error).message.split('\n')[0]}`;
  }
  const rec: FaultRecord = {
    index: f.index,
    kind: f.kind,
    plannedAtMs: f.atMs,
    startedAtMs,
    endedAtMs: Date.now() - ctx.t0,
    detail: detail ?? 'skipped: no target',
    injected: detail !== undefined && !failed,
  };
  ctx.log(`  fault ${f.index} ${f.kind} @${(startedAtMs / 1000).toFixed(1)}s: ${rec.detail}`);
  return rec;
}
