/**
 * The Barrier end to end on the real control plane. An independent watcher checks on every status version
 * that an Open barrier had its quorum (or all expected pods) arrived, that the counts agree with the
 * arrivals, and that Open and Failed are latched. The pods' own nanosecond clock readings prove that no
 * main container started before the last needed pod arrived (the API's container timestamps have one-second
 * precision).
 */
import { describe, expect, it } from 'vitest';
import type { Barrier, Pod } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import {
  mainStarted,
  namespacePods,
  release,
  startStamped,
  untilReleased,
  waitingInInit,
} from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { recordVersions } from '../helpers/watchers.ts';

const ns = testNamespace('barrier');
const konductor = useKonductor(ns);
const client = ns.client;
const BARRIERS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/barriers`;
const nsPods = namespacePods(ns);
const { PODS, getPod, phaseOf, uniq } = nsPods;

const { violations } = recordVersions<Barrier>(client, BARRIERS, (b, earlier, violation) => {
  const previous = earlier.at(-1)?.status;
  const s = b.status;
  if (!s) return;
  const needed = b.spec.quorum ?? b.spec.expected;
  if (s.arrived !== (s.arrivals ?? []).length)
    violation(`arrived ${s.arrived} != ${(s.arrivals ?? []).length} arrivals`);
  if (s.phase === 'Open' && s.arrived < needed)
    violation(`Open with ${s.arrived} arrived < ${needed} needed`);
  if (s.phase === 'Open' && !s.openedAt) violation('Open without openedAt');
  if (previous?.phase === 'Open' || previous?.phase === 'Failed') {
    if (s.phase !== previous.phase) violation(`${previous.phase} -> ${s.phase} (not latched)`);
    if (JSON.stringify(s.arrivals) !== JSON.stringify(previous.arrivals))
      violation(`arrivals changed after ${previous.phase}`);
  }
});

async function createBarrier(name: string, spec: { expected: number; quorum?: number; timeout?: string }) {
  await client.create(BARRIERS, {
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Barrier',
    metadata: { name },
    spec,
  });
}

/** A pod whose main container prints its start time (ns) and then runs `body`. */
const createPod = (name: string, barrier: string, body = 'true') =>
  nsPods.createPod(name, { annotations: { 'konductor.io/barrier': barrier }, script: startStamped(body) });

const getBarrier = (name: string) => client.get<Barrier>(`${BARRIERS}/${name}`);

/** Main-container start time of a pod, in µs since the epoch, from its own log. */
/** The main container's first clock reading (waits for the line: "running" in the status can precede it). */
const startedAtUs = async (name: string) => {
  await waitFor(async () => /^start \d+$/m.test(await nsPods.containerLog(name, 'main')), {
    message: `the start line of ${name}`,
  });
  return nsPods.loggedUs(name, 'main', 'start');
};

async function arrivedIs(barrier: string, n: number): Promise<Barrier | undefined> {
  const b = await getBarrier(barrier);
  return b.status?.arrived === n ? b : undefined;
}

describe('Barrier: pods wait for each other', () => {
  it('expected 4: none of 4 pods starts before the 4th arrived, then all start', async () => {
    await createBarrier('four', { expected: 4, timeout: '5m' });
    const names = ['four-0', 'four-1', 'four-2', 'four-3'];
    for (const name of names.slice(0, 3)) await createPod(name, 'four');
    await waitFor(() => arrivedIs('four', 3), { message: '3 of 4 arrived' });
    // A pod arrives when it is bound; it is blocked once its konductor-wait runs.
    const early = await waitFor(
      async () => {
        const pods = await Promise.all(names.slice(0, 3).map(getPod));
        return pods.every(waitingInInit) ? pods : undefined;
      },
      { message: 'the 3 pods wait in konductor-wait' },
    );
    for (const p of early) expect(mainStarted(p), `${p.metadata.name} started`).toBe(false);
    const printed = await kubectl(['get', 'kbar', 'four'], { namespace: ns.name });
    expect(printed.stdout).toMatch(/NAME\s+EXPECTED\s+ARRIVED\s+PHASE/);
    expect(printed.stdout).toMatch(/four\s+4\s+3\s+Waiting\s/);
    const waitLog = await waitFor(
      async () => {
        const log = await nsPods.waitLog('four-0');
        return log.includes('3/4 arrived') ? log : undefined;
      },
      { message: 'a progress line with 3/4 arrived' },
    );
    expect(waitLog).toContain(`waiting for barrier ${ns.name}/four`);

    const beforeLast = Date.now() * 1000;
    await createPod('four-3', 'four');
    await nsPods.waitForPhase(names, 'Succeeded', { timeoutMs: 30_000, message: 'all 4 pods Succeeded' });
    const b = await getBarrier('four');
    expect(b.status?.phase).toBe('Open');
    expect(b.status?.arrived).toBe(4);
    const lastArrival = Math.max(...(b.status?.arrivals ?? []).map((a) => Date.parse(a.arrivedAt)));
    const openedAt = Date.parse(b.status?.openedAt ?? '');
    expect(openedAt).toBeGreaterThanOrEqual(lastArrival);
    for (const name of names) {
      const start = await startedAtUs(name);
      expect(start, `${name} started before the 4th pod was created`).toBeGreaterThan(beforeLast);
      expect(start, `${name} started before the barrier opened`).toBeGreaterThanOrEqual(openedAt * 1000);
    }
    const opened = await kubectl(['get', 'kbar', 'four'], { namespace: ns.name });
    expect(opened.stdout).toMatch(/four\s+4\s+4\s+Open\s/);
    expect(violations).toEqual([]);
  });

  it('quorum 2 of 4: opens at the 2nd arrival; Open is latched, a later pod passes at once', async () => {
    await createBarrier('quorum', { expected: 4, quorum: 2 });
    await createPod('quorum-a', 'quorum');
    await waitFor(() => arrivedIs('quorum', 1), { message: '1 arrived' });
    await waitFor(async () => (await nsPods.waitLog('quorum-a')).includes('1/2 arrived'), {
      message: 'a progress line with 1/2 arrived',
    });
    expect(mainStarted(await getPod('quorum-a'))).toBe(false);
    const beforeSecond = Date.now() * 1000;
    await createPod('quorum-b', 'quorum');
    await waitFor(
      async () => (await phaseOf('quorum-a')) === 'Succeeded' && (await phaseOf('quorum-b')) === 'Succeeded',
      { message: 'both pods Succeeded' },
    );
    expect(await startedAtUs('quorum-a')).toBeGreaterThan(beforeSecond);
    const open = await getBarrier('quorum');
    expect(open.status?.phase).toBe('Open');
    expect(open.status?.arrivals?.map((a) => a.pod).sort()).toEqual(['quorum-a', 'quorum-b']);
    await createPod('quorum-c', 'quorum');
    await nsPods.waitForPhase('quorum-c', 'Succeeded', { message: 'a late pod passes the open barrier' });
    const after = await getBarrier('quorum');
    expect(after.status?.arrivals).toEqual(open.status?.arrivals);
    expect(after.status?.openedAt).toBe(open.status?.openedAt);
    expect(violations).toEqual([]);
  });

  it('a timeout fails the barrier; waiting pods exit non-zero with "arrived X of Y"', async () => {
    await createBarrier('late', { expected: 3, timeout: '3s' });
    await createPod('late-a', 'late');
    await createPod('late-b', 'late');
    await waitFor(() => arrivedIs('late', 2), { message: '2 arrived' });
    const failed = await waitFor(
      async () => {
        const b = await getBarrier('late');
        return b.status?.phase === 'Failed' ? b : undefined;
      },
      { timeoutMs: 15_000, message: 'barrier Failed' },
    );
    const first = Date.parse(failed.status?.firstArrivalAt ?? '');
    expect(Date.parse(failed.status?.failedAt ?? '')).toBeGreaterThanOrEqual(first + 3000);
    expect(failed.status?.conditions?.find((c) => c.type === 'Ready')?.message).toMatch(/arrived 2 of 3/);
    for (const name of ['late-a', 'late-b']) {
      const pod = await waitFor(
        async () => {
          const p = await getPod(name);
          return p.status?.phase === 'Failed' ? p : undefined;
        },
        { message: `${name} Failed` },
      );
      const wait = pod.status?.initContainerStatuses?.find((s) => s.name === 'konductor-wait');
      expect(wait?.state?.terminated?.exitCode).not.toBe(0);
      expect(mainStarted(pod)).toBe(false);
      const log = await nsPods.waitLog(name);
      expect(log).toMatch(new RegExp(`barrier ${ns.name}/late .*arrived 2 of 3`));
    }
    const events = await client.list<{ reason: string; involvedObject: { kind: string; name: string } }>(
      `/api/v1/namespaces/${ns.name}/events`,
    );
    expect(events.items.some((e) => e.reason === 'Failed' && e.involvedObject.kind === 'Barrier')).toBe(true);
    expect(violations).toEqual([]);
  });

  it('a pod deleted before opening no longer counts', async () => {
    await createBarrier('gone', { expected: 3 });
    await createPod('gone-a', 'gone');
    await createPod('gone-b', 'gone');
    await waitFor(() => arrivedIs('gone', 2), { message: '2 arrived' });
    await client.delete(`${PODS}/gone-a`);
    const one = await waitFor(() => arrivedIs('gone', 1), { message: 'the deleted pod left' });
    expect(one.status?.arrivals?.map((a) => a.pod)).toEqual(['gone-b']);
    // With the deleted pod still counted, this would open the barrier.
    await createPod('gone-c', 'gone');
    await waitFor(() => arrivedIs('gone', 2), { message: 'gone-c arrived' });
    expect((await getBarrier('gone')).status?.phase).toBe('Waiting');
    expect(mainStarted(await getPod('gone-b'))).toBe(false);
    await createPod('gone-d', 'gone');
    await nsPods.waitForPhase(['gone-b', 'gone-c', 'gone-d'], 'Succeeded', {
      message: 'the three pods Succeeded',
    });
    const open = await getBarrier('gone');
    expect(open.status?.phase).toBe('Open');
    expect(open.status?.arrivals?.map((a) => a.pod).sort()).toEqual(['gone-b', 'gone-c', 'gone-d']);
    expect(violations).toEqual([]);
  });
});

describe('Barrier: the manager is killed while pods wait at it', () => {
  it('after a restart the arrivals are re-derived from the pods and the barrier opens only at 3 of 3', async () => {
    await createBarrier('crash', { expected: 3, timeout: '5m' });
    const marker = uniq('crash');
    await createPod('crash-a', 'crash', untilReleased(marker));
    await createPod('crash-b', 'crash', untilReleased(marker));
    await waitFor(() => arrivedIs('crash', 2), { message: '2 arrived' });
    await konductor.install.stopManager('SIGKILL');
    // While the manager is down, one of the arrived pods goes away.
    await client.delete(`${PODS}/crash-a`);
    await waitFor(
      async () =>
        (await client.list<Pod>(PODS, { fieldSelector: 'metadata.name=crash-a' })).items.length === 0,
      { message: 'crash-a gone' },
    );
    await konductor.install.startManager();
    const one = await waitFor(() => arrivedIs('crash', 1), { message: 'the restarted manager counts 1' });
    expect(one.status?.arrivals?.map((a) => a.pod)).toEqual(['crash-b']);
    await createPod('crash-c', 'crash', untilReleased(marker));
    await waitFor(() => arrivedIs('crash', 2), { message: '2 arrived again' });
    expect((await getBarrier('crash')).status?.phase).toBe('Waiting');
    // A second crash while two wait; the last pod arrives after the restart (the webhook is down meanwhile).
    await konductor.install.stopManager('SIGKILL');
    const beforeLast = Date.now() * 1000;
    await konductor.install.startManager();
    await createPod('crash-d', 'crash', untilReleased(marker));
    await waitFor(
      async () => {
        const pods = await Promise.all(['crash-b', 'crash-c', 'crash-d'].map(getPod));
        return pods.every((p) => p.status?.containerStatuses?.some((c) => c.state?.running));
      },
      { message: 'all three run' },
    );
    for (const name of ['crash-b', 'crash-c', 'crash-d'])
      expect(await startedAtUs(name)).toBeGreaterThan(beforeLast);
    await release(marker);
    const open = await getBarrier('crash');
    expect(open.status?.phase).toBe('Open');
    expect(open.status?.arrivals?.map((a) => a.pod).sort()).toEqual(['crash-b', 'crash-c', 'crash-d']);
    expect(violations).toEqual([]);
  });
});
