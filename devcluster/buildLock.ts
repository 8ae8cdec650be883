/**
 * One build at a time per cache directory, across processes and worktrees: a lock file with the holder's
 * PID; a lock whose holder is gone is taken over.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** mkdir-based lock with the owner's PID; waits for a live owner, takes over from a dead one. */
export async function withBuildLock<T>(
  lockDir: string,
  log: (l: string) => void,
  heartbeatMs: number,
  fn: () => Promise<T>,
): Promise<T> {
  const ownerFile = join(lockDir, 'owner.json');
  const started = Date.now();
  let lastNote = 0;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(ownerFile, JSON.stringify({ pid: process.pid, since: new Date().toISOString() }));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner: { pid?: number } = {};
    try {
      owner = JSON.parse(await readFile(ownerFile, 'utf8')) as { pid?: number };
    } catch {
      /* the owner is between mkdir and writeFile, or crashed there */
    }
    const ownerGone = owner.pid !== undefined ? !isAlive(owner.pid) : Date.now() - started > 10_000;
    if (ownerGone) {
      log(`removing stale build lock ${lockDir} (owner pid ${owner.pid ?? '?'} is gone)`);
      await rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() - lastNote >= heartbeatMs) {
      lastNote = Date.now();
      log(
        `waiting for another build (pid ${owner.pid}) to finish: ${Math.round((Date.now() - started) / 1000)} s`,
      );
    }
    await sleep(500);
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}
