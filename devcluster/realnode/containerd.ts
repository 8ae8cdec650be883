/**
 * containerd 2.x as a plain background process with its root, state, sockets, runc state and shim
 * sockets all under the node's state directory (so cleanup finds them), the CRI plugin set up for
 * this host (REAL-NODE.md): cgroupfs (SystemdCgroup = false), restrict_oom_score_adj when the host
 * lacks CAP_SYS_RESOURCE, netns mounts under the state dir, a locally imported pause image, Debian's
 * CNI plugins with our own conf dir. No NRI, no host config imports.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { konductorError } from '../../api/errors.ts';
import { exec } from '../exec.ts';
import type { ManagedProcess, ProcessGroup } from '../processes.ts';
import { logTail } from '../processInfo.ts';
import type { HostFacts } from './hostCheck.ts';
import type { StateLayout } from './layout.ts';
import { CNI_BIN_DIR } from './packages.ts';

/** The Kubernetes namespace of containerd (the CRI's images and containers live there). */
export const K8S_NAMESPACE = 'k8s.io';

const toml = (s: string) => `'${s.replaceAll("'", '')}'`;

export function containerdConfig(opts: {
  layout: StateLayout;
  facts: Pick<HostFacts, 'capSysResource'>;
  pauseImage: string;
  runc: string;
}): string {
  const { layout } = opts;
  return `version = 3
root = ${toml(layout.containerdRoot)}
state = ${toml(layout.containerdState)}
imports = []
oom_score = 0

[grpc]
  address = ${toml(layout.containerdSocket)}

[ttrpc]
  address = ${toml(`${layout.containerdSocket}.ttrpc`)}

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = ${toml(opts.pauseImage)}

  [plugins.'io.containerd.cri.v1.runtime']
    # No CAP_SYS_RESOURCE: runc cannot write a negative oom_score_adj ("can't get final child's PID").
    restrict_oom_score_adj = ${opts.facts.capSysResource ? 'false' : 'true'}
    netns_mounts_under_state_dir = true
    enable_cdi = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = ${toml(opts.runc)}
          Root = ${toml(layout.runcRoot)}
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [${toml(CNI_BIN_DIR)}]
      conf_dir = ${toml(layout.cniConfDir)}
      max_conf_num = 1

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'

  [plugins.'io.containerd.nri.v1.nri']
    disable = true

  [plugins.'io.containerd.shim.v1.manager']
    socket_dir = ${toml(join(layout.root, 's'))}
`;
}

export interface Containerd {
  process: ManagedProcess;
  /** `ctr -a <socket> -n k8s.io <args>`. */
  ctr(args: string[]): Promise<string>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startContainerd(opts: {
  group: ProcessGroup;
  layout: StateLayout;
  facts: HostFacts;
  bins: { containerd: string; ctr: string; binDir: string; runc: string };
  pauseImage: string;
  logPath: string;
  timeoutMs: number;
}): Promise<Containerd> {
  const { layout, bins } = opts;
  for (const d of [layout.containerdRoot, layout.containerdState, layout.runcRoot, layout.config]) {
    await mkdir(d, { recursive: true });
  }
  await writeFile(
    layout.containerdConfig,
    containerdConfig({ layout, facts: opts.facts, pauseImage: opts.pauseImage, runc: bins.runc }),
  );
  // The runc shim is found on the PATH: ours first.
  const env = { ...process.env, PATH: `${bins.binDir}:${process.env.PATH ?? ''}` };
  const proc = await opts.group.spawn(
    'containerd',
    bins.containerd,
    ['--config', layout.containerdConfig, '--log-level', 'warn'],
    opts.logPath,
    env,
  );
  const ctr = async (args: string[]) => {
    const res = await exec(bins.ctr, ['-a', layout.containerdSocket, '-n', K8S_NAMESPACE, ...args]);
    if (res.code !== 0) {
      throw konductorError(
        'KDR_REALNODE_CONTAINERD_FAILED',
        `ctr ${args.join(' ')} failed (exit ${res.code}): ${res.stderr}`,
      );
    }
    return res.stdout;
  };
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (proc.exitInfo) {
      throw konductorError(
        'KDR_REALNODE_CONTAINERD_FAILED',
        `containerd exited during start-up (log ${opts.logPath}):\n${logTail(opts.logPath, 20)}`,
      );
    }
    if (
      existsSync(layout.containerdSocket) &&
      (await exec(bins.ctr, ['-a', layout.containerdSocket, 'version'])).code === 0
    )
      break;
    if (Date.now() > deadline) {
      throw konductorError(
        'KDR_REALNODE_CONTAINERD_FAILED',
        `containerd did not answer on ${layout.containerdSocket} within ${opts.timeoutMs / 1000} s (log ${opts.logPath}):\n${logTail(opts.logPath, 20)}`,
      );
    }
    await sleep(100);
  }
  return { process: proc, ctr };
}
