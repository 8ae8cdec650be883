/**
 * One container of the process kubelet (a TEST HARNESS) = one local process, started as
 *
 *   setpriv --pdeathsig KILL -- unshare --mount --propagation private -- sh -c WRAPPER ... -- argv
 *
 * Every step execs into the next, so the PID the kubelet tracks is the command's own PID (signals
 * reach it directly, as they reach a container's PID 1). The wrapper runs in a private mount
 * namespace: it bind-mounts each volume's per-pod host directory at its mountPath (mounts never leak
 * to the host), changes to workingDir, and execs the command. `setpriv --pdeathsig` kills the
 * process if the kubelet's process dies without stopping it; the process runs in its own process
 * group, which is SIGKILLed when the command exits (like a container runtime tearing down the
 * container's leftover processes).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, join } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import type { ContainerLogWriter } from './containerLog.ts';

export interface BindMount {
  /** Host directory. */
  source: string;
  /** mountPath inside the container's mount namespace. */
  target: string;
  readOnly: boolean;
}

export interface ProcessTools {
  unshare: string;
  sh: string;
  /** Optional: sets the parent-death signal (util-linux setpriv). */
  setpriv?: string;
}

export interface ContainerSpawnSpec {
  argv: string[];
  env: Record<string, string>;
  workingDir: string;
  mounts: BindMount[];
  log: ContainerLogWriter;
}

export interface ExitStatus {
  code: number | null;
  signal: number | null;
}

const WRAPPER = [
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do',
  '  mkdir -p "$2" && mount --bind "$1" "$2" ||',
  '    { echo "process-kubelet: cannot bind-mount $1 at $2" >&2; exit 126; }',
  '  if [ "$3" = ro ]; then mount -o remount,bind,ro "$2" ||',
  '    { echo "process-kubelet: cannot make $2 read-only" >&2; exit 126; }; fi',
  '  shift 3; n=$((n - 1))',
  'done',
  'mkdir -p "$1" && cd "$1" || { echo "process-kubelet: cannot enter workingDir $1" >&2; exit 126; }',
  'shift',
  'exec "$@"',
].join('\n');

function which(name: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(
    delimiter,
  )) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Finds unshare, sh and setpriv; throws a clear error when unshare or sh is missing. */
export function findProcessTools(path = process.env.PATH): ProcessTools {
  const unshare = which('unshare', path);
  const sh = which('sh', path);
  if (!unshare || !sh) {
    throw konductorError('KDR_KUBELET_NO_UNSHARE', !unshare ? '`unshare` (util-linux)' : '`sh`');
  }
  const setpriv = which('setpriv', path);
  return setpriv ? { unshare, sh, setpriv } : { unshare, sh };
}

const SIGNALS = osConstants.signals as Record<string, number>;

/** A started container process. */
export class ContainerProcess {
  readonly pid: number;
  readonly exited: Promise<ExitStatus>;
  private exitedFlag = false;

  constructor(child: ChildProcess, log: ContainerLogWriter) {
    if (child.pid === undefined) throw new Error('no pid');
    this.pid = child.pid;
    child.stdout?.on('data', (c: Buffer) => log.write('stdout', c));
    child.stderr?.on('data', (c: Buffer) => log.write('stderr', c));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitedFlag = true;
        // Leftover processes of the container (children the command did not wait for) go with it.
        this.killGroup('SIGKILL');
        const status: ExitStatus = { code, signal: signal ? (SIGNALS[signal] ?? 9) : null };
        // Let stdout/stderr drain (normally immediate), bounded so a leaked descriptor cannot stall us.
        const timer = setTimeout(() => finish(), 200);
        const finish = () => {
          clearTimeout(timer);
          log.close();
          resolve(status);
        };
        if (child.stdout?.readableEnded !== false && child.stderr?.readableEnded !== false) finish();
        else child.once('close', finish);
      });
    });
  }

  get running(): boolean {
    return !this.exitedFlag;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.exitedFlag) return;
    try {
      process.kill(this.pid, sig);
    } catch {
      /* already gone */
    }
  }

  killGroup(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, sig);
    } catch {
      /* no such group */
    }
  }
}

/** Starts a container process; throws (synchronously or via the returned promise) if it cannot start. */
export function spawnContainer(tools: ProcessTools, spec: ContainerSpawnSpec): Promise<ContainerProcess> {
  const mountArgs = spec.mounts.flatMap((m) => [m.source, m.target, m.readOnly ? 'ro' : 'rw']);
  const inner = [
    tools.unshare,
    '--mount',
    '--propagation',
    'private',
    '--',
    tools.sh,
    '-c',
    WRAPPER,
    'process-kubelet',
    String(spec.mounts.length),
    ...mountArgs,
    spec.workingDir || '/',
    ...spec.argv,
  ];
  const argv = tools.setpriv ? [tools.setpriv, '--pdeathsig', 'KILL', '--', ...inner] : inner;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] ?? '', argv.slice(1), {
      env: spec.env,
      cwd: '/',
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.once('error', (err) => reject(err));
    child.once('spawn', () => {
      try {
        resolve(new ContainerProcess(child, spec.log));
      } catch (err) {
        reject(err);
      }
    });
  });
}
