/**
 * A holder is released as "gone" only when the API server confirms it (issue 15, item 2). The controller's
 * pod cache holds only managed pods (label konductor.io/managed) and indexes them by their konductor.io/
 * annotations, so a running holder falls out of it when someone removes the label or edits the annotations.
 * The admission side forbids those edits; these tests do not depend on it: they put the controller in the
 * very state such an edit leaves behind — a holder that is not among the managed pods referencing the
 * primitive — without editing any pod, and check that it keeps its grant while its pod runs.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from '../../api/kubeClient.ts';
import type { Pod, Semaphore } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { mainRunning, namespacePods, RELEASE_DIR, release, timed, untilReleased } from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { recordVersions } from '../helpers/watchers.ts';

const ns = testNamespace('holders');
const konductor = useKonductor(ns);
const client = ns.client;
/**
 * Writes holders into a status as the manager would: only the manager's identity may write the status of the
 * primitives (the status-writer admission policy), so the test borrows its kubeconfig.
 */
let asManager: KubeClient;
beforeAll(() => {
  asManager = KubeClient.fromKubeconfig(konductor.install.managerKubeconfigPath);
});
afterAll(() => asManager?.close());
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`;
const nsPods = namespacePods(ns);
const { PODS, getPod, uniq } = nsPods;

const { violations } = recordVersions<Semaphore>(client, SEMS, (s, _earlier, violation) => {
  const held = (s.status?.holders ?? []).reduce((n, h) => n + h.permits, 0);
  if (held > s.spec.permits) violation(`${held} > ${s.spec.permits}`);
});

const getSem = (name: string) => client.get<Semaphore>(`${SEMS}/${name}`);
const holdersOf = async (name: string) => ((await getSem(name)).status?.holders ?? []).map((h) => h.pod);

async function createSemaphore(name: string, permits: number): Promise<void> {
  await client.create(SEMS, {
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Semaphore',
    metadata: { name },
    spec: { permits },
  });
  await waitFor(async () => (await getSem(name)).status?.nextToken !== undefined, {
    message: `${name} has a status`,
  });
}

/**
 * Writes `pod` into the semaphore's status as its only holder (retrying on write conflicts): the state the
 * controller is left in when a holder's label or annotations change under it.
 */
async function makeHolder(semaphore: string, pod: Pod): Promise<number> {
  return waitFor(async () => {
    const sem = await getSem(semaphore);
    const token = sem.status?.nextToken ?? 1;
    await asManager.replace(`${SEMS}/${semaphore}/status`, {
      ...sem,
      status: {
        ...sem.status,
        inUse: 1,
        available: sem.spec.permits - 1,
        phase: sem.spec.permits === 1 ? 'Full' : 'Ready',
        holders: [
          {
            pod: pod.metadata.name,
            uid: pod.metadata.uid,
            permits: 1,
            token,
            grantedAt: new Date().toISOString(),
          },
        ],
        nextToken: token + 1,
      },
    });
    return token;
  });
}

/** A script that runs until `release(marker)` and then writes its last clock reading to a host file. */
const workUntil = (marker: string) =>
  `echo start $(date +%s%N); ${untilReleased(marker)}; date +%s%N > ${RELEASE_DIR}/${marker}.end`;
const endOf = async (marker: string) =>
  Number(BigInt((await readFile(join(RELEASE_DIR, `${marker}.end`), 'utf8')).trim()) / 1000n);

describe('a holder missing from the managed-pod cache', () => {
  it('a holder that vanished from the label-filtered cache keeps its permit while its pod runs', async () => {
    // A pod without the managed label is what a holder becomes for the cache when the label is removed.
    await createSemaphore('unlabelled', 1);
    const marker = uniq('unlabelled');
    const holder = await nsPods.createPod('unlabelled-holder', {
      annotations: {},
      script: workUntil(marker),
    });
    expect(holder.metadata.labels?.['konductor.io/managed']).toBeUndefined();
    await waitFor(async () => mainRunning(await getPod('unlabelled-holder')), { message: 'the holder runs' });
    await makeHolder('unlabelled', holder);

    // A waiter arrives; the decision that queues it keeps the running holder (its pod was confirmed by GET).
    await nsPods.createPod('unlabelled-waiter', {
      annotations: { 'konductor.io/semaphore': 'unlabelled' },
      script: timed('true'),
    });
    const seen = await waitFor(
      async () => {
        const s = await getSem('unlabelled');
        return s.status?.waiting === 1 ? s : undefined;
      },
      { message: 'the waiter is queued' },
    );
    expect(seen.status?.holders.map((h) => h.pod)).toEqual(['unlabelled-holder']);
    expect(mainRunning(await getPod('unlabelled-holder'))).toBe(true);

    // Once the holder's pod has finished (seen by the controller's re-check), the waiter is granted.
    await release(marker);
    await nsPods.waitForPhase('unlabelled-waiter', 'Succeeded', {
      timeoutMs: 60_000,
      message: 'the waiter ran',
    });
    const [waiterStart] = await nsPods.loggedIntervalUs('unlabelled-waiter', 'main');
    expect(waiterStart, 'the waiter started before the holder stopped').toBeGreaterThan(await endOf(marker));
    expect(violations).toEqual([]);
  });

  it('a holder whose pod no longer references the primitive (annotations edited) keeps its permit while it runs', async () => {
    // A managed pod that references another Semaphore is what a holder becomes for this one when its
    // konductor.io/semaphore annotation is edited.
    await createSemaphore('edited', 1);
    await createSemaphore('elsewhere', 5);
    const marker = uniq('edited');
    const holder = await nsPods.createPod('edited-holder', {
      annotations: { 'konductor.io/semaphore': 'elsewhere' },
      script: workUntil(marker),
    });
    await waitFor(async () => mainRunning(await getPod('edited-holder')), { message: 'the holder runs' });
    await makeHolder('edited', await getPod('edited-holder'));
    expect(holder.metadata.labels?.['konductor.io/managed']).toBe('true');

    await nsPods.createPod('edited-waiter', {
      annotations: { 'konductor.io/semaphore': 'edited' },
      script: timed('true'),
    });
    const seen = await waitFor(
      async () => {
        const s = await getSem('edited');
        return s.status?.waiting === 1 ? s : undefined;
      },
      { message: 'the waiter is queued' },
    );
    expect(seen.status?.holders.map((h) => h.pod)).toEqual(['edited-holder']);

    await release(marker);
    await nsPods.waitForPhase('edited-waiter', 'Succeeded', { timeoutMs: 60_000, message: 'the waiter ran' });
    const [waiterStart] = await nsPods.loggedIntervalUs('edited-waiter', 'main');
    expect(waiterStart, 'the waiter started before the holder stopped').toBeGreaterThan(await endOf(marker));
    expect(await holdersOf('edited')).toEqual([]);
    expect(violations).toEqual([]);
  });

  it('a holder whose pod is really gone is released (404 confirmed)', async () => {
    await createSemaphore('gone', 1);
    const ghost = await nsPods.createPod('gone-holder', { annotations: {}, script: 'sleep 3600' });
    await client.delete(`${PODS}/gone-holder`, { gracePeriodSeconds: 0 });
    await waitFor(
      async () =>
        (await client.list<Pod>(PODS, { fieldSelector: 'metadata.name=gone-holder' })).items.length === 0,
      { message: 'the pod is gone' },
    );
    await makeHolder('gone', ghost);
    await nsPods.createPod('gone-next', {
      annotations: { 'konductor.io/semaphore': 'gone' },
      script: 'true',
    });
    await waitFor(async () => (await holdersOf('gone')).includes('gone-next'), {
      message: 'the next pod is granted once the gone holder is released',
    });
  });
});
