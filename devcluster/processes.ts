/**
 * Child-process supervision for the devcluster: spawn with logs to files, a PID registry file per
 * cluster (so a later run can reap what a crashed run left behind), stop by PID (SIGTERM, then
 * SIGKILL after a grace period), and last-resort kills on the parent's exit and signals.
 *
 * A PID is only ever killed after checking it is still the process we started: its start time
 * (/proc/<pid>/stat) must equal the one recorded at spawn.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { isProcessAlive, processStartTime } from './processInfo.ts';
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  component: string;
  pid: number;
  bin: string;
  args: string[];
  logPath: string;
  child: ChildProcess;
  /** Set once the process has exited. */
  exitInfo?: ExitInfo;
  /** Set by whoever stops this one process on purpose, so its exit is not reported as unexpected. */
  expectedExit?: boolean;
  exited: Promise<ExitInfo>;
}

interface RegistryEntry {
  component: string;
  pid: number;
  startTime?: string;
  bin: string;
  logPath: string;
}

interface RegistryFile {
  id: string;
  ownerPid: number;
  ownerStartTime?: string;
  dataDir: string;
  keepData: boolean;
  processes: RegistryEntry[];
}

/** Per-user directory of PID registry files. */
export function defaultRegistryDir(): string {
  let user = 'user';
  try {
    user = String(userInfo().uid);
  } catch {
    /* no passwd entry */
  }
  return join(tmpdir(), `konductor-devcluster-${user}`);
}

/** True when `pid` is alive and still the process recorded in `entry`. */
function isSameProcess(entry: { pid: number; startTime?: string; bin: string }): boolean {
  if (!isProcessAlive(entry.pid)) return false;
  const st = processStartTime(entry.pid);
  if (entry.startTime && st) return st === entry.startTime;
  try {
    return readFileSync(`/proc/${entry.pid}/cmdline`, 'utf8').includes(entry.bin);
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(isProcessAlive);
  while (alive.length && Date.now() < deadline) {
    await sleep(50);
    alive = alive.filter(isProcessAlive);
  }
  return alive;
}

/**
 * Kills what earlier, crashed runs left behind: every registry file whose owner process is gone.
 * Returns the PIDs killed.
 */
export async function reapStaleClusters(
  registryDir = defaultRegistryDir(),
  log: (line: string) => void = () => {},
): Promise<number[]> {
  if (!existsSync(registryDir)) return [];
  const killed: number[] = [];
  for (const name of readdirSync(registryDir)) {
    if (!name.endsWith('.json')) continue;
    const file = join(registryDir, name);
    let reg: RegistryFile;
    try {
      reg = JSON.parse(readFileSync(file, 'utf8')) as RegistryFile;
    } catch {
      continue; // being written right now, or foreign
    }
    const ownerAlive = isSameProcess({ pid: reg.ownerPid, startTime: reg.ownerStartTime, bin: 'node' });
    if (ownerAlive) continue;
    const ours = reg.processes.filter(isSameProcess);
    for (const p of ours) {
      try {
        process.kill(p.pid, 'SIGKILL');
        killed.push(p.pid);
        log(`reaped stale ${p.component} (pid ${p.pid}) of crashed cluster ${reg.id}`);
      } catch {
        /* already gone */
      }
    }
    await waitGone(
      ours.map((p) => p.pid),
      5000,
    );
    if (!reg.keepData) await rm(reg.dataDir, { recursive: true, force: true });
    rmSync(file, { force: true });
  }
  return killed;
}

export interface ProcessGroupOptions {
  id: string;
  dataDir: string;
  keepData: boolean;
  registryDir?: string;
  /** Kill the children on the parent's exit, SIGINT and SIGTERM (default true). */
  handleSignals?: boolean;
  /** Called when a process exits while the group is not stopping. */
  onUnexpectedExit?: (proc: ManagedProcess) => void;
}

/** The processes of one cluster. */
export class ProcessGroup {
  readonly id: string;
  readonly registryFile: string;
  private readonly opts: ProcessGroupOptions;
  private readonly procs: ManagedProcess[] = [];
  private stopping = false;
  private readonly onExit = () => this.abandonSync();
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.abandonSync();
    this.removeHooks();
    // If nobody else handles the signal, restore its default action (terminate).
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };

  constructor(opts: ProcessGroupOptions) {
    this.opts = opts;
    this.id = opts.id;
    this.registryFile = join(opts.registryDir ?? defaultRegistryDir(), `${opts.id}.json`);
    if (opts.handleSignals !== false) {
      process.on('exit', this.onExit);
      process.on('SIGINT', this.onSignal);
      process.on('SIGTERM', this.onSignal);
      process.on('SIGHUP', this.onSignal);
    }
  }

  /** True once stop() or killAllSync() began: nothing should be (re)started in this group. */
  get isStopping(): boolean {
    return this.stopping;
  }

  get processes(): readonly ManagedProcess[] {
    return this.procs;
  }

  /** PIDs of every process this group started. */
  get pids(): number[] {
    return this.procs.map((p) => p.pid);
  }

  find(component: string): ManagedProcess | undefined {
    return this.procs.find((p) => p.component === component);
  }

  private writeRegistry(): void {
    const reg: RegistryFile = {
      id: this.id,
      ownerPid: process.pid,
      ownerStartTime: processStartTime(process.pid),
      dataDir: this.opts.dataDir,
      keepData: this.opts.keepData,
      processes: this.procs
        .filter((p) => !p.exitInfo)
        .map((p) => ({
          component: p.component,
          pid: p.pid,
          startTime: processStartTime(p.pid),
          bin: p.bin,
          logPath: p.logPath,
        })),
    };
    const tmp = `${this.registryFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(reg, null, 2));
    renameSync(tmp, this.registryFile);
  }

  /** Starts a process with stdout+stderr appended to `logPath`. Resolves once it is spawned. */
  async spawn(
    component: string,
    bin: string,
    args: string[],
    logPath: string,
    env?: NodeJS.ProcessEnv,
  ): Promise<ManagedProcess> {
    await mkdir(join(this.registryFile, '..'), { recursive: true });
    const fd = openSync(logPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn(bin, args, { stdio: ['ignore', fd, fd], env: env ?? process.env });
    } finally {
      closeSync(fd);
    }
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid ?? 0));
      child.once('error', (err) => reject(new Error(`cannot start ${component} (${bin}): ${err.message}`)));
    });
    let resolveExit!: (e: ExitInfo) => void;
    const exited = new Promise<ExitInfo>((r) => {
      resolveExit = r;
    });
    const proc: ManagedProcess = { component, pid, bin, args, logPath, child, exited };
    child.on('exit', (code, signal) => {
      proc.exitInfo = { code, signal };
      resolveExit(proc.exitInfo);
      if (!this.stopping && !proc.expectedExit) this.opts.onUnexpectedExit?.(proc);
    });
    this.procs.push(proc);
    this.writeRegistry();
    return proc;
  }

  /** SIGTERM, wait up to graceMs, then SIGKILL; resolves when all given processes are gone. */
  async terminate(procs: readonly ManagedProcess[], graceMs: number): Promise<void> {
    const live = procs.filter((p) => !p.exitInfo);
    for (const p of live) p.child.kill('SIGTERM');
    const deadline = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
    await Promise.all(live.map((p) => Promise.race([p.exited, deadline])));
    for (const p of live) if (!p.exitInfo) p.child.kill('SIGKILL');
    await Promise.all(live.map((p) => p.exited));
  }

  /** Stops all processes in `order` (components named first go first; the rest last, in reverse start order). */
  async stop(order: string[] = [], graceMs = 5000): Promise<void> {
    this.stopping = true;
    const remaining = [...this.procs].reverse();
    for (const component of order) {
      const batch = remaining.filter((p) => p.component === component);
      await this.terminate(batch, graceMs);
    }
    await this.terminate(remaining, graceMs);
    this.removeHooks();
    try {
      unlinkSync(this.registryFile);
    } catch {
      /* never written or already gone */
    }
  }

  /** Synchronous last resort (process 'exit' and signals): SIGKILL every live child. */
  killAllSync(): void {
    this.stopping = true;
    for (const p of this.procs) {
      if (p.exitInfo) continue;
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  /** killAllSync, then removes the registry file and (unless kept) the data directory. */
  abandonSync(): void {
    this.killAllSync();
    try {
      rmSync(this.registryFile, { force: true });
      if (!this.opts.keepData) rmSync(this.opts.dataDir, { recursive: true, force: true });
    } catch {
      /* best effort: the next start reaps what is left */
    }
  }

  private removeHooks(): void {
    process.off('exit', this.onExit);
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    process.off('SIGHUP', this.onSignal);
  }
}
