/**
 * The Semaphore end to end on the real control plane: webhook injection, the process kubelet running the
 * injected agent, the controller arbitrating through status. An independent watcher checks the safety
 * invariant on every status version the API server publishes.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Pod, Semaphore } from '../../api/types.ts';
import { REPO_ROOT } from '../../devcluster/konductor.ts';
import { mintPodToken, postAgent } from '../helpers/agentApi.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import {
  mainRunning,
  namespacePods,
  RELEASE_DIR,
  release,
  untilReleased as releaseLoop,
  timed,
  trapsTerm,
} from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { recordVersions } from '../helpers/watchers.ts';

const ns = testNamespace('semaphore');
const konductor = useKonductor(ns);
const client = ns.client;
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`;
const nsPods = namespacePods(ns);
const { PODS, getPod, uniq } = nsPods;

/** Every Semaphore status version seen, and every violation of "held permits <= spec.permits". */
const { versions, violations } = recordVersions<Semaphore>(client, SEMS, (s, _earlier, violation) => {
  const held = (s.status?.holders ?? []).reduce((n, h) => n + h.permits, 0);
  if (held > s.spec.permits) violation(`${held} > ${s.spec.permits}`);
});

async function createSemaphore(name: string, permits: number, ttl?: string): Promise<void> {
  await client.create(SEMS, {
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Semaphore',
    metadata: { name },
    spec: { permits, ...(ttl ? { ttl } : {}) },
  });
}

const createPod = (name: string, annotations: Record<string, string>, script = 'exit 0') =>
  nsPods.createPod(name, { annotations, script });

const getSem = (name: string) => client.get<Semaphore>(`${SEMS}/${name}`);
const holdersOf = async (name: string) => ((await getSem(name)).status?.holders ?? []).map((h) => h.pod);

/** Force-deletion hand-over times measured by the test (printed for the report, never asserted on speed). */
const forcedHandoverMs: number[] = [];
afterAll(() => {
  if (forcedHandoverMs.length > 0)
    process.stdout.write(
      `force deletion -> next holder in the status: ${forcedHandoverMs.map((m) => `${m.toFixed(0)} ms`).join(', ')}\n`,
    );
});

/** A script that runs until the test releases the marker (release(marker) creates the file). */
const untilReleased = (marker: string) => `${releaseLoop(marker)}; echo released`;

describe('the user story: a Job of 6 pods on a Semaphore of 2 permits', () => {
  it('injects, queues, grants two at a time, completes, and returns every permit', async () => {
    const sem = readFileSync(join(REPO_ROOT, 'examples/semaphore.yaml'), 'utf8');
    const job = readFileSync(join(REPO_ROOT, 'examples/semaphore-job.yaml'), 'utf8');
    await kubectl(['apply', '-f', '-'], { namespace: ns.name, input: sem });
    // Hold the first two until the others are seen waiting, so the test observes the queue.
    const gate = uniq('story');
    await kubectl(['apply', '-f', '-'], {
      namespace: ns.name,
      input: job.replace(/sleep 2; echo done/, timed(untilReleased(gate))),
    });

    const waiting = await waitFor(
      async () => {
        const out = await kubectl(['get', 'pods', '-l', 'job-name=batch', '--no-headers'], {
          namespace: ns.name,
        });
        const lines = out.stdout.trim().split('\n').filter(Boolean);
        const init = lines.filter((l) => /\sInit:0\/2\s/.test(l));
        const running = lines.filter((l) => /\sRunning\s/.test(l));
        return lines.length === 6 && init.length === 4 && running.length === 2 ? init : undefined;
      },
      { timeoutMs: 60_000, message: '2 Running and 4 Init:0/2 pods' },
    );

    const printed = await kubectl(['get', 'semaphore', 'batch-slots'], { namespace: ns.name });
    expect(printed.stdout).toMatch(/NAME\s+PERMITS\s+IN-USE\s+WAITING\s+OLDEST-WAIT\s+PHASE\s+AGE/);
    expect(printed.stdout).toMatch(/batch-slots\s+2\s+2\s+4\s+\d+s\s+Full\s/);

    const waitingPod = waiting[0]!.split(/\s+/)[0]!;
    const logs = await waitFor(
      async () => {
        const log = await nsPods.waitLog(waitingPod);
        return /waiting for semaphore .*\/batch-slots: position \d of 4 \(2\/2 permits in use\)/.test(log)
          ? log
          : undefined;
      },
      { message: 'a progress line in the konductor-wait log' },
    );
    expect(logs).toContain(`waiting for semaphore ${ns.name}/batch-slots`);

    await release(gate);
    await waitFor(
      async () => {
        const j = await client.get<{ status?: { conditions?: { type: string; status: string }[] } }>(
          `/apis/batch/v1/namespaces/${ns.name}/jobs/batch`,
        );
        return j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True');
      },
      { timeoutMs: 120_000, message: 'Job batch Complete' },
    );
    await waitFor(async () => (await getSem('batch-slots')).status?.inUse === 0, {
      message: 'IN-USE back to 0',
    });

    // At most two main containers ran at once, by their own nanosecond clock readings (the kubelet's
    // container timestamps have one-second precision).
    const jobPods = (await client.list<Pod>(PODS, { labelSelector: 'job-name=batch' })).items;
    const intervals: [number, number][] = [];
    for (const p of jobPods) intervals.push(await nsPods.loggedIntervalUs(p.metadata.name ?? '', 'work'));
    expect(intervals).toHaveLength(6);
    let maxConcurrent = 0;
    for (const [start] of intervals) {
      const running = intervals.filter(([a, b]) => a <= start && start < b).length;
      maxConcurrent = Math.max(maxConcurrent, running);
    }
    expect(maxConcurrent).toBeLessThanOrEqual(2);
    expect(maxConcurrent).toBe(2);
    // Every pod got a distinct fencing token; the grant file carries it.
    const tokens = new Set(
      (versions.get('batch-slots') ?? []).flatMap((v) => (v.status?.holders ?? []).map((h) => h.token)),
    );
    expect(tokens.size).toBe(6);
    expect(violations).toEqual([]);
  });
});

describe('arbitration order and requests', () => {
  it('grants by priority, then arrival', async () => {
    await createSemaphore('order', 1);
    const blocker = uniq('order-blocker');
    await createPod('order-blocker', { 'konductor.io/semaphore': 'order' }, untilReleased(blocker));
    await waitFor(async () => (await holdersOf('order')).includes('order-blocker'), {
      message: 'blocker holds',
    });
    // Arrival order a, b, c, d; priorities: c high, others default.
    for (const [name, prio] of [
      ['order-a', undefined],
      ['order-b', undefined],
      ['order-c', '10'],
      ['order-d', undefined],
    ] as const) {
      await createPod(name, {
        'konductor.io/semaphore': 'order',
        ...(prio ? { 'konductor.io/priority': prio } : {}),
      });
      await waitFor(
        async () => (await getPod(name)).status?.initContainerStatuses?.some((s) => s.state?.running),
        {
          message: `${name} waiting`,
        },
      );
    }
    await waitFor(async () => (await getSem('order')).status?.waiting === 4, { message: '4 waiting' });
    await release(blocker);
    await nsPods.waitForPhase('order-d', 'Succeeded', { timeoutMs: 60_000, message: 'order-d done' });
    const grantOrder: string[] = [];
    for (const v of versions.get('order') ?? []) {
      for (const h of v.status?.holders ?? []) if (!grantOrder.includes(h.pod)) grantOrder.push(h.pod);
    }
    expect(grantOrder).toEqual(['order-blocker', 'order-c', 'order-a', 'order-b', 'order-d']);
  });

  it('a pod asking for 2 permits waits until 2 are free, and holds 2', async () => {
    await createSemaphore('multi', 2);
    const m = uniq('multi');
    await createPod('multi-one', { 'konductor.io/semaphore': 'multi' }, untilReleased(m));
    await waitFor(async () => (await holdersOf('multi')).includes('multi-one'), { message: 'one holds' });
    await createPod(
      'multi-two',
      { 'konductor.io/semaphore': 'multi', 'konductor.io/permits': '2' },
      untilReleased(`${m}-2`),
    );
    await waitFor(async () => (await getSem('multi')).status?.waiting === 1, { message: 'two waits' });
    expect(await holdersOf('multi')).toEqual(['multi-one']);
    await release(m);
    const s = await waitFor(
      async () => {
        const sem = await getSem('multi');
        return sem.status?.holders?.find((h) => h.pod === 'multi-two') ? sem : undefined;
      },
      { message: 'multi-two holds' },
    );
    expect(s.status?.inUse).toBe(2);
    expect(s.status?.holders?.find((h) => h.pod === 'multi-two')?.permits).toBe(2);
    await release(`${m}-2`);
    await waitFor(async () => (await getSem('multi')).status?.inUse === 0, { message: 'released' });
  });

  it('a deleted waiter leaves the queue; a deleted holder releases at once', async () => {
    await createSemaphore('del', 1);
    await createPod('del-holder', { 'konductor.io/semaphore': 'del' }, 'sleep 3600');
    await waitFor(async () => (await holdersOf('del')).includes('del-holder'), { message: 'holder' });
    await createPod('del-waiter', { 'konductor.io/semaphore': 'del' });
    await createPod('del-next', { 'konductor.io/semaphore': 'del' }, 'sleep 3600');
    await waitFor(async () => (await getSem('del')).status?.waiting === 2, { message: '2 waiting' });
    await client.delete(`${PODS}/del-waiter`);
    await waitFor(async () => (await getSem('del')).status?.waiting === 1, {
      message: 'waiter left the queue',
    });
    await client.delete(`${PODS}/del-holder`);
    await waitFor(async () => (await holdersOf('del')).includes('del-next'), { message: 'next granted' });
    const all = (versions.get('del') ?? []).flatMap((v) => v.status?.holders ?? []);
    expect(all.some((h) => h.pod === 'del-waiter')).toBe(false);
    await client.delete(`${PODS}/del-next`);
  });

  it('a holder past ttl expires: an Event, the permit returns, the next grant has a larger token', async () => {
    await createSemaphore('ttl', 1, '2s');
    await createPod('ttl-slow', { 'konductor.io/semaphore': 'ttl' }, 'sleep 3600');
    const first = await waitFor(
      async () => (await getSem('ttl')).status?.holders?.find((h) => h.pod === 'ttl-slow'),
      {
        message: 'slow holds',
      },
    );
    await createPod('ttl-next', { 'konductor.io/semaphore': 'ttl' }, 'sleep 3600');
    const next = await waitFor(
      async () => (await getSem('ttl')).status?.holders?.find((h) => h.pod === 'ttl-next'),
      { timeoutMs: 20_000, message: 'next granted after expiry' },
    );
    expect(next.token).toBeGreaterThan(first.token);
    const events = await waitFor(
      async () => {
        const list = await client.list<{ reason: string; involvedObject: { name: string } }>(
          `/api/v1/namespaces/${ns.name}/events`,
        );
        return list.items.find((e) => e.reason === 'Expired' && e.involvedObject.name === 'ttl-slow');
      },
      { message: 'Expired event on the pod' },
    );
    expect(events.reason).toBe('Expired');
    await client.delete(`${PODS}/ttl-slow`);
    await client.delete(`${PODS}/ttl-next`);
  });
});

describe('deleting a holder', () => {
  it("graceful deletion keeps the permit until the holder's main container has stopped", async () => {
    await createSemaphore('graceful', 1);
    const marker = uniq('graceful');
    // The issue's reproduction: the holder traps SIGTERM and works on (terminationGracePeriodSeconds 30).
    await nsPods.createPod('gr-holder', {
      annotations: { 'konductor.io/semaphore': 'graceful' },
      // Its last clock reading also goes to a host file: the deleted pod's log goes with its object.
      script: trapsTerm(`${releaseLoop(marker)}; date +%s%N > ${RELEASE_DIR}/${marker}.end`),
      terminationGracePeriodSeconds: 30,
    });
    await waitFor(
      async () =>
        (await holdersOf('graceful')).includes('gr-holder') && mainRunning(await getPod('gr-holder')),
      { message: 'the holder runs' },
    );
    await createPod('gr-waiter', { 'konductor.io/semaphore': 'graceful' }, timed('true'));
    await waitFor(async () => (await getSem('graceful')).status?.waiting === 1, {
      message: 'the waiter waits',
    });
    await kubectl(['delete', 'pod', 'gr-holder', '--wait=false'], { namespace: ns.name });
    await waitFor(async () => /^term$/m.test(await nsPods.containerLog('gr-holder', 'main')), {
      message: 'SIGTERM delivered to the holder',
    });
    // Arbitration after the deletion (a pod created later is queued) leaves the permit with the holder.
    await createPod('gr-probe', { 'konductor.io/semaphore': 'graceful' }, 'true');
    const seen = await waitFor(
      async () => {
        const sem = await getSem('graceful');
        return sem.status?.waiting === 2 ? sem : undefined;
      },
      { message: 'the probe is queued' },
    );
    expect(seen.status?.holders.map((h) => h.pod)).toEqual(['gr-holder']);
    expect((await getPod('gr-holder')).metadata.deletionTimestamp).toBeDefined();
    expect(mainRunning(await getPod('gr-holder'))).toBe(true);

    await release(marker);
    await nsPods.waitForPhase('gr-waiter', 'Succeeded', { timeoutMs: 30_000, message: 'the waiter ran' });
    // Ground truth, from the containers' own clocks: the waiter started after the holder stopped.
    const holderEnd = Number(
      BigInt((await readFile(join(RELEASE_DIR, `${marker}.end`), 'utf8')).trim()) / 1000n,
    );
    const [waiterStart] = await nsPods.loggedIntervalUs('gr-waiter', 'main');
    expect(waiterStart, 'the waiter started before the holder stopped').toBeGreaterThan(holderEnd);
    expect(violations).toEqual([]);
    await client.delete(`${PODS}/gr-probe`).catch(() => undefined);
  });

  it('force deletion hands the permit over at once', async () => {
    await createSemaphore('forced', 1);
    await createPod('fo-holder', { 'konductor.io/semaphore': 'forced' }, 'sleep 3600');
    await waitFor(async () => (await holdersOf('forced')).includes('fo-holder'), {
      message: 'the holder holds',
    });
    await createPod('fo-next', { 'konductor.io/semaphore': 'forced' }, 'sleep 3600');
    await waitFor(async () => (await getSem('forced')).status?.waiting === 1, { message: 'next waits' });
    const deleted = performance.now();
    await kubectl(['delete', 'pod', 'fo-holder', '--grace-period=0', '--force'], {
      namespace: ns.name,
      allowFailure: true,
    });
    await waitFor(async () => (await holdersOf('forced')).includes('fo-next'), {
      timeoutMs: 10_000,
      message: 'next granted after the force deletion',
    });
    forcedHandoverMs.push(performance.now() - deleted);
    await client.delete(`${PODS}/fo-next`);
  });
});

describe('failure: the manager is killed while pods wait and hold', () => {
  it('after a restart no permit is over-granted and none is lost', async () => {
    await createSemaphore('crash', 2);
    const marker = uniq('crash');
    for (let i = 0; i < 5; i++)
      await createPod(`crash-${i}`, { 'konductor.io/semaphore': 'crash' }, untilReleased(`${marker}-${i}`));
    await waitFor(async () => (await getSem('crash')).status?.inUse === 2, { message: '2 held' });
    const running = await waitFor(
      async () => {
        const hs = await holdersOf('crash');
        const pods = await Promise.all(hs.map(getPod));
        return pods.every(mainRunning) ? hs : undefined;
      },
      { message: 'the two holders run their main containers' },
    );
    // The other three are blocked in konductor-wait when the manager dies.
    await konductor.install.stopManager('SIGKILL');
    // While the manager is down: the holders finish.
    const holders = running;
    for (const h of holders) await release(`${marker}-${h.split('-')[1]}`);
    await nsPods.waitForPhase(holders, 'Succeeded', {
      message: 'holders finished while the manager was down',
    });
    await konductor.install.startManager();
    // The remaining three are granted as permits come back; release each as it runs.
    await waitFor(
      async () => {
        const hs = await holdersOf('crash');
        for (const h of hs) await release(`${marker}-${h.split('-')[1]}`);
        const pods = await Promise.all([0, 1, 2, 3, 4].map((i) => getPod(`crash-${i}`)));
        return pods.every((p) => p.status?.phase === 'Succeeded');
      },
      { timeoutMs: 60_000, message: 'all five pods completed' },
    );
    await waitFor(async () => (await getSem('crash')).status?.inUse === 0, { message: 'permits returned' });
    expect(violations).toEqual([]);
  });
});

describe('admission', () => {
  it('denies a bad annotation with a message naming it and the accepted form', async () => {
    const r = await kubectl(
      [
        'run',
        'bad-permits',
        '--image=busybox',
        '--restart=Never',
        '--annotations=konductor.io/semaphore=s',
        '--annotations=konductor.io/permits=two',
        '--',
        'true',
      ],
      { namespace: ns.name, allowFailure: true },
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/konductor\.io\/permits/);
    expect(r.stderr).toMatch(/"two"/);
  });

  it('warns about a missing Semaphore and the pod waits for it', async () => {
    const r = await kubectl(
      [
        'run',
        'early',
        '--image=busybox',
        '--restart=Never',
        '--annotations=konductor.io/semaphore=later',
        '--',
        'true',
      ],
      { namespace: ns.name },
    );
    expect(r.stderr).toMatch(/Warning: .*later/);
    await waitFor(
      async () => (await getPod('early')).status?.initContainerStatuses?.some((s) => s.state?.running),
      {
        message: 'early waits in konductor-wait',
      },
    );
    await createSemaphore('later', 1);
    await nsPods.waitForPhase('early', 'Succeeded', { message: 'early runs after creation' });
  });

  it('a Job annotated on its own metadata gets gated pods', async () => {
    await createSemaphore('jobmeta', 1);
    await client.create(`/apis/batch/v1/namespaces/${ns.name}/jobs`, {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'jobmeta', annotations: { 'konductor.io/semaphore': 'jobmeta' } },
      spec: {
        backoffLimit: 0,
        template: {
          spec: { restartPolicy: 'Never', containers: [{ name: 'm', image: 'busybox', command: ['true'] }] },
        },
      },
    });
    const pod = await waitFor(
      async () => (await client.list<Pod>(PODS, { labelSelector: 'job-name=jobmeta' })).items[0],
      { message: 'job pod' },
    );
    expect(pod.spec.initContainers?.map((c) => c.name)).toEqual(['konductor-wait', 'konductor-hold']);
    expect(pod.metadata.labels?.['konductor.io/managed']).toBe('true');
    await waitFor(
      async () => (versions.get('jobmeta') ?? []).some((v) => (v.status?.holders ?? []).length === 1),
      {
        message: 'the job pod was granted',
      },
    );
  });

  it('an unannotated pod never reaches the webhook (created while the manager is down)', async () => {
    await konductor.install.stopManager('SIGKILL');
    try {
      await createPod('plain', {});
      const p = await getPod('plain');
      expect(p.spec.initContainers ?? []).toEqual([]);
      // ...while an annotated one is refused (failurePolicy Fail: nothing runs unguarded).
      await expect(createPod('guarded', { 'konductor.io/semaphore': 'x' })).rejects.toThrow(/konductor/);
    } finally {
      await konductor.install.startManager();
    }
  });
});

describe('agent API security', () => {
  const tokenFor = async (podName: string, audience: string) =>
    mintPodToken(client, ns.name, { name: podName, uid: (await getPod(podName)).metadata.uid }, [audience]);
  /** POST to the agent API over TLS, trusting the devcluster's webhook CA. */
  const call = (path: string, token?: string) =>
    postAgent(konductor.install.url, konductor.install.caPem, path, token);

  it('rejects no token and a wrong audience; a token minted for a running pod releases nothing', async () => {
    await createSemaphore('sec', 2);
    await createPod('sec-a', { 'konductor.io/semaphore': 'sec' }, 'sleep 3600');
    await createPod('sec-b', { 'konductor.io/semaphore': 'sec' }, 'sleep 3600');
    await waitFor(async () => (await holdersOf('sec')).length === 2, { message: 'both hold' });
    await waitFor(async () => mainRunning(await getPod('sec-a')), { message: 'sec-a runs' });

    expect((await call('/v1/release')).status).toBe(401);
    expect((await call('/v1/release', 'not-a-token')).status).toBe(401);
    expect(
      (await call('/v1/release', await tokenFor('sec-a', 'https://kubernetes.default.svc'))).status,
    ).toBe(401);

    // Anyone allowed to create tokens in the namespace can mint one bound to the victim pod sec-a. A release
    // with it is a hint only: the manager reads sec-a from the API, sees it running, and keeps its permit.
    const res = await call('/v1/release', await tokenFor('sec-a', 'konductor'));
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body) as { released: { name: string }[]; held: { name: string }[] };
    expect(body.released).toEqual([]);
    expect(body.held.map((r) => r.name)).toEqual(['sec']);
    // A decision made after the call (a waiter is queued) still lists both holders.
    await createPod('sec-c', { 'konductor.io/semaphore': 'sec' }, 'true');
    const after = await waitFor(
      async () => {
        const sem = await getSem('sec');
        return sem.status?.waiting === 1 ? sem : undefined;
      },
      { message: 'sec-c queued' },
    );
    expect(after.status?.holders.map((h) => h.pod).sort()).toEqual(['sec-a', 'sec-b']);
    expect(mainRunning(await getPod('sec-a'))).toBe(true);
    await client.delete(`${PODS}/sec-c`).catch(() => undefined);
  });
});
