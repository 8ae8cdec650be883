/**
 * The host process of a container, from its status's `containerID`: the process kubelet's
 * `process://<pid>` names it; a real node's `containerd://<id>` names a container whose processes
 * live in a cgroup of that id (the kubelet's cgroupfs driver: `.../pod<uid>/<id>`; the systemd
 * driver: `.../cri-containerd-<id>.scope`), found by reading `/proc/<pid>/cgroup` of the host's
 * processes. Parsing is pure (test/unit/campaign-container-process.test.ts); the scan is the edge.
 */
import { readdirSync, readFileSync } from 'node:fs';

export type ContainerRef = { runtime: 'process'; pid: number } | { runtime: 'containerd'; id: string };

/** `process://123` or `containerd://<64 hex>`; anything else (empty, another runtime) is undefined. */
export function parseContainerId(containerID: string | undefined): ContainerRef | undefined {
  const m = /^([a-z]+):\/\/(.+)$/.exec(containerID ?? '');
  if (!m) return undefined;
  const [, runtime, rest = ''] = m;
  if (runtime === 'process' && /^[1-9]\d*$/.test(rest)) return { runtime, pid: Number(rest) };
  if (runtime === 'containerd' && /^[0-9a-f]{12,64}$/.test(rest)) return { runtime, id: rest };
  return undefined;
}

/** Whether a `/proc/<pid>/cgroup` text (v1 `N:controllers:path` lines, or v2 `0::path`) is in container `id`'s cgroup. */
export function inContainerCgroup(cgroupText: string, id: string): boolean {
  return cgroupText.split('\n').some((line) => {
    const path = line.split(':').slice(2).join(':');
    const leaf = path.slice(path.lastIndexOf('/') + 1);
    return leaf === id || leaf === `cri-containerd-${id}.scope`;
  });
}

const readOr = (path: string, fallback = '') => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
};

/** The host pids of the processes in container `id` (a /proc scan). */
export function containerPids(id: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => inContainerCgroup(readOr(`/proc/${d}/cgroup`), id))
    .map(Number)
    .sort((a, b) => a - b);
}

/** The host pid of the process of a container whose command line contains `command`, either runtime. */
export function containerProcess(containerID: string | undefined, command: string): number | undefined {
  const ref = parseContainerId(containerID);
  if (!ref) return undefined;
  const pids = ref.runtime === 'process' ? [ref.pid] : containerPids(ref.id);
  return pids.find((pid) => readOr(`/proc/${pid}/cmdline`).includes(command));
}
