/**
 * The Lease end to end on the real control plane: webhook injection, the process kubelet running the
 * injected agent, the controller arbitrating through status. An independent watcher records every Lease
 * status version the API server publishes and checks, on each, that there is one holder slot with one pod
 * in it, that the holder is not also queued, and that a new holder always has a larger fencing token. The
 * pods' own nanosecond clock readings (main container start and end) prove that no two held it at once.
 */
import { describe, expect, it } from 'vitest';
import type { Lease, Pod } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { kubectl } from '../helpers/kubectl.ts';
import { testNamespace } from '../helpers/namespace.ts';
import {
  mainRunning,
  namespacePods,
  podManifest,
  release,
  untilReleased as releaseLoop,
  timed,
  trapsTerm,
  waitingInInit,
} from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { recordVersions } from '../helpers/watchers.ts';

const ns = testNamespace('lease');
const konductor = useKonductor(ns);
const client = ns.client;
const LEASES = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/leases`;
const nsPods = namespacePods(ns);
const { PODS, getPod, uniq } = nsPods;

/** Every Lease status version seen, and every violation of the Lease's invariants. */
const { versions, violations } = recordVersions<Lease>(client, LEASES, (l, earlier, violation) => {
  const previous = earlier.at(-1)?.status;
  const s = l.status;
  if (!s) return;
  const holder = s.holder;
  if (s.phase === 'Held' && !holder) violation('phase Held without a holder');
  if (s.phase === 'Available' && holder) violation(`phase Available with holder ${holder.pod}`);
  if (holder && (s.queue ?? []).some((q) => q.uid === holder.uid))
    violation(`holder ${holder.pod} is also queued`);
  if (
    holder &&
    previous?.holder &&
    previous.holder.uid !== holder.uid &&
    holder.token <= previous.holder.token
  )
    violation(`new holder ${holder.pod} token ${holder.token} <= ${previous.holder.token}`);
  const maxSeen = Math.max(0, ...earlier.map((v) => v.status?.holder?.token ?? 0));
  if (holder && holder.uid !== previous?.holder?.uid && holder.token <= maxSeen)
    violation(`token ${holder.token} of new holder ${holder.pod} is not above ${maxSeen}`);
  if (holder && (s.nextToken ?? 0) <= holder.token)
    violation(`nextToken ${s.nextToken} <= holder token ${holder.token}`);
});

async function createLease(name: string, ttl: string, priority?: number): Promise<void> {
  await client.create(LEASES, {
    apiVersion: 'sync.konductor.io/v1',
    kind: 'Lease',
    metadata: { name },
    spec: { ttl, ...(priority !== undefined ? { priority } : {}) },
  });
}

const createPod = (name: string, annotations: Record<string, string>, script: string) =>
  nsPods.createPod(name, { annotations, script });

const getLease = (name: string) => client.get<Lease>(`${LEASES}/${name}`);
const holderOf = async (name: string) => (await getLease(name)).status?.holder;

/** A main container that records its start and end (ns) and runs until the test creates the marker file. */
const untilReleased = (marker: string) => timed(releaseLoop(marker));

const succeeded = async (name: string) => (await nsPods.phaseOf(name)) === 'Succeeded';

/** [start, end] in µs of each pod's main container, from its own log. */
async function intervals(names: string[]): Promise<Map<string, [number, number]>> {
  const out = new Map<string, [number, number]>();
  for (const name of names) out.set(name, await nsPods.loggedIntervalUs(name, 'main'));
  return out;
}

function expectNoOverlap(iv: Map<string, [number, number]>): void {
  const sorted = [...iv.entries()].sort((a, b) => a[1][0] - b[1][0]);
  for (let i = 1; i < sorted.length; i++) {
    const [prevName, [, prevEnd]] = sorted[i - 1]!;
    const [name, [start]] = sorted[i]!;
    expect(start, `${name} started before ${prevName} ended`).toBeGreaterThanOrEqual(prevEnd);
  }
}

/** Holders in the order they were granted, with their tokens, from the recorded status versions. */
function grantSequence(lease: string): { pod: string; token: number; acquiredAt: string }[] {
  const seq: { pod: string; token: number; acquiredAt: string }[] = [];
  for (const v of versions.get(lease) ?? []) {
    const h = v.status?.holder;
    if (h && seq.at(-1)?.pod !== h.pod) seq.push({ pod: h.pod, token: h.token, acquiredAt: h.acquiredAt });
  }
  return seq;
}

/**
 * Every hand-over happened after the previous holder's work ended: its main container's last clock reading
 * precedes the next holder's acquiredAt (the controller's clock, same host, truncated to the millisecond).
 */
function expectHandoverAfterEnd(lease: string, iv: Map<string, [number, number]>): void {
  const seq = grantSequence(lease);
  for (let i = 1; i < seq.length; i++) {
    const prevEnd = iv.get(seq[i - 1]!.pod)?.[1];
    expect(prevEnd, `interval of ${seq[i - 1]!.pod}`).toBeDefined();
    const acquired = Date.parse(seq[i]!.acquiredAt) * 1000;
    expect(prevEnd!, `${seq[i]!.pod} granted before ${seq[i - 1]!.pod} ended`).toBeLessThan(acquired + 1000);
  }
}

async function eventsFor(kind: string, name: string, reason: string) {
  const list = await client.list<{
    reason: string;
    message: string;
    type: string;
    involvedObject: { kind: string; name: string };
  }>(`/api/v1/namespaces/${ns.name}/events`);
  return list.items.filter(
    (e) => e.reason === reason && e.involvedObject.kind === kind && e.involvedObject.name === name,
  );
}

describe('Lease: exclusive access', () => {
  it('5 pods take turns: never two holders, each grant a larger token, the Job-like run completes', async () => {
    await createLease('turns', '1m');
    const names = [0, 1, 2, 3, 4].map((i) => `turns-${i}`);
    for (const name of names)
      await createPod(
        name,
        { 'konductor.io/lease': 'turns' },
        timed('echo grant $(cat /var/run/konductor/grant.json); sleep 0.3'),
      );
    await waitFor(async () => (await Promise.all(names.map(succeeded))).every(Boolean), {
      timeoutMs: 60_000,
      message: 'all 5 pods Succeeded',
    });
    await waitFor(async () => (await getLease('turns')).status?.phase === 'Available', {
      message: 'the lease is Available again',
    });
    const turns = await intervals(names);
    expectNoOverlap(turns);
    expectHandoverAfterEnd('turns', turns);
    const seq = grantSequence('turns');
    expect(seq.map((s) => s.pod).sort()).toEqual(names);
    for (let i = 1; i < seq.length; i++) expect(seq[i]!.token).toBeGreaterThan(seq[i - 1]!.token);
    // Each pod's grant.json (mounted into the main container) carries the token of the status.
    for (const { pod, token } of seq) {
      const log = await nsPods.containerLog(pod, 'main');
      const grant = JSON.parse(/^grant (.*)$/m.exec(log)?.[1] ?? '{}') as {
        primitive?: string;
        token?: number;
      };
      expect(grant, `grant.json of ${pod}`).toMatchObject({ primitive: 'Lease', name: 'turns', token });
    }
    expect(violations).toEqual([]);
  });

  it('grants by konductor.io/priority, with the Lease spec.priority as the default', async () => {
    // spec.priority 5: pods without the annotation rank 5, so an explicit priority 1 goes last.
    await createLease('prio', '1m', 5);
    const blocker = uniq('prio-blocker');
    await createPod('prio-blocker', { 'konductor.io/lease': 'prio' }, untilReleased(blocker));
    await waitFor(async () => (await holderOf('prio'))?.pod === 'prio-blocker', { message: 'blocker holds' });
    const order = [
      ['prio-a', undefined],
      ['prio-b', '1'],
      ['prio-c', '10'],
      ['prio-d', undefined],
    ] as const;
    for (const [name, prio] of order) {
      await createPod(
        name,
        { 'konductor.io/lease': 'prio', ...(prio ? { 'konductor.io/priority': prio } : {}) },
        timed('sleep 0.1'),
      );
      await waitFor(async () => waitingInInit(await getPod(name)), { message: `${name} waiting` });
    }
    const queued = await waitFor(
      async () => {
        const l = await getLease('prio');
        return l.status?.waiting === 4 ? l : undefined;
      },
      { message: '4 waiting' },
    );
    expect(queued.status?.queue?.map((q) => q.pod)).toEqual(['prio-c', 'prio-a', 'prio-d', 'prio-b']);
    const printed = await kubectl(['get', 'klease', 'prio'], { namespace: ns.name });
    expect(printed.stdout).toMatch(/NAME\s+HOLDER\s+PHASE\s+WAITING\s+OLDEST-WAIT\s+EXPIRES/);
    expect(printed.stdout).toMatch(/prio\s+prio-blocker\s+Held\s+4\s+\d+s\s/);
    expect(printed.stdout).toMatch(/prio\s+prio-blocker\s+Held\s+4\s/);
    const log = await waitFor(
      async () => {
        const log = await nsPods.waitLog('prio-b');
        return /waiting for lease .*\/prio: position 4 of 4 \(held by prio-blocker\)/.test(log)
          ? log
          : undefined;
      },
      { message: 'a progress line in the konductor-wait log of prio-b' },
    );
    expect(log).toContain(`waiting for lease ${ns.name}/prio`);

    await release(blocker);
    await waitFor(async () => succeeded('prio-b'), { timeoutMs: 60_000, message: 'prio-b done' });
    expect(grantSequence('prio').map((s) => s.pod)).toEqual([
      'prio-blocker',
      'prio-c',
      'prio-a',
      'prio-d',
      'prio-b',
    ]);
    const prio = await intervals(['prio-blocker', 'prio-c', 'prio-a', 'prio-d', 'prio-b']);
    expectNoOverlap(prio);
    expectHandoverAfterEnd('prio', prio);
    expect(violations).toEqual([]);
  });

  it('a holder past ttl expires: the next waiter gets a larger token, Events on both pods and the Lease', async () => {
    await createLease('ttl', '2s');
    await createPod('ttl-slow', { 'konductor.io/lease': 'ttl' }, 'sleep 3600');
    const first = await waitFor(
      async () => {
        const h = await holderOf('ttl');
        return h?.pod === 'ttl-slow' ? h : undefined;
      },
      { message: 'slow holds' },
    );
    expect(Date.parse(first.expiresAt ?? '') - Date.parse(first.acquiredAt)).toBe(2000);
    await createPod('ttl-next', { 'konductor.io/lease': 'ttl' }, 'sleep 3600');
    const next = await waitFor(
      async () => {
        const h = await holderOf('ttl');
        return h?.pod === 'ttl-next' ? h : undefined;
      },
      { timeoutMs: 20_000, message: 'next granted after expiry' },
    );
    expect(next.token).toBeGreaterThan(first.token);
    // Not before the ttl ran out.
    expect(Date.parse(next.acquiredAt)).toBeGreaterThanOrEqual(Date.parse(first.acquiredAt) + 2000);
    await waitFor(async () => (await eventsFor('Pod', 'ttl-slow', 'Expired')).length > 0, {
      message: 'Expired event on the old holder',
    });
    const onLease = await waitFor(async () => (await eventsFor('Lease', 'ttl', 'Expired'))[0], {
      message: 'Expired event on the Lease',
    });
    expect(onLease.type).toBe('Warning');
    expect(onLease.message).toContain('ttl-slow');
    await waitFor(async () => (await eventsFor('Pod', 'ttl-next', 'Granted')).length > 0, {
      message: 'Granted event on the new holder',
    });
    // The expired pod runs on (its workload is fenced by the token) and is never queued again.
    expect(mainRunning(await getPod('ttl-slow'))).toBe(true);
    const after = (versions.get('ttl') ?? []).filter((v) => (v.status?.holder?.token ?? 0) >= next.token);
    expect(after.every((v) => !(v.status?.queue ?? []).some((q) => q.pod === 'ttl-slow'))).toBe(true);
    await client.delete(`${PODS}/ttl-slow`);
    await client.delete(`${PODS}/ttl-next`);
    expect(violations).toEqual([]);
  });

  it("graceful deletion keeps the lease until the holder's main container stops, then hands over while the pod object still exists", async () => {
    await createLease('del', '10m');
    const marker = uniq('del');
    // The holder traps SIGTERM and works on after its deletion (terminationGracePeriodSeconds 30); a finalizer
    // keeps its object in the API after its containers stopped: neither the deletion nor the object decides.
    await client.create<Pod>(
      PODS,
      podManifest('del-holder', {
        annotations: { 'konductor.io/lease': 'del' },
        script: trapsTerm(untilReleased(marker)),
        terminationGracePeriodSeconds: 30,
        finalizers: ['konductor.io/test-keep'],
      }),
    );
    try {
      await waitFor(
        async () => (await holderOf('del'))?.pod === 'del-holder' && mainRunning(await getPod('del-holder')),
        { message: 'holder runs' },
      );
      const first = (await holderOf('del'))!;
      await createPod('del-next', { 'konductor.io/lease': 'del' }, timed('true'));
      await waitFor(async () => (await getLease('del')).status?.waiting === 1, { message: 'next waits' });
      await client.delete(`${PODS}/del-holder`);
      // The kubelet has sent SIGTERM; the holder works on.
      await waitFor(async () => /^term$/m.test(await nsPods.containerLog('del-holder', 'main')), {
        message: 'SIGTERM delivered to the holder',
      });
      // A pod created after the deletion is queued: the controller has seen the deletion (one ordered pod
      // watch) and arbitrated after it — and the lease stays with the deleted, still running holder.
      await createPod('del-probe', { 'konductor.io/lease': 'del' }, 'true');
      const seen = await waitFor(
        async () => {
          const l = await getLease('del');
          return l.status?.waiting === 2 ? l : undefined;
        },
        { message: 'the probe is queued' },
      );
      expect(seen.status?.holder?.pod).toBe('del-holder');
      expect(mainRunning(await getPod('del-holder'))).toBe(true);

      await release(marker);
      const next = await waitFor(
        async () => {
          const h = await holderOf('del');
          return h?.pod === 'del-next' ? h : undefined;
        },
        { timeoutMs: 90_000, message: 'next granted once the holder stopped' },
      );
      expect(next.token).toBeGreaterThan(first.token);
      const old = await getPod('del-holder');
      expect(old.metadata.deletionTimestamp, 'the old holder is still in the API').toBeDefined();
      // Ground truth: the next holder's main container started after the old one's ended.
      await nsPods.waitForPhase('del-next', 'Succeeded', { message: 'next ran' });
      const [, holderEnd] = await nsPods.loggedIntervalUs('del-holder', 'main');
      const [nextStart] = await nsPods.loggedIntervalUs('del-next', 'main');
      expect(nextStart, 'del-next started before del-holder stopped').toBeGreaterThan(holderEnd);
      await waitFor(async () => (await eventsFor('Pod', 'del-holder', 'Released')).length > 0, {
        message: 'Released event on the deleted holder',
      });
    } finally {
      await client
        .patchMerge(`${PODS}/del-holder`, { metadata: { finalizers: null } })
        .catch(() => undefined);
    }
    await client.delete(`${PODS}/del-probe`).catch(() => undefined);
    expect(violations).toEqual([]);
  }, 240_000);
});

describe('Lease: the manager is killed while one pod holds and others wait', () => {
  it('after a restart the lease is handed over in order, never to two pods', async () => {
    await createLease('crash', '5m');
    const marker = uniq('crash');
    const names = [0, 1, 2].map((i) => `crash-${i}`);
    for (const [i, name] of names.entries())
      await createPod(name, { 'konductor.io/lease': 'crash' }, untilReleased(`${marker}-${i}`));
    const holder = await waitFor(
      async () => {
        const h = await holderOf('crash');
        return h && mainRunning(await getPod(h.pod)) && (await getLease('crash')).status?.waiting === 2
          ? h
          : undefined;
      },
      { message: 'one holder runs, two wait' },
    );
    await konductor.install.stopManager('SIGKILL');
    // While the manager is down, the holder finishes; nobody may be granted meanwhile.
    await release(`${marker}-${holder.pod.split('-')[1]}`);
    await waitFor(async () => succeeded(holder.pod), {
      message: 'holder finished while the manager was down',
    });
    expect((await holderOf('crash'))?.pod).toBe(holder.pod);
    await konductor.install.startManager();
    await waitFor(
      async () => {
        const h = await holderOf('crash');
        if (h) await release(`${marker}-${h.pod.split('-')[1]}`);
        return (await Promise.all(names.map(succeeded))).every(Boolean);
      },
      { timeoutMs: 60_000, message: 'all three pods completed' },
    );
    await waitFor(async () => (await getLease('crash')).status?.phase === 'Available', {
      message: 'lease Available',
    });
    const crash = await intervals(names);
    expectNoOverlap(crash);
    expectHandoverAfterEnd('crash', crash);
    const seq = grantSequence('crash');
    expect(seq.map((s) => s.pod).sort()).toEqual(names);
    for (let i = 1; i < seq.length; i++) expect(seq[i]!.token).toBeGreaterThan(seq[i - 1]!.token);
    expect(violations).toEqual([]);
  });
});
