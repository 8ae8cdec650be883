/**
 * Long durations (issue 15, item 7) and the wait-timeout's clock (smaller items). Node's timers take at most
 * ~596h; every user-given duration now goes through a chained timer (api/longTimer.ts) and is bounded at
 * 8760h by the CRD and the annotation parser alike.
 */
import { describe, expect, it } from 'vitest';
import { WAIT_CONTAINER } from '../../api/constants.ts';
import type { Pod, Semaphore } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { mainRunning, namespacePods, release, untilReleased, waitingInInit } from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('durations');
const konductor = useKonductor(ns);
const client = ns.client;
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`;
const nsPods = namespacePods(ns);
const { PODS, getPod, uniq } = nsPods;

const getSem = (name: string) => client.get<Semaphore>(`${SEMS}/${name}`);
async function createSemaphore(name: string, permits: number, ttl?: string): Promise<void> {
  await client.create(SEMS, {
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Semaphore',
    metadata: { name },
    spec: { permits, ...(ttl ? { ttl } : {}) },
  });
}

/** Reconciles of Semaphores the manager has done so far (its Prometheus histogram's count). */
async function semaphoreReconciles(): Promise<number> {
  const text = await (await fetch(konductor.install.metricsUrl)).text();
  const m = /^konductor_reconcile_duration_seconds_count\{kind="Semaphore"\} (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

const waitState = (p: Pod) => p.status?.initContainerStatuses?.find((s) => s.name === WAIT_CONTAINER);

describe('durations beyond what one Node timer holds', () => {
  it('a wait-timeout of 600h waits for the grant instead of giving up at once', async () => {
    await createSemaphore('long-wait', 1);
    const marker = uniq('long-wait');
    await nsPods.createPod('lw-blocker', {
      annotations: { 'konductor.io/semaphore': 'long-wait' },
      script: untilReleased(marker),
    });
    await waitFor(async () => mainRunning(await getPod('lw-blocker')), { message: 'the blocker runs' });
    await nsPods.createPod('lw-patient', {
      annotations: { 'konductor.io/semaphore': 'long-wait', 'konductor.io/wait-timeout': '600h' },
      script: 'true',
    });
    // Queued, and its wait container prints its place: it is waiting, not timed out.
    await waitFor(
      async () =>
        /waiting for semaphore .*\/long-wait: position 1 of 1/.test(await nsPods.waitLog('lw-patient')),
      { message: 'lw-patient waits in its queue' },
    );
    expect(waitingInInit(await getPod('lw-patient'))).toBe(true);
    await release(marker);
    await nsPods.waitForPhase('lw-patient', 'Succeeded', {
      timeoutMs: 60_000,
      message: 'lw-patient granted',
    });
    expect(waitState(await getPod('lw-patient'))?.state?.terminated?.exitCode).toBe(0);
  });

  it('a ttl of 600h does not send the manager into a reconcile loop', async () => {
    await createSemaphore('long-ttl', 1, '600h');
    const marker = uniq('long-ttl');
    await nsPods.createPod('lt-holder', {
      annotations: { 'konductor.io/semaphore': 'long-ttl' },
      script: untilReleased(marker),
    });
    // The holder passed its wait: its ttl counts, and the next look is due in ~600h.
    await waitFor(async () => mainRunning(await getPod('lt-holder')), { message: 'the holder runs' });
    const holder = await waitFor(async () => (await getSem('long-ttl')).status?.holders?.[0], {
      message: 'the holder is in the status',
    });
    expect(Date.parse(holder.expiresAt ?? '') - Date.now()).toBeGreaterThan(599 * 3_600_000);
    const before = await semaphoreReconciles();
    // Some work for the manager, and time: a waiter arrives and reports its place.
    await nsPods.createPod('lt-waiter', {
      annotations: { 'konductor.io/semaphore': 'long-ttl' },
      script: 'true',
    });
    await waitFor(async () => (await getSem('long-ttl')).status?.waiting === 1, {
      message: 'the waiter is queued',
    });
    await waitFor(async () => /position 1 of 1/.test(await nsPods.waitLog('lt-waiter')), {
      message: 'the waiter reports its place',
    });
    const during = (await semaphoreReconciles()) - before;
    // A handful per event (the waiter's creation, binding, status updates); a 1 ms requeue loop makes hundreds.
    expect(during).toBeLessThan(50);
    await release(marker);
    await nsPods.waitForPhase('lt-waiter', 'Succeeded', { timeoutMs: 60_000, message: 'the waiter ran' });
  });
});

describe('the wait-timeout', () => {
  it('counts from the first start of konductor-wait, not from a restart of the container', async () => {
    await createSemaphore('full', 1);
    const marker = uniq('full');
    await nsPods.createPod('full-blocker', {
      annotations: { 'konductor.io/semaphore': 'full' },
      script: untilReleased(marker),
    });
    await waitFor(async () => mainRunning(await getPod('full-blocker')), { message: 'the blocker runs' });
    // restartPolicy OnFailure: the kubelet restarts konductor-wait after its timeout exit, as it would
    // after a crash or an OOM kill. The restarted container must not grant itself a fresh timeout.
    await client.create<Pod>(PODS, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'impatient',
        annotations: { 'konductor.io/semaphore': 'full', 'konductor.io/wait-timeout': '2s' },
      },
      spec: {
        restartPolicy: 'OnFailure',
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'main', image: 'busybox', command: ['true'] }],
      },
    });
    await waitFor(async () => (waitState(await getPod('impatient'))?.restartCount ?? 0) >= 1, {
      message: 'konductor-wait timed out and was restarted',
    });
    const log = await waitFor(
      async () => {
        const text = await nsPods.waitLog('impatient');
        return /before konductor-wait restarted/.test(text) ? text : undefined;
      },
      { message: 'the restarted konductor-wait gives up at once' },
    );
    expect(log).toMatch(/gave up waiting after 2s \(konductor\.io\/wait-timeout\): the wait began at \S+Z/);
    expect(waitState(await getPod('impatient'))?.lastState?.terminated?.exitCode).toBe(2);
    await client.delete(`${PODS}/impatient`);
    await release(marker);
  });
});

describe('the one bound of every duration and integer', () => {
  it('the API server refuses a ttl beyond 8760h and permits beyond 1000 with readable messages', async () => {
    const tooLong = await kubectl(['apply', '-f', '-'], {
      namespace: ns.name,
      allowFailure: true,
      input:
        'apiVersion: sync.konductor.io/v1\nkind: Semaphore\nmetadata: {name: forever}\nspec: {permits: 1, ttl: "9000h"}\n',
    });
    expect(tooLong.code).not.toBe(0);
    expect(tooLong.stderr).toContain('spec.ttl: Invalid value: "9000h": must be at most 8760h (one year)');
    const tooMany = await kubectl(['apply', '-f', '-'], {
      namespace: ns.name,
      allowFailure: true,
      input:
        'apiVersion: sync.konductor.io/v1\nkind: Semaphore\nmetadata: {name: huge}\nspec: {permits: 1001}\n',
    });
    expect(tooMany.code).not.toBe(0);
    expect(tooMany.stderr).toMatch(
      /spec\.permits: Invalid value: 1001: spec\.permits in body should be less than or equal to 1000/,
    );
    const annotated = await kubectl(
      [
        'run',
        'too-patient',
        '--image=busybox',
        '--restart=Never',
        '--annotations=konductor.io/semaphore=s',
        '--annotations=konductor.io/wait-timeout=9000h',
        '--',
        'true',
      ],
      { namespace: ns.name, allowFailure: true },
    );
    expect(annotated.code).not.toBe(0);
    expect(annotated.stderr).toContain('"9000h" is too long: it must be at most 8760h (one year)');
  });

  it('kubectl explain describes every field', async () => {
    const explained = await kubectl(['explain', 'gate.spec.conditions']);
    expect(explained.stdout).toMatch(/DESCRIPTION:\s+All must hold for the Gate to open/);
    expect(explained.stdout).toMatch(/namespace\s+<string>\s+Namespace of the object/);
  });
});
