/**
 * Runs a Dockerfile `RUN` for real: the command executes inside the build stage's root filesystem
 * (chroot), in new mount and PID namespaces (`unshare --mount --pid --fork`), with /proc, a minimal
 * /dev (null, zero, full, random, urandom, tty, shm) and the host's /etc/resolv.conf and /etc/hosts
 * bind-mounted for the command's lifetime only, and the host's network (like `docker build`'s default
 * bridge reaching the registry). When the host trusts an extra CA for its egress (NODE_EXTRA_CA_CERTS,
 * as these machines do for their TLS-inspecting egress proxy), the file is copied into a tmpfs at
 * `BUILD_CA_PATH` for the command's lifetime (the caller points the command's environment at it); it
 * never reaches a layer. Every mount lives in the private mount namespace and every process in
 * the PID namespace, so when the command ends (or is killed) nothing is left behind on the host, even
 * if this process crashes. Needs root (CAP_SYS_ADMIN, CAP_SYS_CHROOT).
 */
import { spawn } from 'node:child_process';
import { konductorError } from '../../api/errors.ts';

/** Runs in the new namespaces on the host's /bin/sh, then execs the command inside the root. */
const SETUP = `set -eu
root=$1; cwd=$2; user=$3; ca=$4; shift 4
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=0755,nosuid tmpfs "$root/dev"
for d in null zero full random urandom tty; do : > "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
mkdir "$root/dev/shm" "$root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"; ln -s /proc/self/fd/1 "$root/dev/stdout"; ln -s /proc/self/fd/2 "$root/dev/stderr"
if [ -f "$root/etc/resolv.conf" ]; then mount --bind /etc/resolv.conf "$root/etc/resolv.conf"; fi
if [ -f "$root/etc/hosts" ]; then mount --bind /etc/hosts "$root/etc/hosts"; fi
if [ -n "$ca" ]; then mount -t tmpfs -o mode=0755,size=16m tmpfs "$root/run/konductor-build"; cp "$ca" "$root/run/konductor-build/ca.crt"; fi
if [ "$user" = 0:0 ]; then exec unshare --root="$root" --wd="$cwd" -- "$@"; fi
exec chroot --userspec="$user" "$root" /bin/sh -c 'cd "$0" && exec "$@"' "$cwd" "$@"
`;

/** Where the host's extra CA file appears inside the root during a RUN (see `caFile`). */
export const BUILD_CA_PATH = '/run/konductor-build/ca.crt';

export interface ChrootRunOptions {
  /** Host path of the stage's root filesystem (needs proc/ and dev/ directories). */
  root: string;
  argv: string[];
  /** Environment inside (nothing of the host's leaks in). */
  env: Record<string, string>;
  /** Working directory inside the root (must exist). */
  cwd: string;
  /** Numeric `uid:gid` (default 0:0). A non-root user needs /bin/sh in the image. */
  user?: string;
  /** Host file copied to BUILD_CA_PATH for the command (the root needs a run/konductor-build directory). */
  caFile?: string;
  /** Each output line (stdout and stderr). */
  onLine?: (line: string) => void;
  /** Kill the command after this long (default 20 min). */
  timeoutMs?: number;
}

export interface ChrootRunResult {
  code: number;
  tail: string[];
}

/** Runs the command; resolves with its exit code and the last lines of its output. */
export function chrootRun(opts: ChrootRunOptions): Promise<ChrootRunResult> {
  if (process.getuid?.() !== 0) {
    return Promise.reject(
      konductorError(
        'KDR_IMAGES_NEEDS_ROOT',
        'a Dockerfile RUN step runs in a chroot with its own mount and PID namespaces: run the image build as root',
      ),
    );
  }
  const user = opts.user ?? '0:0';
  const child = spawn(
    'unshare',
    [
      '--mount',
      '--pid',
      '--fork',
      '--kill-child=SIGKILL',
      '--propagation',
      'private',
      '--',
      '/bin/sh',
      '-c',
      SETUP,
      'konductor-run',
      opts.root,
      opts.cwd,
      user,
      opts.caFile ?? '',
      ...opts.argv,
    ],
    { env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const tail: string[] = [];
  let buf = '';
  const onData = (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) {
      opts.onLine?.(l);
      tail.push(l);
      if (tail.length > 60) tail.shift();
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20 * 60_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (buf) {
        opts.onLine?.(buf);
        tail.push(buf);
      }
      resolve({ code: code ?? (signal ? 128 : 1), tail });
    });
  });
}
