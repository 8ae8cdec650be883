/**
 * Leaves the host as it was before a real node ran, also after a crash of the run that started it
 * (kill -9 of the test runner: the daemons, runc shims and containers keep running, the netns and
 * overlay mounts stay, the iptables chains and the bridge stay). Order matters:
 *   1. kill every process of the node: the daemons (their command lines name the state directory),
 *      the runc shims (started with `-address <state>/containerd/containerd.sock`) and everything
 *      in the pod cgroups (containers, pause);
 *   2. unmount everything under the state directory, deepest first (rootfs overlays, /dev/shm of
 *      sandboxes, projected volumes, the network-namespace bind mounts: with the last reference
 *      gone the kernel deletes each netns and the veth pair in it);
 *   3. delete the links (veths left on the bridge, the bridge, the dummy interface);
 *   4. iptables: `kube-proxy --cleanup`, then any KUBE-* chain or chain of our CNI network (iptables.ts);
 *   5. remove the pod cgroups, restore the sysctls, delete libcni's cached results for our network
 *      and the kubelet's links in /var/log/containers, and finally the state directory, but only
 *      once nothing is mounted below it (a hostPath bind mount must never be deleted through).
 * `findLeftovers()` lists whatever of that is still there: the tests assert it is empty.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync, statSync } from 'node:fs';
import { rm, unlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { exec } from '../exec.ts';
import { reapStaleClusters } from '../processes.ts';
import { isProcessAlive } from '../processInfo.ts';
import { cgroupMounts } from './hostCheck.ts';
import { nodeChains, removeNodeRules } from './iptables.ts';
import {
  BRIDGE,
  CGROUP_ROOT,
  CNI_NETWORK,
  CNI_RESULT_CACHE,
  CONTAINER_LOG_LINKS,
  DEVICE_PLUGIN_SOCKET,
  DUMMY_INTERFACE,
  type StateLayout,
} from './layout.ts';
import { readRecord } from './registry.ts';

export interface SweepReport {
  killed: number[];
  unmounted: string[];
  links: string[];
  chains: string[];
  cgroups: string[];
  files: string[];
  sysctls: string[];
  /** Things that could not be removed (with why). */
  failed: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo text). */
export function mountsUnder(mountinfo: string, dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const found = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const path = unescapeMountPath(mp);
    if (path === dir || path.startsWith(prefix)) found.add(path);
  }
  return [...found].sort((a, b) => b.split('/').length - a.split('/').length || b.localeCompare(a));
}

const readText = (p: string) => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
};

/** Every directory of the node's cgroup tree in every hierarchy, deepest first. */
function nodeCgroupDirs(): string[] {
  const dirs: string[] = [];
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) walk(join(d, e));
    dirs.push(d);
  };
  for (const mp of cgroupMounts(readText('/proc/self/mountinfo'))) {
    const root = join(mp, CGROUP_ROOT);
    if (existsSync(root)) walk(root);
  }
  return dirs;
}

function pidsInCgroups(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const d of dirs) {
    for (const l of readText(join(d, 'cgroup.procs')).split('\n')) {
      const n = Number.parseInt(l, 10);
      if (n > 0) pids.add(n);
    }
  }
  return [...pids];
}

function ancestors(): Set<number> {
  const out = new Set<number>([process.pid]);
  let pid = process.ppid;
  while (pid > 1 && !out.has(pid)) {
    out.add(pid);
    const stat = readText(`/proc/${pid}/stat`);
    pid = Number.parseInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? '0', 10);
  }
  return out;
}

/** The node's executables: only these are killed for naming the state directory. */
const NODE_EXECUTABLES = new Set([
  'containerd',
  'containerd-shim-runc-v2',
  'ctr',
  'runc',
  'kubelet',
  'kube-proxy',
  'kube-scheduler',
]);

function executableName(pid: number): string {
  try {
    return basename(readlinkSync(`/proc/${pid}/exe`)).replace(/ \(deleted\)$/, '');
  } catch {
    return '';
  }
}

/** The node's daemons and shims: a node executable whose command line names the state directory. */
function processesNaming(dir: string): number[] {
  const skip = ancestors();
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || skip.has(pid)) continue;
    if (!NODE_EXECUTABLES.has(executableName(pid))) continue;
    if (readText(`/proc/${pid}/cmdline`).replaceAll('\0', ' ').includes(dir)) out.push(pid);
  }
  return out;
}

async function killAll(pids: number[], report: SweepReport): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
      report.killed.push(pid);
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + 10_000;
  while (pids.some(isProcessAlive) && Date.now() < deadline) await sleep(50);
}

async function linkExists(name: string): Promise<boolean> {
  return (await exec('ip', ['link', 'show', 'dev', name])).code === 0;
}

async function bridgePorts(): Promise<string[]> {
  const res = await exec('ip', ['-o', 'link', 'show', 'master', BRIDGE]);
  if (res.code !== 0) return [];
  return res.stdout
    .split('\n')
    .map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1])
    .filter((x): x is string => !!x);
}

function cniCacheFiles(): string[] {
  try {
    return (
      readdirSync(CNI_RESULT_CACHE)
        // Our network's results, and those of containerd's loopback network (only our CRI uses it).
        .filter((f) => f.startsWith(`${CNI_NETWORK}-`) || f.startsWith('cni-loopback-'))
        .map((f) => join(CNI_RESULT_CACHE, f))
    );
  } catch {
    return [];
  }
}

function containerLogLinks(podLogs: string): string[] {
  try {
    return readdirSync(CONTAINER_LOG_LINKS)
      .map((f) => join(CONTAINER_LOG_LINKS, f))
      .filter((f) => {
        try {
          return readlinkSync(f).startsWith(podLogs);
        } catch {
          return false;
        }
      });
  } catch {
    return [];
  }
}

/** The kubelet's device-plugin socket, when it is a socket (ours: one node per machine). */
function ownSocket(): string[] {
  try {
    return statSync(DEVICE_PLUGIN_SOCKET).isSocket() ? [DEVICE_PLUGIN_SOCKET] : [];
  } catch {
    return [];
  }
}

export interface SweepOptions {
  layout: StateLayout;
  log: (line: string) => void;
  /** Remove the state directory at the end (default true). */
  removeState?: boolean;
}

/** Undoes everything a real node (running, stopped or crashed) did to the host. Idempotent. */
export async function sweepRealNode(opts: SweepOptions): Promise<SweepReport> {
  const { layout, log } = opts;
  const report: SweepReport = {
    killed: [],
    unmounted: [],
    links: [],
    chains: [],
    cgroups: [],
    files: [],
    sysctls: [],
    failed: [],
  };
  const record = readRecord(layout.registryFile);

  // 1. processes: the registry's (a dead owner's), then anything naming the state dir, then the pods.
  report.killed.push(...(await reapStaleClusters(layout.pidRegistry)));
  await killAll(processesNaming(layout.root), report);
  for (let round = 0; round < 5; round++) {
    const pids = pidsInCgroups(nodeCgroupDirs());
    if (!pids.length) break;
    await killAll(pids, report);
  }

  // 2. mounts, deepest first; lazily when busy.
  for (const mp of mountsUnder(readText('/proc/self/mountinfo'), layout.root)) {
    let res = await exec('umount', [mp]);
    if (res.code !== 0) res = await exec('umount', ['-l', mp]);
    if (res.code === 0) report.unmounted.push(mp);
    else report.failed.push(`umount ${mp}: ${res.stderr}`);
  }

  // 3. links.
  for (const port of await bridgePorts()) {
    if ((await exec('ip', ['link', 'del', 'dev', port])).code === 0) report.links.push(port);
  }
  for (const name of [BRIDGE, DUMMY_INTERFACE]) {
    if (!(await linkExists(name))) continue;
    const res = await exec('ip', ['link', 'del', 'dev', name]);
    if (res.code === 0) report.links.push(name);
    else report.failed.push(`ip link del ${name}: ${res.stderr}`);
  }

  // 4. iptables.
  if (record?.kubeProxyBin && existsSync(record.kubeProxyBin)) {
    await exec(record.kubeProxyBin, ['--cleanup', '--v=0'], { timeoutMs: 60_000 });
  }
  report.chains.push(...(await removeNodeRules(log)));

  // 5. cgroups, sysctls, files, the state directory.
  for (const d of nodeCgroupDirs()) {
    try {
      rmdirSync(d);
      report.cgroups.push(d);
    } catch (err) {
      report.failed.push(`rmdir ${d}: ${(err as Error).message}`);
    }
  }
  for (const [key, value] of Object.entries(record?.sysctls ?? {})) {
    const path = join('/proc/sys', key);
    if (readText(path).trim() === value) continue;
    try {
      await writeFile(path, value);
      report.sysctls.push(`${key}=${value}`);
    } catch (err) {
      report.failed.push(`sysctl ${key}=${value}: ${(err as Error).message}`);
    }
  }
  for (const f of [...cniCacheFiles(), ...containerLogLinks(layout.podLogs), ...ownSocket()]) {
    await unlink(f).catch(() => {});
    report.files.push(f);
  }
  const created = [...(record?.createdHostDirs ?? [])].sort((a, b) => b.length - a.length);
  for (const d of created) {
    try {
      rmdirSync(d);
      report.files.push(d);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') report.failed.push(`rmdir ${d}: ${(err as Error).message}`);
    }
  }
  if (opts.removeState !== false && existsSync(layout.root)) {
    const still = mountsUnder(readText('/proc/self/mountinfo'), layout.root);
    if (still.length) {
      report.failed.push(`kept ${layout.root}: still mounted below it: ${still.join(', ')}`);
    } else {
      await rm(layout.root, { recursive: true, force: true });
      report.files.push(layout.root);
    }
  }
  for (const f of report.failed) log(`cleanup: ${f}`);
  return report;
}

/** True when the sweep found something of a previous node. */
export function sweptAnything(r: SweepReport): boolean {
  return r.killed.length + r.unmounted.length + r.links.length + r.chains.length + r.cgroups.length > 0;
}

/** Everything of a real node that is still on the host ([] when the host is clean). */
export async function findLeftovers(layout: StateLayout): Promise<string[]> {
  const left: string[] = [];
  for (const pid of processesNaming(layout.root)) {
    left.push(`process ${pid}: ${readText(`/proc/${pid}/cmdline`).replaceAll('\0', ' ').trim()}`);
  }
  const cgroupDirs = nodeCgroupDirs();
  for (const pid of pidsInCgroups(cgroupDirs)) left.push(`process ${pid} in the pod cgroups`);
  for (const d of cgroupDirs) left.push(`cgroup ${d}`);
  for (const mp of mountsUnder(readText('/proc/self/mountinfo'), layout.root)) left.push(`mount ${mp}`);
  for (const name of [BRIDGE, DUMMY_INTERFACE]) {
    if (await linkExists(name)) left.push(`link ${name}`);
  }
  for (const c of await nodeChains()) left.push(`chain ${c}`);
  for (const f of [...cniCacheFiles(), ...containerLogLinks(layout.podLogs), ...ownSocket()]) {
    left.push(`file ${f}`);
  }
  if (existsSync(layout.root)) {
    left.push(`directory ${layout.root} (${statSync(layout.root).isDirectory() ? 'dir' : 'file'})`);
  }
  return left;
}
