/**
 * Deleting and recreating a primitive while its holders run (issue 15, item 4). The status — the only record
 * of the holders — goes with the object; the pods do not. The new object's first decision adopts the pods that
 * still run on a grant of that name before it grants anything, and its fencing tokens start above every token
 * of the old object (controller/arbitration/adoption.ts). Checked against the pods' own clocks and their
 * grant.json, also when the manager is down during the delete and recreate.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Lease, Semaphore } from '../../api/types.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { mainRunning, namespacePods, RELEASE_DIR, release, untilReleased } from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';
import { recordVersions } from '../helpers/watchers.ts';

const ns = testNamespace('recreate');
const konductor = useKonductor(ns);
const client = ns.client;
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`;
const LEASES = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/leases`;
const nsPods = namespacePods(ns);
const { getPod, uniq } = nsPods;

/** Every token any version of any Semaphore or Lease of this namespace granted, in the order seen. */
const granted: { name: string; pod: string; token: number }[] = [];
recordVersions<Semaphore>(client, SEMS, (s) => {
  for (const h of s.status?.holders ?? [])
    if (!h.adopted && !granted.some((g) => g.name === s.metadata.name && g.pod === h.pod))
      granted.push({ name: s.metadata.name ?? '', pod: h.pod, token: h.token });
});
recordVersions<Lease>(client, LEASES, (l) => {
  const h = l.status?.holder;
  if (h && !h.adopted && !granted.some((g) => g.name === l.metadata.name && g.pod === h.pod))
    granted.push({ name: l.metadata.name ?? '', pod: h.pod, token: h.token });
});

const getSem = (name: string) => client.get<Semaphore>(`${SEMS}/${name}`);
const getLease = (name: string) => client.get<Lease>(`${LEASES}/${name}`);
const semaphore = (name: string, permits: number) => ({
  apiVersion: 'sync.konductor.io/v1',
  kind: 'Semaphore',
  metadata: { name },
  spec: { permits },
});
const lease = (name: string) => ({
  apiVersion: 'sync.konductor.io/v1',
  kind: 'Lease',
  metadata: { name },
  spec: { ttl: '10m' },
});

/** Runs until released, prints its grant.json, and leaves its last clock reading in a host file. */
const holderScript = (marker: string) =>
  `echo grant $(cat /var/run/konductor/grant.json); ${untilReleased(marker)}; date +%s%N > ${RELEASE_DIR}/${marker}.end`;
/** Prints its start (ns) and its grant.json. */
const waiterScript = 'echo start $(date +%s%N); echo grant $(cat /var/run/konductor/grant.json)';
const endOf = async (marker: string) =>
  Number(BigInt((await readFile(join(RELEASE_DIR, `${marker}.end`), 'utf8')).trim()) / 1000n);
const grantIn = async (pod: string) => {
  const log = await nsPods.containerLog(pod, 'main');
  return JSON.parse(/^grant (.*)$/m.exec(log)?.[1] ?? '{}') as { token?: number; name?: string };
};

async function eventReasons(kind: string, name: string): Promise<string[]> {
  const list = await client.list<{ reason: string; involvedObject: { kind: string; name: string } }>(
    `/api/v1/namespaces/${ns.name}/events`,
  );
  return list.items
    .filter((e) => e.involvedObject.kind === kind && e.involvedObject.name === name)
    .map((e) => e.reason);
}

describe('a primitive deleted and recreated while its holder runs', () => {
  it('the new Semaphore adopts the running holder before granting anything, and tokens keep increasing', async () => {
    await client.create(SEMS, semaphore('again', 1));
    const marker = uniq('again');
    await nsPods.createPod('again-holder', {
      annotations: { 'konductor.io/semaphore': 'again' },
      script: holderScript(marker),
    });
    await waitFor(async () => mainRunning(await getPod('again-holder')), { message: 'the holder runs' });
    const oldToken = (await grantIn('again-holder')).token ?? 0;
    expect(oldToken).toBeGreaterThan(0);
    await nsPods.createPod('again-waiter', {
      annotations: { 'konductor.io/semaphore': 'again' },
      script: waiterScript,
    });
    await waitFor(async () => (await getSem('again')).status?.waiting === 1, { message: 'the waiter waits' });

    await client.delete(`${SEMS}/again`);
    await waitFor(
      async () => (await client.list(SEMS, { fieldSelector: 'metadata.name=again' })).items.length === 0,
      {
        message: 'the Semaphore is gone',
      },
    );
    await client.create(SEMS, semaphore('again', 1));
    const first = await waitFor(
      async () => {
        const s = await getSem('again');
        return s.status?.nextToken !== undefined ? s : undefined;
      },
      { message: 'the new Semaphore decided' },
    );
    expect(first.status?.holders).toEqual([
      expect.objectContaining({ pod: 'again-holder', token: 0, adopted: true }),
    ]);
    expect(first.status?.waiting).toBe(1);
    expect(first.status?.nextToken).toBeGreaterThan(oldToken);
    expect(mainRunning(await getPod('again-holder'))).toBe(true);
    await waitFor(async () => (await eventReasons('Pod', 'again-holder')).includes('Adopted'), {
      message: 'an Adopted event on the holder',
    });

    await release(marker);
    await nsPods.waitForPhase('again-waiter', 'Succeeded', { timeoutMs: 60_000, message: 'the waiter ran' });
    const start = Number(
      BigInt(/^start (\d+)$/m.exec(await nsPods.containerLog('again-waiter', 'main'))![1]!) / 1000n,
    );
    expect(start, 'the waiter started before the holder stopped').toBeGreaterThan(await endOf(marker));
    const waiterGrant = await grantIn('again-waiter');
    expect(waiterGrant.token).toBeGreaterThan(oldToken);
    expect(granted.filter((g) => g.name === 'again').map((g) => g.token)).toEqual([
      oldToken,
      waiterGrant.token,
    ]);
  });

  it('a Lease recreated while the manager is down: after the restart the holder is adopted first', async () => {
    await client.create(LEASES, lease('down'));
    const marker = uniq('down');
    await nsPods.createPod('down-holder', {
      annotations: { 'konductor.io/lease': 'down' },
      script: holderScript(marker),
    });
    await waitFor(async () => mainRunning(await getPod('down-holder')), { message: 'the holder runs' });
    const oldToken = (await grantIn('down-holder')).token ?? 0;
    await nsPods.createPod('down-waiter', {
      annotations: { 'konductor.io/lease': 'down' },
      script: waiterScript,
    });
    await waitFor(async () => (await getLease('down')).status?.waiting === 1, {
      message: 'the waiter waits',
    });

    await konductor.install.stopManager('SIGKILL');
    try {
      await client.delete(`${LEASES}/down`);
      await waitFor(
        async () => (await client.list(LEASES, { fieldSelector: 'metadata.name=down' })).items.length === 0,
        { message: 'the Lease is gone' },
      );
      await client.create(LEASES, lease('down'));
    } finally {
      await konductor.install.startManager();
    }
    const first = await waitFor(
      async () => {
        const l = await getLease('down');
        return l.status?.nextToken !== undefined ? l : undefined;
      },
      { message: 'the new Lease decided' },
    );
    expect(first.status?.holder).toMatchObject({ pod: 'down-holder', token: 0, adopted: true });
    expect(first.status?.waiting).toBe(1);
    expect(first.status?.nextToken).toBeGreaterThan(oldToken);

    await release(marker);
    await nsPods.waitForPhase('down-waiter', 'Succeeded', { timeoutMs: 60_000, message: 'the waiter ran' });
    const start = Number(
      BigInt(/^start (\d+)$/m.exec(await nsPods.containerLog('down-waiter', 'main'))![1]!) / 1000n,
    );
    expect(start, 'the waiter started before the holder stopped').toBeGreaterThan(await endOf(marker));
    expect((await grantIn('down-waiter')).token).toBeGreaterThan(oldToken);
  });
});
