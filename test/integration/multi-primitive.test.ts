/**
 * Pods with several konductor annotations, end to end: they pass gate, barrier, lease and semaphore in
 * that order (docs/arbitration.md, "Acquisition order"), so nothing is held while a pod waits at a gate
 * or barrier. Independent watchers record every status version of every primitive; resourceVersions are
 * etcd revisions, global to the store, so versions of different objects can be put in one order.
 */
import { describe, expect, it } from 'vitest';
import type { Barrier, Gate, Lease, Primitive, Semaphore } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
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
import { watchObjects } from '../helpers/watchers.ts';

const ns = testNamespace('multi');
const konductor = useKonductor(ns);
const client = ns.client;
const base = `/apis/sync.konductor.io/v1/namespaces/${ns.name}`;
const nsPods = namespacePods(ns);
const { getPod, waitLog, uniq } = nsPods;
const PLURAL = { Semaphore: 'semaphores', Lease: 'leases', Barrier: 'barriers', Gate: 'gates' } as const;
type Kind = keyof typeof PLURAL;

interface Version {
  kind: Kind;
  name: string;
  rv: bigint;
  object: Primitive;
}
/** Every status version of every primitive in the namespace, and every invariant violation. */
const timeline: Version[] = [];
const violations: string[] = [];

function check(kind: Kind, p: Primitive): void {
  const at = `${kind} ${p.metadata.name}@${p.metadata.resourceVersion}`;
  if (kind === 'Semaphore') {
    const s = p as Semaphore;
    const held = (s.status?.holders ?? []).reduce((n, h) => n + h.permits, 0);
    if (held > s.spec.permits) violations.push(`${at}: ${held} permits held > ${s.spec.permits}`);
  }
  if (kind === 'Barrier') {
    const b = p as Barrier;
    if (b.status?.phase === 'Open' && b.status.arrived < (b.spec.quorum ?? b.spec.expected))
      violations.push(`${at}: Open with ${b.status.arrived} arrived`);
  }
  if (kind === 'Gate') {
    const g = p as Gate;
    if (g.status?.phase === 'Open' && g.status.conditionStatuses.some((c) => !c.met))
      violations.push(`${at}: Open with an unmet condition`);
  }
}

for (const kind of Object.keys(PLURAL) as Kind[]) {
  watchObjects<Primitive>(client, `${base}/${PLURAL[kind]}`, (p) => {
    timeline.push({
      kind,
      name: p.metadata.name ?? '',
      rv: BigInt(p.metadata.resourceVersion ?? '0'),
      object: p,
    });
    check(kind, p);
  });
}

/** The first recorded version (lowest resourceVersion) of kind/name matching `pred`. */
function firstRv<T extends Primitive>(kind: Kind, name: string, pred: (o: T) => boolean): bigint | undefined {
  let best: bigint | undefined;
  for (const v of timeline) {
    if (v.kind !== kind || v.name !== name || !pred(v.object as T)) continue;
    if (best === undefined || v.rv < best) best = v.rv;
  }
  return best;
}
const versionsOf = <T extends Primitive>(kind: Kind, name: string) =>
  timeline
    .filter((v) => v.kind === kind && v.name === name)
    .map((v) => ({ rv: v.rv, object: v.object as T }));

const semHas = (pod: string) => (s: Semaphore) =>
  (s.status?.holders ?? []).some((h) => h.pod === pod) || (s.status?.queue ?? []).some((q) => q.pod === pod);
const semHolds = (pod: string) => (s: Semaphore) => (s.status?.holders ?? []).some((h) => h.pod === pod);
const leaseHas = (pod: string) => (l: Lease) =>
  l.status?.holder?.pod === pod || (l.status?.queue ?? []).some((q) => q.pod === pod);
const leaseHolds = (pod: string) => (l: Lease) => l.status?.holder?.pod === pod;

async function create(kind: Kind, name: string, spec: Record<string, unknown>): Promise<void> {
  await client.create(`${base}/${PLURAL[kind]}`, {
    apiVersion: 'sync.konductor.io/v1',
    kind,
    metadata: { name },
    spec,
  });
}
const get = <T extends Primitive>(kind: Kind, name: string) =>
  client.get<T>(`${base}/${PLURAL[kind]}/${name}`);

/** A pod whose main container prints its start time (ns) and its grant.json, then runs `body`. */
const createPod = (name: string, annotations: Record<string, string>, body: string) =>
  nsPods.createPod(name, {
    annotations,
    script: startStamped(`echo grant $(cat /var/run/konductor/grant.json); ${body}`),
  });

const createJob = (name: string, script: string) => nsPods.createJob(name, script);

/** The grants in a pod's grant.json, as its main container printed it. */
async function grantsOf(pod: string): Promise<{ kind: string; name: string; token: number }[]> {
  const log = await nsPods.containerLog(pod, 'main');
  const file = JSON.parse(/^grant (.*)$/m.exec(log)?.[1] ?? '{}') as {
    grants?: { kind: string; name: string; token: number }[];
  };
  return file.grants ?? [];
}

describe('several annotations on one pod', () => {
  it('gate + semaphore: no permit is held or queued for while the pod waits at the gate', async () => {
    await create('Semaphore', 'gs-slots', { permits: 1 });
    await create('Gate', 'gs-gate', { conditions: [{ type: 'Job', name: 'gs-prep', state: 'Complete' }] });
    const prep = uniq('gs-prep');
    await createJob('gs-prep', untilReleased(prep));
    await createPod('gs', { 'konductor.io/gate': 'gs-gate', 'konductor.io/semaphore': 'gs-slots' }, 'true');
    await waitFor(async () => waitingInInit(await getPod('gs')), { message: 'gs waits' });
    await waitFor(async () => (await waitLog('gs')).includes(`waiting for gate ${ns.name}/gs-gate`), {
      message: 'gs says it waits for the gate',
    });
    // The permit stays free for others: a pod with only the semaphore takes and returns it meanwhile.
    await createPod('gs-other', { 'konductor.io/semaphore': 'gs-slots' }, 'true');
    await nsPods.waitForPhase('gs-other', 'Succeeded', { message: 'gs-other ran' });
    await waitFor(async () => (await get<Semaphore>('Semaphore', 'gs-slots')).status?.inUse === 0, {
      message: 'permit back',
    });
    const sem = await get<Semaphore>('Semaphore', 'gs-slots');
    expect(sem.status?.waiting).toBe(0);
    expect(firstRv<Semaphore>('Semaphore', 'gs-slots', semHas('gs'))).toBeUndefined();
    expect(mainStarted(await getPod('gs'))).toBe(false);

    await release(prep);
    await nsPods.waitForPhase('gs', 'Succeeded', {
      timeoutMs: 30_000,
      message: 'gs ran',
    });
    const gateOpen = firstRv<Gate>('Gate', 'gs-gate', (g) => g.status?.phase === 'Open');
    const semFirst = firstRv<Semaphore>('Semaphore', 'gs-slots', semHas('gs'));
    expect(gateOpen).toBeDefined();
    expect(semFirst).toBeDefined();
    expect(semFirst! > gateOpen!, 'gs queued for the semaphore only after the gate opened').toBe(true);
    expect((await grantsOf('gs')).map((g) => `${g.kind}/${g.name}`)).toEqual([
      'Gate/gs-gate',
      'Semaphore/gs-slots',
    ]);
    const log = await waitLog('gs');
    expect(log.indexOf(`gate ${ns.name}/gs-gate is open`)).toBeGreaterThanOrEqual(0);
    expect(log.indexOf(`granted semaphore ${ns.name}/gs-slots`)).toBeGreaterThan(
      log.indexOf(`gate ${ns.name}/gs-gate is open`),
    );
    expect(violations).toEqual([]);
  });

  it('gate + barrier + lease + semaphore: acquired in that order, one pod at a time past the lease', async () => {
    await create('Gate', 'all-gate', { conditions: [{ type: 'Job', name: 'all-prep', state: 'Complete' }] });
    await create('Barrier', 'all-barrier', { expected: 2 });
    await create('Lease', 'all-lease', { ttl: '5m' });
    await create('Semaphore', 'all-slots', { permits: 1 });
    const prep = uniq('all-prep');
    await createJob('all-prep', untilReleased(prep));
    const annotations = {
      'konductor.io/gate': 'all-gate',
      'konductor.io/barrier': 'all-barrier',
      'konductor.io/lease': 'all-lease',
      'konductor.io/semaphore': 'all-slots',
    };
    const marker = uniq('all');
    await createPod('all-a', annotations, untilReleased(`${marker}-a`));
    await createPod('all-b', annotations, untilReleased(`${marker}-b`));
    await waitFor(async () => (await Promise.all(['all-a', 'all-b'].map(getPod))).every(waitingInInit), {
      message: 'both wait',
    });
    await waitFor(async () => (await get<Gate>('Gate', 'all-gate')).status?.phase === 'Waiting', {
      message: 'gate evaluated',
    });
    // At the gate: not arrived at the barrier, nothing held or queued for.
    expect((await get<Barrier>('Barrier', 'all-barrier')).status?.arrived ?? 0).toBe(0);
    expect((await get<Lease>('Lease', 'all-lease')).status?.holder).toBeUndefined();

    await release(prep);
    const first = await waitFor(
      async () => {
        const l = await get<Lease>('Lease', 'all-lease');
        const s = await get<Semaphore>('Semaphore', 'all-slots');
        const h = l.status?.holder?.pod;
        return h && s.status?.holders?.[0]?.pod === h && l.status?.waiting === 1 ? h : undefined;
      },
      { timeoutMs: 30_000, message: 'one pod holds lease and permit, the other waits for the lease' },
    );
    const second = first === 'all-a' ? 'all-b' : 'all-a';
    // The second pod passed the barrier but waits for the lease: it is not in the semaphore's queue.
    const sem = await get<Semaphore>('Semaphore', 'all-slots');
    expect(semHas(second)(sem)).toBe(false);
    expect(mainStarted(await getPod(second))).toBe(false);
    await waitFor(async () => (await waitLog(second)).includes(`waiting for lease ${ns.name}/all-lease`), {
      message: 'the second pod says it waits for the lease',
    });
    await release(`${marker}-${first.slice(-1)}`);
    await waitFor(async () => (await get<Lease>('Lease', 'all-lease')).status?.holder?.pod === second, {
      message: 'lease handed to the second pod',
    });
    await release(`${marker}-${second.slice(-1)}`);
    await nsPods.waitForPhase(['all-a', 'all-b'], 'Succeeded', {
      timeoutMs: 30_000,
      message: 'both pods Succeeded',
    });

    const gateOpen = firstRv<Gate>('Gate', 'all-gate', (g) => g.status?.phase === 'Open')!;
    const barrierFirst = firstRv<Barrier>('Barrier', 'all-barrier', (b) => (b.status?.arrived ?? 0) > 0)!;
    const barrierOpen = firstRv<Barrier>('Barrier', 'all-barrier', (b) => b.status?.phase === 'Open')!;
    expect(barrierFirst > gateOpen, 'arrivals only after the gate opened').toBe(true);
    for (const pod of [first, second]) {
      const leaseFirst = firstRv<Lease>('Lease', 'all-lease', leaseHas(pod))!;
      const leaseHeld = firstRv<Lease>('Lease', 'all-lease', leaseHolds(pod))!;
      const semFirst = firstRv<Semaphore>('Semaphore', 'all-slots', semHas(pod))!;
      expect(leaseFirst > barrierOpen, `${pod}: lease queue only after the barrier opened`).toBe(true);
      expect(semFirst > leaseHeld, `${pod}: semaphore queue only once it held the lease`).toBe(true);
      expect((await grantsOf(pod)).map((g) => g.kind)).toEqual(['Gate', 'Barrier', 'Lease', 'Semaphore']);
    }
    // Never both past the lease: the semaphore (1 permit) and lease saw them strictly one after the other.
    const secondSem = firstRv<Semaphore>('Semaphore', 'all-slots', semHolds(second))!;
    const firstGone = versionsOf<Lease>('Lease', 'all-lease').find(
      (v) =>
        v.object.status?.holder?.pod !== first &&
        v.rv > firstRv<Lease>('Lease', 'all-lease', leaseHolds(first))!,
    )!;
    expect(secondSem > firstGone.rv).toBe(true);
    expect(violations).toEqual([]);
  });

  it('lease + semaphore with a manager crash in the middle: order and invariants hold', async () => {
    await create('Lease', 'ls-lease', { ttl: '5m' });
    await create('Semaphore', 'ls-slots', { permits: 1 });
    const blocker = uniq('ls-blocker');
    await createPod('ls-blocker', { 'konductor.io/semaphore': 'ls-slots' }, untilReleased(blocker));
    await waitFor(async () => semHolds('ls-blocker')(await get<Semaphore>('Semaphore', 'ls-slots')), {
      message: 'blocker holds the permit',
    });
    const marker = uniq('ls');
    const annotations = { 'konductor.io/lease': 'ls-lease', 'konductor.io/semaphore': 'ls-slots' };
    await createPod('ls-x', annotations, untilReleased(`${marker}-x`));
    await waitFor(async () => (await get<Lease>('Lease', 'ls-lease')).status?.holder?.pod === 'ls-x', {
      message: 'x holds the lease',
    });
    await createPod('ls-y', annotations, untilReleased(`${marker}-y`));
    await waitFor(
      async () =>
        (await get<Lease>('Lease', 'ls-lease')).status?.waiting === 1 &&
        (await get<Semaphore>('Semaphore', 'ls-slots')).status?.waiting === 1,
      { message: 'x waits for the permit, y for the lease' },
    );
    const sem = await get<Semaphore>('Semaphore', 'ls-slots');
    expect(sem.status?.queue?.map((q) => q.pod)).toEqual(['ls-x']);
    await waitFor(async () => (await waitLog('ls-x')).includes(`granted lease ${ns.name}/ls-lease`), {
      message: 'x logged its lease grant',
    });
    expect(await waitLog('ls-x')).toContain(`waiting for semaphore ${ns.name}/ls-slots`);

    // Crash while x holds the lease and waits for the permit; the blocker finishes while the manager is down.
    await konductor.install.stopManager('SIGKILL');
    await release(blocker);
    await nsPods.waitForPhase('ls-blocker', 'Succeeded', { message: 'blocker done' });
    await konductor.install.startManager();
    await waitFor(
      async () => (await getPod('ls-x')).status?.containerStatuses?.some((c) => c.state?.running),
      {
        timeoutMs: 30_000,
        message: 'x runs after the restart',
      },
    );
    const during = await get<Semaphore>('Semaphore', 'ls-slots');
    expect(during.status?.holders?.map((h) => h.pod)).toEqual(['ls-x']);
    expect(semHas('ls-y')(during)).toBe(false);
    await release(`${marker}-x`);
    await release(`${marker}-y`);
    await nsPods.waitForPhase('ls-y', 'Succeeded', {
      timeoutMs: 30_000,
      message: 'y ran',
    });
    const yLease = firstRv<Lease>('Lease', 'ls-lease', leaseHolds('ls-y'))!;
    const ySem = firstRv<Semaphore>('Semaphore', 'ls-slots', semHas('ls-y'))!;
    expect(ySem > yLease, 'y queued for the permit only once it held the lease').toBe(true);
    const tokens = versionsOf<Lease>('Lease', 'ls-lease')
      .map((v) => v.object.status?.holder)
      .filter((h) => h !== undefined);
    expect(tokens.find((h) => h.pod === 'ls-y')!.token).toBeGreaterThan(
      tokens.find((h) => h.pod === 'ls-x')!.token,
    );
    expect(violations).toEqual([]);
  });
});
