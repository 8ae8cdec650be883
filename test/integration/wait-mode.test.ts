/**
 * The scheduling-gate wait mode end to end on the real control plane (the process kubelet's scheduler respects
 * scheduling gates and nodeSelectors). Ground truth, independent of the manager's own account:
 * - a pod watcher sees every version of every pod: per Semaphore, how many of its pods are on a node with their
 *   main containers not done, at every moment; and the resourceVersion (etcd revision) at which each pod was
 *   first bound;
 * - a Semaphore / Barrier watcher sees every status version: the revision at which each pod was first granted
 *   (or the barrier opened). A grant must be in etcd before its pod is bound (a smaller revision);
 * - the main containers' own nanosecond clock readings: never more concurrent than the permits.
 */
import { describe, expect, it } from 'vitest';
import { ANNOTATIONS, SCHEDULING_GATE } from '../../api/constants.ts';
import type { Barrier, Pod, Semaphore } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import {
  mainStarted,
  namespacePods,
  podManifest,
  release,
  timed,
  untilReleased,
  waitingInInit,
} from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { recordVersions, watchObjects } from '../helpers/watchers.ts';

const ns = testNamespace('wait-mode');
const konductor = useKonductor(ns);
const client = ns.client;
const nsPods = namespacePods(ns);
const { PODS, JOBS, getPod, uniq, createSemaphore } = nsPods;
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`;
const BARRIERS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/barriers`;
const GATED = { [ANNOTATIONS.waitMode]: 'scheduling-gate' };

const rv = (o: { metadata: { resourceVersion?: string } }) => Number(o.metadata.resourceVersion);
const isGatedPod = (p: Pod) => (p.spec.schedulingGates ?? []).some((g) => g.name === SCHEDULING_GATE);
const mainDone = (p: Pod) =>
  p.status?.phase === 'Succeeded' ||
  p.status?.phase === 'Failed' ||
  ((p.status?.containerStatuses ?? []).every((c) => c.state?.terminated !== undefined) &&
    (p.status?.containerStatuses ?? []).length > 0);

/** Per pod (uid): its latest version, and the revision at which it was first seen bound. */
const latest = new Map<string, Pod>();
const boundAt = new Map<string, number>();
/** Per Semaphore name: the most of its pods on a node with their main containers not done, at any moment. */
const maxOnNode = new Map<string, number>();
watchObjects<Pod>(client, PODS, (pod) => {
  const uid = pod.metadata.uid ?? '';
  latest.set(uid, pod);
  if (pod.spec.nodeName && !boundAt.has(uid)) boundAt.set(uid, rv(pod));
  const sem = pod.metadata.annotations?.[ANNOTATIONS.semaphore];
  if (!sem) return;
  const onNode = [...latest.values()].filter(
    (p) => p.metadata.annotations?.[ANNOTATIONS.semaphore] === sem && p.spec.nodeName && !mainDone(p),
  ).length;
  maxOnNode.set(sem, Math.max(maxOnNode.get(sem) ?? 0, onNode));
});

/** Revision of the first Semaphore status version that lists each pod (uid) as a holder. */
const grantedAt = new Map<string, number>();
const { violations } = recordVersions<Semaphore>(client, SEMS, (s, _earlier, violation) => {
  for (const h of s.status?.holders ?? []) if (!grantedAt.has(h.uid)) grantedAt.set(h.uid, rv(s));
  const held = (s.status?.holders ?? []).reduce((n, h) => n + h.permits, 0);
  if (held > s.spec.permits) violation(`${held} > ${s.spec.permits}`);
});
const barrierVersions = recordVersions<Barrier>(client, BARRIERS, () => undefined);

/** A Job of `n` pods (all at once) in scheduling-gate mode on Semaphore `sem`, its container `work` running `script`. */
async function createGatedJob(name: string, sem: string, n: number, script: string): Promise<void> {
  await client.create(JOBS, {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name },
    spec: {
      completions: n,
      parallelism: n,
      backoffLimit: 0,
      template: {
        metadata: { annotations: { [ANNOTATIONS.semaphore]: sem, ...GATED } },
        spec: {
          restartPolicy: 'Never',
          terminationGracePeriodSeconds: 2,
          containers: [{ name: 'work', image: 'busybox', command: ['sh', '-c', script] }],
        },
      },
    },
  });
}

async function jobComplete(name: string, timeoutMs = 240_000): Promise<void> {
  await waitFor(
    async () => {
      const j = await client.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
        `${JOBS}/${name}`,
      );
      return j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True');
    },
    { timeoutMs, message: `Job ${name} Complete` },
  );
}

const jobPods = async (job: string) =>
  (await client.list<Pod>(PODS, { labelSelector: `job-name=${job}` })).items;

/** The most main containers of these pods that ran at once, by their own clock readings. */
async function maxConcurrent(pods: Pod[], container: string): Promise<number> {
  const intervals = await Promise.all(
    pods.map((p) => nsPods.loggedIntervalUs(p.metadata.name ?? '', container)),
  );
  let most = 0;
  for (const [start] of intervals)
    most = Math.max(most, intervals.filter(([a, b]) => a <= start && start < b).length);
  return most;
}

/** Every pod was granted (in etcd) before it was bound to a node. */
function expectGrantedBeforeBound(pods: Pod[]): void {
  for (const p of pods) {
    const uid = p.metadata.uid ?? '';
    expect(grantedAt.get(uid), `${p.metadata.name} granted`).toBeDefined();
    expect(boundAt.get(uid), `${p.metadata.name} bound`).toBeDefined();
    expect(grantedAt.get(uid)!, `${p.metadata.name}: grant before binding`).toBeLessThan(boundAt.get(uid)!);
  }
}

describe('scheduling-gate mode', () => {
  it('a Job of 20 on 2 permits never has more than 2 pods on a node; waiting pods show SchedulingGated', async () => {
    await createSemaphore('slots', 2);
    const marker = uniq('job20');
    await createGatedJob('twenty', 'slots', 20, timed(untilReleased(marker)));

    // The first two hold until the test has seen the others wait unscheduled.
    const gatedLines = await waitFor(
      async () => {
        const out = await kubectl(['get', 'pods', '-l', 'job-name=twenty', '--no-headers'], {
          namespace: ns.name,
        });
        const lines = out.stdout.trim().split('\n').filter(Boolean);
        const gated = lines.filter((l) => /\sSchedulingGated\s/.test(l));
        const running = lines.filter((l) => /\sRunning\s/.test(l));
        return lines.length === 20 && gated.length === 18 && running.length === 2 ? gated : undefined;
      },
      { timeoutMs: 90_000, message: '2 Running and 18 SchedulingGated pods' },
    );
    expect(gatedLines).toHaveLength(18);
    const waiting = (await jobPods('twenty')).filter(isGatedPod);
    expect(waiting.every((p) => !p.spec.nodeName)).toBe(true);
    expect((await client.get<Semaphore>(`${SEMS}/slots`)).status).toMatchObject({ inUse: 2, waiting: 18 });

    await release(marker);
    await jobComplete('twenty');
    const pods = await jobPods('twenty');
    expect(pods).toHaveLength(20);
    expect(maxOnNode.get('slots')).toBe(2);
    expectGrantedBeforeBound(pods);
    expect(await maxConcurrent(pods, 'work')).toBeLessThanOrEqual(2);
    // konductor-wait still ran in every pod, and passed at once (granted before it started).
    for (const p of pods.slice(0, 3)) expect(await nsPods.waitLog(p.metadata.name ?? '')).toMatch(/granted/);
    expect(violations).toEqual([]);
  }, 300_000);

  it('a Barrier of 4 counts unscheduled arrivals and releases all 4 gates when it opens', async () => {
    await client.create(BARRIERS, {
      apiVersion: 'sync.konductor.io/v1',
      kind: 'Barrier',
      metadata: { name: 'gang' },
      spec: { expected: 4 },
    });
    const create = (name: string) =>
      nsPods.createPod(name, {
        annotations: { [ANNOTATIONS.barrier]: 'gang', ...GATED },
        script: timed('true'),
      });
    for (const n of ['gang-1', 'gang-2', 'gang-3']) await create(n);
    await waitFor(async () => (await client.get<Barrier>(`${BARRIERS}/gang`)).status?.arrived === 3, {
      message: '3 unscheduled arrivals',
    });
    for (const n of ['gang-1', 'gang-2', 'gang-3']) {
      const p = await getPod(n);
      expect(p.spec.nodeName).toBeUndefined();
      expect(isGatedPod(p)).toBe(true);
      expect(p.status?.conditions?.find((c) => c.type === 'PodScheduled')?.reason).toBe('SchedulingGated');
    }
    await create('gang-4');
    await nsPods.waitForPhase(['gang-1', 'gang-2', 'gang-3', 'gang-4'], 'Succeeded', { timeoutMs: 90_000 });
    const opened = (barrierVersions.versions.get('gang') ?? []).find((b) => b.status?.phase === 'Open');
    expect(opened).toBeDefined();
    for (const n of ['gang-1', 'gang-2', 'gang-3', 'gang-4']) {
      const p = await getPod(n);
      expect(boundAt.get(p.metadata.uid ?? '')!, `${n} bound after the barrier opened`).toBeGreaterThan(
        rv(opened!),
      );
    }
  }, 150_000);

  it('a granted pod that stays unschedulable gives its permit back after its start timeout; the next pod runs', async () => {
    await createSemaphore('one', 1);
    const stuck = podManifest('stuck', {
      annotations: { [ANNOTATIONS.semaphore]: 'one', ...GATED, [ANNOTATIONS.startTimeout]: '3s' },
      script: 'true',
    });
    stuck.spec.nodeSelector = { 'konductor.io/test-node': 'nowhere' };
    await client.create(PODS, stuck);
    await waitFor(
      async () => (await client.get<Semaphore>(`${SEMS}/one`)).status?.holders[0]?.pod === 'stuck',
      {
        message: 'stuck granted',
      },
    );
    await nsPods.createPod('next', {
      annotations: { [ANNOTATIONS.semaphore]: 'one', ...GATED },
      script: timed('true'),
    });
    await nsPods.waitForPhase('next', 'Succeeded', { timeoutMs: 60_000 });
    const events = await client.list<{ reason: string; message: string; involvedObject: { name: string } }>(
      `/api/v1/namespaces/${ns.name}/events`,
      { fieldSelector: 'involvedObject.name=stuck,reason=StartTimeout' },
    );
    expect(events.items[0]?.message).toMatch(/not scheduled within its start timeout/);
    const p = await getPod('stuck');
    expect(p.spec.nodeName).toBeUndefined();
    expect(isGatedPod(p)).toBe(false); // its gate went with the grant, and cannot come back
    expect((await client.get<Semaphore>(`${SEMS}/one`)).status?.holders.map((h) => h.pod)).not.toContain(
      'stuck',
    );
  }, 120_000);

  it('a pod whose gate is removed by hand still waits in konductor-wait and never runs ungranted', async () => {
    await createSemaphore('solo', 1);
    const marker = uniq('solo');
    await nsPods.createPod('holder', {
      annotations: { [ANNOTATIONS.semaphore]: 'solo', ...GATED },
      script: timed(untilReleased(marker)),
    });
    await waitFor(
      async () => (await getPod('holder')).status?.containerStatuses?.some((c) => c.state?.running),
      {
        message: 'holder running',
      },
    );
    await nsPods.createPod('sneaky', {
      annotations: { [ANNOTATIONS.semaphore]: 'solo', ...GATED },
      script: timed('true'),
    });
    await waitFor(async () => (await client.get<Semaphore>(`${SEMS}/solo`)).status?.waiting === 1, {
      message: 'sneaky queued unscheduled',
    });
    const pod = await getPod('sneaky');
    const at = (pod.spec.schedulingGates ?? []).findIndex((g) => g.name === SCHEDULING_GATE);
    await client.patchJson(`${PODS}/sneaky`, [{ op: 'remove', path: `/spec/schedulingGates/${at}` }]);
    await waitFor(async () => waitingInInit(await getPod('sneaky')), { message: 'sneaky in konductor-wait' });
    await waitFor(async () => /waiting for semaphore .*\/solo/.test(await nsPods.waitLog('sneaky')), {
      message: 'sneaky waits for the permit',
    });
    expect(mainStarted(await getPod('sneaky'))).toBe(false);
    await release(marker);
    await nsPods.waitForPhase(['holder', 'sneaky'], 'Succeeded', { timeoutMs: 60_000 });
    const [, holderEnd] = await nsPods.loggedIntervalUs('holder', 'main');
    const [sneakyStart] = await nsPods.loggedIntervalUs('sneaky', 'main');
    expect(sneakyStart).toBeGreaterThan(holderEnd);
  }, 120_000);

  it('mixed modes share one queue: an unscheduled pod admitted first is granted before a bound one', async () => {
    await createSemaphore('mixed', 1);
    const marker = uniq('mixed');
    const sem = { [ANNOTATIONS.semaphore]: 'mixed' };
    await nsPods.createPod('mixed-holder', { annotations: sem, script: timed(untilReleased(marker)) });
    await waitFor(async () => mainStarted(await getPod('mixed-holder')), { message: 'mixed-holder runs' });
    await nsPods.createPod('mixed-gated', { annotations: { ...sem, ...GATED }, script: timed('true') });
    await waitFor(async () => (await client.get<Semaphore>(`${SEMS}/mixed`)).status?.waiting === 1, {
      message: 'mixed-gated queued unscheduled',
    });
    await nsPods.createPod('mixed-bound', { annotations: sem, script: timed('true') });
    await waitFor(async () => waitingInInit(await getPod('mixed-bound')), {
      message: 'mixed-bound waits on its node',
    });
    const queue = (await client.get<Semaphore>(`${SEMS}/mixed`)).status?.queue?.map((e) => e.pod);
    expect(queue).toEqual(['mixed-gated', 'mixed-bound']);
    await release(marker);
    await nsPods.waitForPhase(['mixed-gated', 'mixed-bound'], 'Succeeded', { timeoutMs: 60_000 });
    const [gatedStart, gatedEnd] = await nsPods.loggedIntervalUs('mixed-gated', 'main');
    const [boundStart] = await nsPods.loggedIntervalUs('mixed-bound', 'main');
    expect(gatedStart).toBeLessThan(boundStart);
    expect(boundStart).toBeGreaterThan(gatedEnd);
  }, 120_000);

  it('survives a manager crash in the middle: the rest are granted and scheduled by the next one', async () => {
    await createSemaphore('restart', 2);
    const marker = uniq('restart');
    await createGatedJob('restart', 'restart', 8, timed(untilReleased(marker)));
    await waitFor(async () => (await client.get<Semaphore>(`${SEMS}/restart`)).status?.waiting === 6, {
      timeoutMs: 60_000,
      message: '2 holders, 6 waiting',
    });
    await waitFor(async () => (await jobPods('restart')).filter(mainStarted).length === 2, {
      timeoutMs: 60_000,
      message: '2 pods running',
    });
    await konductor.install.stopManager('SIGKILL');
    await release(marker);
    // The two holders' work ends (their hold sidecars wait for the manager to hear their release); nobody is
    // granted or scheduled while the manager is down.
    await waitFor(
      async () => (await jobPods('restart')).filter((p) => p.spec.nodeName && mainDone(p)).length === 2,
      {
        timeoutMs: 60_000,
        message: 'the first two done',
      },
    );
    expect((await jobPods('restart')).filter((p) => p.spec.nodeName && !mainDone(p))).toEqual([]);
    await konductor.install.startManager();
    await jobComplete('restart');
    const pods = await jobPods('restart');
    expect(maxOnNode.get('restart')).toBe(2);
    expectGrantedBeforeBound(pods);
    expect(await maxConcurrent(pods, 'work')).toBeLessThanOrEqual(2);
    expect(violations).toEqual([]);
  }, 300_000);
});
