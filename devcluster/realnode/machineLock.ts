/**
 * One real node per machine: it owns host-global state (iptables chains, a bridge, kubelet ports
 * 10250/10248, kube-proxy's 10249/10256). A `mkdir` lock in /run/lock with the owner's PID and
 * start time; a lock whose owner is gone (crashed, or a recycled PID) is taken over, and the
 * caller then cleans up what the crashed owner left (cleanup.ts).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import { isProcessAlive, processStartTime } from '../processes.ts';

export const DEFAULT_LOCK_DIR = '/run/lock/konductor-realnode';

export interface LockOwner {
  pid: number;
  startTime?: string;
  since: string;
  /** What holds it (the command line), for the message a waiting run prints. */
  command: string;
}

export interface MachineLock {
  dir: string;
  /** True when the previous owner died holding the lock: its leftovers need cleaning. */
  tookOverFrom?: LockOwner;
  release(): void;
}

export interface AcquireLockOptions {
  dir?: string;
  /** How long to wait for a live owner (default 0: fail at once). */
  waitMs?: number;
  log?: (line: string) => void;
}

function readOwner(dir: string): LockOwner | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

/** True while the recorded owner process still runs (same PID and start time). */
export function ownerAlive(owner: LockOwner): boolean {
  if (!isProcessAlive(owner.pid)) return false;
  const st = processStartTime(owner.pid);
  return !owner.startTime || !st || st === owner.startTime;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function acquireMachineLock(opts: AcquireLockOptions = {}): Promise<MachineLock> {
  const dir = opts.dir ?? DEFAULT_LOCK_DIR;
  const log = opts.log ?? (() => {});
  const deadline = Date.now() + (opts.waitMs ?? 0);
  let tookOverFrom: LockOwner | undefined;
  let lastNote = 0;
  let ownerlessSince: number | undefined;
  for (;;) {
    try {
      mkdirSync(dir, { recursive: false });
      const me: LockOwner = {
        pid: process.pid,
        startTime: processStartTime(process.pid),
        since: new Date().toISOString(),
        command: process.argv.slice(1).join(' '),
      };
      writeFileSync(join(dir, 'owner.json'), JSON.stringify(me, null, 2));
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        mkdirSync(join(dir, '..'), { recursive: true });
        continue;
      }
      if (code !== 'EEXIST') throw err;
    }
    const owner = readOwner(dir);
    if (!owner) {
      // Between the owner's mkdir and its write, or it died right there: give it a moment.
      ownerlessSince ??= Date.now();
      if (Date.now() - ownerlessSince > 5000) rmSync(dir, { recursive: true, force: true });
      await sleep(200);
      continue;
    }
    ownerlessSince = undefined;
    if (!ownerAlive(owner)) {
      log(`the previous real node (pid ${owner.pid}, since ${owner.since}) is gone: taking over its lock`);
      tookOverFrom = owner;
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    const holder = `pid ${owner.pid} since ${owner.since}: ${owner.command}`;
    if (Date.now() >= deadline) {
      throw konductorError(
        'KDR_REALNODE_BUSY',
        `a real node already runs on this machine (${holder}). One per machine: it owns host-wide ` +
          `state (iptables, the bridge, ports 10250/10256). Stop it, or wait for it (lock ${dir}).`,
      );
    }
    if (Date.now() - lastNote >= 15_000) {
      lastNote = Date.now();
      log(`waiting for the real node held by ${holder}`);
    }
    await sleep(500);
  }
  let released = false;
  return {
    dir,
    tookOverFrom,
    release: () => {
      if (released) return;
      released = true;
      const owner = readOwner(dir);
      if (owner?.pid === process.pid) rmSync(dir, { recursive: true, force: true });
    },
  };
}
