/**
 * A containerd of the test's own, to check that image archives import and run (`ctr run` with runc),
 * without touching anything another containerd (the real node's) may use:
 *
 * - Debian's containerd 1.6 unpacked with `dpkg -x` into the image cache (never installed: its shim on
 *   PATH could shadow the real node's), runc from Debian (installed when missing);
 * - root, state, sockets, runc root and the ctr FIFOs in one temporary directory; CRI disabled;
 * - containerd runs in a private mount namespace with its own tmpfs on /run, so the shims' sockets
 *   (containerd 1.6 puts them under /run/containerd/s) and the containers' rootfs mounts never appear
 *   on the host and vanish with it;
 * - containers get a cgroup under `/konductor-imagetest-<pid>/` (removed on stop, and stale ones of
 *   dead test runs on start).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureHostTools, fetchDebs } from '../../devcluster/images/debian.ts';
import { imagesDir } from '../../devcluster/images/index.ts';
import { isProcessAlive } from '../../devcluster/index.ts';
import { runProcess } from './process.ts';
import { waitFor } from './waitFor.ts';

const CGROUP_ROOT = '/sys/fs/cgroup';
const CGROUP_PREFIX = 'konductor-imagetest-';

export interface PrivateContainerd {
  dir: string;
  address: string;
  ctr: string;
  namespace: string;
  /** `ctr run --rm` of an image; resolves with its exit code and output. */
  run(
    image: string,
    id: string,
    opts?: { args?: string[]; readOnly?: boolean; timeoutMs?: number },
  ): Promise<{ code: number; output: string }>;
  /** Starts a container detached (`ctr run -d`), for long-running images. */
  start(image: string, id: string): Promise<void>;
  /** SIGTERM to a started container's task; resolves with its exit status once it stopped. */
  stopTask(id: string): Promise<number>;
  stop(): Promise<void>;
}

/** containerd, ctr and containerd-shim-runc-v2 from Debian's package, unpacked once into the cache. */
async function debianContainerd(log: (l: string) => void): Promise<string> {
  const dir = join(imagesDir(), 'tools', 'containerd-debian');
  const bin = join(dir, 'containerd', 'usr', 'bin');
  if (!existsSync(join(bin, 'containerd-shim-runc-v2'))) {
    rmSync(dir, { recursive: true, force: true });
    await fetchDebs(['containerd'], dir, log);
  }
  return bin;
}

/** Removes empty cgroups left by test runs whose process is gone. */
function sweepStaleCgroups(): void {
  if (!existsSync(CGROUP_ROOT)) return;
  for (const hierarchy of readdirSync(CGROUP_ROOT)) {
    const base = join(CGROUP_ROOT, hierarchy);
    let names: string[] = [];
    try {
      names = readdirSync(base).filter((n) => n.startsWith(CGROUP_PREFIX));
    } catch {
      continue;
    }
    for (const n of names) {
      const pid = Number(n.slice(CGROUP_PREFIX.length));
      if (pid === process.pid || isProcessAlive(pid)) continue;
      removeCgroupTree(join(base, n));
    }
  }
}

function removeCgroupTree(path: string): void {
  try {
    for (const e of readdirSync(path, { withFileTypes: true }))
      if (e.isDirectory()) removeCgroupTree(join(path, e.name));
    rmdirSync(path);
  } catch {
    /* busy or already gone */
  }
}

export async function startPrivateContainerd(
  log: (l: string) => void = () => {},
): Promise<PrivateContainerd> {
  ensureHostTools([{ command: 'runc', package: 'runc' }], log, 'running test containers');
  sweepStaleCgroups();
  const bin = await debianContainerd(log);
  const dir = mkdtempSync('/tmp/konductor-ctd-');
  for (const d of ['root', 'state', 'opt', 'runc', 'fifo']) mkdirSync(join(dir, d));
  const address = join(dir, 'containerd.sock');
  writeFileSync(
    join(dir, 'config.toml'),
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${dir}/opt"`,
      '',
    ].join('\n'),
  );
  const daemon: ChildProcess = spawn(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      '--',
      '/bin/sh',
      '-c',
      'mount -t tmpfs -o mode=0755 tmpfs /run && exec "$@"',
      'sh',
      join(bin, 'containerd'),
      '--config',
      join(dir, 'config.toml'),
    ],
    { env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let daemonLog = '';
  daemon.stderr?.on('data', (c: Buffer) => {
    daemonLog = (daemonLog + c.toString()).slice(-20_000);
  });
  const ctr = join(bin, 'ctr');
  const namespace = 'k8s.io';
  const cgroupParent = `/${CGROUP_PREFIX}${process.pid}`;
  const ctrArgs = (args: string[]) => ['--address', address, '--namespace', namespace, ...args];
  const exec = (args: string[], timeoutMs = 60_000) => runProcess(ctr, ctrArgs(args), { timeoutMs });
  await waitFor(async () => daemon.exitCode === null && (await exec(['version'])).code === 0, {
    message: `private containerd to answer (${dir}); log: ${daemonLog.slice(-500)}`,
    timeoutMs: 30_000,
  });
  const runFlags = (id: string) => [
    '--runc-root',
    join(dir, 'runc'),
    '--fifo-dir',
    join(dir, 'fifo'),
    '--cgroup',
    `${cgroupParent}/${id}`,
  ];
  return {
    dir,
    address,
    ctr,
    namespace,
    async run(image, id, opts = {}) {
      const r = await exec(
        [
          'run',
          '--rm',
          ...runFlags(id),
          ...(opts.readOnly ? ['--read-only'] : []),
          image,
          id,
          ...(opts.args ?? []),
        ],
        opts.timeoutMs ?? 60_000,
      );
      return { code: r.code, output: r.stdout + r.stderr };
    },
    async start(image, id) {
      const r = await exec(['run', '-d', ...runFlags(id), image, id]);
      if (r.code !== 0) throw new Error(`ctr run -d ${image}: ${r.stderr}`);
    },
    async stopTask(id) {
      const k = await exec(['tasks', 'kill', '--signal', 'SIGTERM', id]);
      if (k.code !== 0) throw new Error(`ctr tasks kill ${id}: ${k.stderr}`);
      await waitFor(
        async () => {
          const ls = await exec(['tasks', 'ls']);
          return ls.stdout.split('\n').some((l) => l.startsWith(`${id} `) && l.includes('STOPPED'));
        },
        { message: `task ${id} to stop`, timeoutMs: 20_000 },
      );
      // ctr exits with the task's exit status when it is not 0.
      const del = await exec(['tasks', 'delete', id]);
      await exec(['containers', 'delete', id]);
      return del.code;
    },
    async stop() {
      if (daemon.exitCode === null) {
        daemon.kill('SIGTERM');
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => daemon.kill('SIGKILL'), 10_000);
          daemon.on('exit', () => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      for (const hierarchy of existsSync(CGROUP_ROOT) ? readdirSync(CGROUP_ROOT) : []) {
        removeCgroupTree(join(CGROUP_ROOT, hierarchy, cgroupParent));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
