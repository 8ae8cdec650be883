/**
 * The devcluster's konductor install supervises its manager as the Deployment it stands for would
 * (issue 15, item 11): a manager killed with SIGKILL is restarted with backoff, the log says so, and the
 * Semaphore's IN-USE returns to the truth — the holder that finished while the manager was dead is
 * released and the waiter granted.
 */
import { describe, expect, it } from 'vitest';
import type { Semaphore } from '../../api/types.ts';
import { isProcessAlive } from '../../devcluster/processInfo.ts';
import { useKonductor } from '../helpers/konductor.ts';
import { testNamespace } from '../helpers/namespace.ts';
import { mainRunning, namespacePods, release, untilReleased } from '../helpers/pods.ts';
import { waitFor } from '../helpers/waitFor.ts';

const ns = testNamespace('supervision');
const lines: string[] = [];
const konductor = useKonductor(ns, [], undefined, (line) => lines.push(line));
const client = ns.client;
const SEMS = `/apis/sync.konductor.io/v1/namespaces/${ns.name}/semaphores`;
const nsPods = namespacePods(ns);
const getSem = (name: string) => client.get<Semaphore>(`${SEMS}/${name}`);

describe('manager supervision', () => {
  it('a manager killed with SIGKILL comes back, says so, and IN-USE returns to the truth', async () => {
    await nsPods.createSemaphore('crash', 1);
    const marker = nsPods.uniq('crash');
    await nsPods.createPod('first', {
      annotations: { 'konductor.io/semaphore': 'crash' },
      script: untilReleased(marker),
    });
    await waitFor(async () => mainRunning(await nsPods.getPod('first')), { message: 'first runs' });
    await nsPods.createPod('second', {
      annotations: { 'konductor.io/semaphore': 'crash' },
      script: 'sleep 3600',
    });
    await waitFor(async () => (await getSem('crash')).status?.waiting === 1, { message: 'second waits' });

    const killed = konductor.install.manager();
    expect(killed).toBeDefined();
    const pid = killed?.pid ?? 0;
    process.kill(pid, 'SIGKILL'); // a crash (OOM kill), not a stop: nobody asked for it
    await waitFor(() => !isProcessAlive(pid), { message: 'the manager is dead' });
    // The holder finishes while the manager is dead.
    await release(marker);
    await nsPods.waitForPhase('first', 'Succeeded', { timeoutMs: 60_000 });

    const next = await waitFor(
      () => {
        const m = konductor.install.manager();
        return m && m.pid !== pid && !m.exitInfo ? m : undefined;
      },
      { timeoutMs: 60_000, message: 'a new manager process' },
    );
    expect(konductor.install.restarts()).toBe(1);
    expect(lines.join('\n')).toMatch(
      new RegExp(
        `konductor manager \\(pid ${pid}\\) exited unexpectedly \\(code null, signal SIGKILL\\); restarting it in 1 s`,
      ),
    );
    await waitFor(() => lines.some((l) => l.includes(`restarted (pid ${next.pid}) and ready`)), {
      timeoutMs: 60_000,
      message: 'the restart logged as ready',
    });

    // The truth: first is done, second holds and runs; IN-USE 1.
    await waitFor(async () => mainRunning(await nsPods.getPod('second')), {
      timeoutMs: 60_000,
      message: 'second runs',
    });
    const sem = await waitFor(
      async () => {
        const s = await getSem('crash');
        return s.status?.holders?.map((h) => h.pod).join() === 'second' ? s : undefined;
      },
      { message: 'second is the only holder' },
    );
    expect(sem.status?.inUse).toBe(1);
    expect(sem.status?.waiting).toBe(0);
  });
});
