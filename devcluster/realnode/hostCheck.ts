/**
 * What this host can give a real node, and what it cannot: root, the cgroup layout, CAP_SYS_RESOURCE,
 * the kernel features the bridge CNI and kube-proxy need. Parsers are pure; `inspectHost()` reads
 * /proc and /sys. The findings become settings (cgroup v1 -> failCgroupV1: false; no CAP_SYS_RESOURCE
 * -> containerd's restrict_oom_score_adj) and lines the start log prints, so a developer sees why.
 */
import { existsSync, readFileSync } from 'node:fs';
import { konductorError } from '../../api/errors.ts';

export type CgroupLayout = 'v1' | 'hybrid' | 'v2' | 'unknown';

export interface HostFacts {
  uid: number;
  cgroup: CgroupLayout;
  /** CAP_SYS_RESOURCE in the effective set (needed to lower oom_score_adj, which runc does). */
  capSysResource: boolean;
  /** /proc/sys/net/bridge exists: br_netfilter is there (kube-proxy sees bridged traffic). */
  brNetfilter: boolean;
  overlayfs: boolean;
  kernel: string;
}

const CAP_SYS_RESOURCE = 24n;

/** True when the hex capability mask `CapEff` (from /proc/self/status) has `bit`. */
export function hasCapability(status: string, bit: bigint): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/im.exec(status);
  if (!m?.[1]) return false;
  return ((BigInt(`0x${m[1]}`) >> bit) & 1n) === 1n;
}

/**
 * The cgroup layout from /proc/self/mountinfo: `v2` when /sys/fs/cgroup itself is cgroup2,
 * `hybrid` when v1 controllers are mounted beside a cgroup2 mount, `v1` when only v1 mounts exist.
 */
export function cgroupLayout(mountinfo: string): CgroupLayout {
  let v1 = false;
  let v2Root = false;
  let v2Elsewhere = false;
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const mountPoint = line.slice(0, sep).split(' ')[4];
    const fsType = line.slice(sep + 3).split(' ')[0];
    if (!mountPoint?.startsWith('/sys/fs/cgroup')) continue;
    if (fsType === 'cgroup') v1 = true;
    if (fsType === 'cgroup2') {
      if (mountPoint === '/sys/fs/cgroup') v2Root = true;
      else v2Elsewhere = true;
    }
  }
  if (v2Root && !v1) return 'v2';
  if (v1 && v2Elsewhere) return 'hybrid';
  if (v1) return 'v1';
  return 'unknown';
}

/** Mount points of the cgroup hierarchies (v1 controllers, named hierarchies, cgroup2). */
export function cgroupMounts(mountinfo: string): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fsType = line.slice(sep + 3).split(' ')[0];
    const mp = line.slice(0, sep).split(' ')[4];
    if (mp && (fsType === 'cgroup' || fsType === 'cgroup2'))
      out.push(mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))));
  }
  return out;
}

export function inspectHost(): HostFacts {
  const read = (p: string) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  };
  const filesystems = read('/proc/filesystems');
  return {
    uid: process.getuid?.() ?? -1,
    cgroup: cgroupLayout(read('/proc/self/mountinfo')),
    capSysResource: hasCapability(read('/proc/self/status'), CAP_SYS_RESOURCE),
    brNetfilter: existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables'),
    overlayfs: /\toverlay$/m.test(filesystems),
    kernel: read('/proc/sys/kernel/osrelease').trim(),
  };
}

/** Lines that explain the host's limits and what the node does about them (printed at start). */
export function hostLimitNotes(facts: HostFacts): string[] {
  const notes: string[] = [];
  if (facts.cgroup === 'v1' || facts.cgroup === 'hybrid') {
    notes.push(
      `host: cgroup v1 (${facts.cgroup} layout): the kubelet runs with failCgroupV1: false and the cgroupfs ` +
        'driver; cgroup v1 is deprecated upstream, real clusters run v2',
    );
  }
  if (!facts.capSysResource) {
    notes.push(
      'host: no CAP_SYS_RESOURCE (a VM/container limit): runc cannot lower oom_score_adj, so containerd ' +
        'runs with restrict_oom_score_adj = true (pods never get a lower OOM score than containerd)',
    );
  }
  return notes;
}

/** Throws KDR_REALNODE_HOST_UNSUPPORTED naming every missing prerequisite. */
export function assertHostUsable(facts: HostFacts): void {
  const problems: string[] = [];
  if (facts.uid !== 0) {
    problems.push('it must run as root (containerd, runc, the bridge CNI and kube-proxy change host state)');
  }
  if (facts.cgroup === 'unknown') problems.push('no cgroup hierarchy is mounted under /sys/fs/cgroup');
  if (!facts.overlayfs) problems.push('the kernel has no overlay filesystem (containerd snapshotter)');
  if (!facts.brNetfilter) {
    problems.push(
      'the kernel has no br_netfilter (/proc/sys/net/bridge missing; try `modprobe br_netfilter`)',
    );
  }
  if (problems.length) {
    throw konductorError(
      'KDR_REALNODE_HOST_UNSUPPORTED',
      `this host cannot run the devcluster's real node:\n${problems.map((p) => `  - ${p}`).join('\n')}\n` +
        'The process kubelet (`npm run cluster`, the integration tests) needs none of this.',
    );
  }
}
